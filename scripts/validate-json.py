#!/usr/bin/python3
"""validate-json.py SCHEMA FILE... - check each JSON file against a JSON Schema
(draft 2020-12) with Debian's python3-jsonschema; print one line per file and
exit 1 if any is invalid. Used by the tests to keep schemas/ honest."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(e.path))
    if errors:
        bad += 1
        for e in errors[:3]:
            where = "/".join(str(p) for p in e.path) or "(root)"
            print(f"{path}: {where}: {e.message[:200]}")
    else:
        print(f"{path}: ok")
sys.exit(1 if bad else 0)
