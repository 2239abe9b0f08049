#!/usr/bin/python3
"""mutate.py FILE VERB STREAM ID [PRINCIPAL] - the conformance suite's --mutate
hook for the jsonl connector: changes the item ID in the JSON-lines FILE.

  touch  ID            append to its body (content changed)
  delete ID            drop its line
  revoke ID PRINCIPAL  take PRINCIPAL off its allow list
"""
import json
import sys


def mutate(items, verb, item, principal=None):
    """Apply one change to the list of item objects, in place."""
    hit = [o for o in items if o.get("id") == item]
    if not hit:
        sys.exit(f"mutate: no item {item!r}")
    for o in hit:
        if verb == "touch":
            o["body"] = o.get("body", "") + " (changed)"
        elif verb == "delete":
            items.remove(o)
        elif verb == "revoke":
            o["allow"] = [p for p in o.get("allow", []) if p != principal]
        else:
            sys.exit(f"mutate: unknown verb {verb!r}")


if __name__ == "__main__":
    path, verb, stream, item = sys.argv[1:5]
    if stream != "items":
        sys.exit(f"mutate.py: no stream {stream!r}; the jsonl connector has 'items'")
    lines = [json.loads(l) for l in open(path) if l.strip()]
    mutate(lines, verb, item, sys.argv[5] if len(sys.argv) > 5 else None)
    with open(path, "w") as f:
        for o in lines:
            f.write(json.dumps(o) + "\n")
