#!/usr/bin/env python3
"""connector.py - an exec connector for ctxgate in plain Python 3 (stdlib only).

It reads one JSON file of users, groups and items (see items.json) and speaks
the ctxgate connector protocol, version 1: one JSON request on stdin, JSON
lines on stdout (schemas/protocol/ in the ctxgate tree). Streams:

  principals  users and groups (PRINCIPAL); a group that disappeared from the
              file is sent once more with no members, so its old members lose
              what it gave them
  items       documents with their permissions (RECORD); only what changed
              since the last STATE is sent, a change of permissions alone is an
              ACL message, and items gone from the file become DELETEs

A read request with "mode": "permissions" (a permission sync) gets one ACL
line per item and no bodies; ctxgate deletes the items that got no line.

Its own config ("config" of the source in ctxgate.json):
  path         the JSON file (relative to ctxgate.json's folder)
  state_every  emit a checkpoint after this many items (default 100)
"""
import hashlib
import json
import os
import sys

PROTOCOL = 1

SPEC = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "exec-python example connector",
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "the JSON file of users, groups and items"},
        "state_every": {"type": "integer", "minimum": 1, "default": 100,
                        "description": "emit a checkpoint after this many items"},
    },
    "required": ["path"],
    "additionalProperties": False,
}


def send(msg_type, **fields):
    """Print one message as one line; stdout carries nothing else."""
    msg = {"type": msg_type}
    msg.update(fields)
    sys.stdout.write(json.dumps(msg, ensure_ascii=False, separators=(",", ":")) + "\n")


class ConfigError(Exception):
    pass


def load(config):
    unknown = set(config) - set(SPEC["properties"])
    if unknown:
        raise ConfigError("config: unknown key %r; known are path, state_every" % sorted(unknown)[0])
    path = config.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError("config.path: missing; name the JSON file of users, groups and items")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError("config.path: %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise ConfigError("config.path: %s: invalid JSON: %s" % (path, e))
    if not isinstance(data, dict):
        raise ConfigError("config.path: %s: expected an object with users, groups, items" % path)
    return data


def acl_of(item):
    acl = {"allow": list(item.get("allow", []))}
    if item.get("deny"):
        acl["deny"] = list(item["deny"])
    if item.get("labels"):
        acl["labels"] = list(item["labels"])
    return acl


def digest(value):
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_principals(data, state, full):
    groups = []
    for u in data.get("users", []):
        fields = {"kind": "user", "id": u["id"]}
        for src, dst in (("name", "display_name"), ("email", "email"), ("maps_to", "maps_to")):
            if u.get(src):
                fields[dst] = u[src]
        send("PRINCIPAL", **fields)
    for g in data.get("groups", []):
        fields = {"kind": "group", "id": g["id"], "members": list(g.get("members", []))}
        if g.get("name"):
            fields["display_name"] = g["name"]
        send("PRINCIPAL", **fields)
        groups.append(g["id"])
    # Even on a full read the old state says which groups were sent before.
    for gone in sorted(set((state or {}).get("groups", [])) - set(groups)):
        send("PRINCIPAL", kind="group", id=gone, members=[])
    send("STATE", stream="principals", state={"groups": sorted(groups)})


def read_items(data, state, full, every):
    old = {} if full or not state else dict(state.get("seen", {}))
    seen = dict(old)  # items not reached yet keep their entry at a checkpoint
    items = sorted(data.get("items", []), key=lambda i: str(i["id"]))
    present = set()
    since = 0
    for item in items:
        iid = str(item["id"])
        present.add(iid)
        acl = acl_of(item)
        content = {k: item.get(k) for k in ("title", "body", "url", "updated_at_ms", "metadata")}
        sig = digest(content) + ":" + digest(acl)
        prev = old.get(iid)
        seen[iid] = sig
        if prev == sig:
            continue
        if prev and prev.split(":")[0] == sig.split(":")[0]:
            send("ACL", stream="items", id=iid, acl=acl)
        else:
            rec = {"stream": "items", "id": iid, "acl": acl}
            for k in ("title", "body", "url", "updated_at_ms", "metadata"):
                if item.get(k) is not None:
                    rec[k] = item[k]
            send("RECORD", **rec)
        since += 1
        if since >= every:
            send("STATE", stream="items", state={"seen": seen})
            since = 0
    for gone in sorted(set(old) - present):
        del seen[gone]
        send("DELETE", stream="items", id=gone)
    send("LOG", level="info", message="items: %d in the file" % len(items))
    send("STATE", stream="items", state={"seen": seen})


def read_item_permissions(data, every):
    """A permission read: an ACL line for every item, changed or not, and no
    bodies. ctxgate re-labels what changed and deletes what got no line."""
    since = 0
    for item in sorted(data.get("items", []), key=lambda i: str(i["id"])):
        send("ACL", stream="items", id=str(item["id"]), acl=acl_of(item))
        since += 1
        if since >= every:
            send("STATE", stream="items", state={"permissions": True})
            since = 0
    send("STATE", stream="items", state={"permissions": True})


def main():
    send("HELLO", protocol=PROTOCOL, name="exec-python-example", version="1.0.0")
    try:
        req = json.loads(sys.stdin.readline())
    except ValueError as e:
        send("ERROR", message="request: invalid JSON: %s" % e)
        return 0
    if req.get("protocol") != PROTOCOL:
        send("ERROR", message="request protocol %r: this program speaks protocol %d"
             % (req.get("protocol"), PROTOCOL))
        return 0
    kind, config = req.get("type"), req.get("config") or {}
    try:
        if kind == "spec":
            send("SPEC", spec=SPEC)
        elif kind == "check":
            try:
                load(config)
                send("CHECK", ok=True)
            except ConfigError as e:
                send("CHECK", ok=False, code="config", message=str(e))
        elif kind == "discover":
            load(config)
            send("STREAM", name="principals", description={"kind": "principals"})
            send("STREAM", name="items", description={"kind": "documents"})
        elif kind == "read":
            data = load(config)
            every = config.get("state_every", 100)
            if req["stream"] == "principals":
                read_principals(data, req.get("state"), req.get("full"))
            elif req["stream"] == "items" and req.get("mode") == "permissions":
                read_item_permissions(data, every)
            elif req["stream"] == "items":
                read_items(data, req.get("state"), req.get("full"), every)
            else:
                send("ERROR", code="config", message="no stream %r; there are principals"
                     " and items" % req["stream"])
                return 0
        else:
            send("ERROR", message="unknown request %r" % kind)
            return 0
    except ConfigError as e:
        send("ERROR", code="config", message=str(e))
        return 0
    send("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
