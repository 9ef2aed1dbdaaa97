"""A second JUnit consumer, written against the XML itself (not junitparser): for each
<testcase>, its verdict and the Surefire/nextest rerun elements inside it (flakyFailure,
flakyError, rerunFailure, rerunError) with their message, type and system-out. Prints JSON."""
import json
import sys
import xml.etree.ElementTree as ET

RERUNS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")

cases = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    verdict = "passed"
    for kind in ("failure", "error", "skipped"):
        if case.find(kind) is not None:
            verdict = kind
    reruns = []
    for element in case:
        if element.tag in RERUNS:
            out = element.find("system-out")
            reruns.append({
                "kind": element.tag,
                "message": element.get("message", ""),
                "type": element.get("type", ""),
                "system_out": out.text if out is not None else "",
            })
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    cases.append({"name": case.get("name"), "verdict": verdict, "reruns": reruns, "properties": props})
json.dump(cases, sys.stdout)
