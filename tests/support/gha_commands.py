"""Reads a job log as GitHub Actions reads workflow commands (the documented syntax, not
kubevet's code): `::name key=value,key=value::message` at the start of a line, property
values and messages unescaped (%25 %0D %0A, and %3A %2C in properties), and no command
read between `::stop-commands::TOKEN` and `::TOKEN::`. Prints the commands as JSON."""
import json
import sys


def unescape(text, prop):
    if prop:
        text = text.replace("%3A", ":").replace("%2C", ",")
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


commands = []
stopped = None
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    if stopped is not None:
        if line == f"::{stopped}::":
            stopped = None
        continue
    if not line.startswith("::"):
        continue
    head, sep, message = line[2:].partition("::")
    if not sep:
        continue
    name, _, props_text = head.partition(" ")
    if name == "stop-commands":
        stopped = message
        continue
    props = {}
    for pair in filter(None, props_text.split(",")):
        key, _, value = pair.partition("=")
        props[key] = unescape(value, True)
    commands.append({"name": name, "properties": props, "message": unescape(message, False)})
json.dump(commands, sys.stdout)
