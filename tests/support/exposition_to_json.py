"""Reads a Prometheus text exposition with prometheus_client's own parser (a real consumer, not
kubevet's code nor the stand-in's) and prints its families as JSON: name, type and every sample
with its labels and value, for kubevet's tests to check what the TEST STAND-IN operator serves
and what kubevet read from it."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
families = []
for family in text_string_to_metric_families(text):
    families.append({
        "name": family.name,
        "type": family.type,
        "help": family.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    })
json.dump(families, sys.stdout)
