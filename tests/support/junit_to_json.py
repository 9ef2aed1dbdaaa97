"""Reads a JUnit file with junitparser (a real consumer, not kubevet's own code) and prints
its cases as JSON, for kubevet's tests to check."""
import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped

xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if xml._tag == "testsuite" else list(xml)
out = []
for suite in suites:
    for case in suite:
        result = "passed"
        message = None
        for r in case.result:
            if isinstance(r, Failure):
                result = "failure"
            elif isinstance(r, Error):
                result = "error"
            elif isinstance(r, Skipped):
                result = "skipped"
            message = r.message
        # junitparser reads suite properties only; a case's are plain <property> elements.
        props = {p.get("name"): p.get("value") for p in case._elem.iter("property")}
        out.append({
            "suite": suite.name,
            "suite_properties": {p.name: p.value for p in suite.properties()},
            "suite_tests": suite.tests,
            "name": case.name,
            "classname": case.classname,
            "result": result,
            "message": message,
            "time": case.time,
            "system_out": case.system_out,
            "properties": props,
        })
json.dump(out, sys.stdout)
