"""Validates a CTRF report against the CTRF JSON schema (from the `ctrf` package on npm) with
the `jsonschema` package from PyPI: a real consumer, not kubevet's own code."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
report = json.load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(report), key=lambda e: list(e.path))
for e in errors:
    print(f"{'/'.join(map(str, e.path))}: {e.message}")
sys.exit(1 if errors else 0)
