#!/usr/bin/python3
"""exec-python-mutate.py FILE VERB STREAM ID [PRINCIPAL] - the conformance
suite's --mutate hook for examples/exec-python: the connector template's
change, applied to the "items" of the items.json FILE."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../examples/connector-template"))
from mutate import mutate  # noqa: E402

path, verb, stream, item = sys.argv[1:5]
if stream != "items":
    sys.exit(f"exec-python-mutate: no stream {stream!r}")
doc = json.load(open(path))
mutate(doc["items"], verb, item, sys.argv[5] if len(sys.argv) > 5 else None)
json.dump(doc, open(path, "w"), indent=1)
