#!/usr/bin/python3
"""exec-python-mutate.py FILE VERB STREAM ID [PRINCIPAL] - the conformance
suite's --mutate hook for examples/exec-python: changes the item ID in the
items.json FILE ({"users": [...], "groups": [...], "items": [...]})."""
import json
import sys

path, verb, stream, item = sys.argv[1:5]
if stream != "items":
    sys.exit(f"exec-python-mutate: no stream {stream!r}")
doc = json.load(open(path))
hit = [o for o in doc["items"] if o["id"] == item]
if not hit:
    sys.exit(f"exec-python-mutate: no item {item!r} in {path}")
for o in hit:
    if verb == "touch":
        o["body"] = o.get("body", "") + " (changed)"
    elif verb == "delete":
        doc["items"].remove(o)
    elif verb == "revoke":
        o["allow"] = [p for p in o.get("allow", []) if p != sys.argv[5]]
    else:
        sys.exit(f"exec-python-mutate: unknown verb {verb!r}")
json.dump(doc, open(path, "w"), indent=1)
