#!/usr/bin/env python3
"""server.py - a local SaaS-like API for the REST connector's tests.

Serves two profiles on 127.0.0.1 (on the port given as an argument, else
a free one; the port is the first line on stdout; `--tls CERT KEY` serves
HTTPS, tests/saas/tls/ holds a self-signed pair for 127.0.0.1): a ticket tracker under /tracker (users, groups with nested groups,
projects with member groups, tickets, comments; bearer, API-key or basic
auth) and a wiki under /wiki (users, groups, spaces with group permissions,
pages with page-level restrictions; OAuth2 client credentials from
/oauth/token). Every list endpoint answers every pagination style:
page/per_page, offset/limit, a cursor token in the body and a Link header
rel="next"; items are ordered by (updated_at, id).

Control endpoints (no auth) change the data and inject faults:
  POST /_control/reset                   data, faults and counters as at start
  POST /_control/faults   [{...}, ...]   queue faults (see Fault below)
  POST /_control/update   {"collection": "tracker.tickets", "id": 3, "set": {...}}
                          ("touch": false keeps its updated time)
  POST /_control/add      {"collection": ..., "item": {...}} (keeps a given time)
  POST /_control/delete   {"collection": ..., "id": ...}
  POST /_control/expire_tokens           every OAuth2 token answers 401 from now
  POST /_control/config   {"token_ttl": seconds, "max_limit": largest page}
  GET  /_control/stats    {"paths": {path: n}, "requests": [...], "tokens": n,
                           "early_retries": n, "early": [{"path", "early_by_ms"}]}

A request that comes before the wait the server asked for on that path
(Retry-After, or an exhausted X-RateLimit window's reset) is refused with
429 and a fresh Retry-After, and counted in "early_retries": a client that
skips its waits shows up there, whatever else it gets right.
Every change moves the item's updated_at past every other one.

Python 3 standard library only.
"""
import base64
import copy
import email.utils
import json
import math
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

TRACKER_TOKEN = "tracker-token-s3cret-0042"
WIKI_CLIENT = ("ctxgate", "wiki-client-s3cret-0042")
BASE = 1767225600  # 2026-01-01T00:00:00Z


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_time(s):
    if s is None or s == "":
        return None
    if s.replace(".", "").isdigit():
        v = float(s)
        return v / 1000 if v > 1e11 else v
    s = s.replace("Z", "+00:00")
    from datetime import datetime
    return datetime.fromisoformat(s).timestamp()


def initial_data():
    tracker_users = [
        {"id": "u1", "name": "Ann", "email": "ann@x.test"},
        {"id": "u2", "name": "Ben", "email": "ben@x.test"},
        {"id": "u3", "name": "Cy", "email": "cy@x.test"},
        {"id": "u4", "name": "Dee", "email": "dee@x.test"},
    ]
    tracker_groups = [
        {"id": "eng", "name": "Engineering", "members": ["u2"], "subgroups": ["eng-leads"]},
        {"id": "eng-leads", "name": "Eng leads", "members": ["u1"], "subgroups": []},
        {"id": "support", "name": "Support", "members": ["u3"], "subgroups": []},
    ]
    projects = [
        {"id": "P1", "key": "ENG", "name": "Engine", "groups": ["eng"],
         "updated_at": iso(BASE - 600)},
        {"id": "P2", "key": "SUP", "name": "Support desk", "groups": ["support"],
         "updated_at": iso(BASE - 540)},
    ]
    tickets = []
    for i in range(1, 21):
        p = projects[(i - 1) % 2]
        tickets.append({"id": i, "project": p["id"], "title": "Ticket %d zebra" % i,
                        "description": "Zebra ticket number %d in %s." % (i, p["key"]),
                        "reporter": "u4", "updated_at": iso(BASE + i * 60)})
    comments = [{"id": 100 + i, "ticket_id": i, "author": "u4",
                 "body": "Zebra comment on ticket %d." % i,
                 "updated_at": iso(BASE + 3000 + i * 60)} for i in range(1, 7)]
    wiki_users = [
        {"accountId": "a-1", "displayName": "Ann W", "email": "ann@x.test"},
        {"accountId": "a-2", "displayName": "Ben W", "email": "ben@x.test"},
        {"accountId": "a-3", "displayName": "Cy W", "email": "cy@x.test"},
    ]
    wiki_groups = [
        {"name": "wiki-hr", "users": ["a-1"], "groups": []},
        {"name": "wiki-staff", "users": ["a-2"], "groups": ["wiki-hr"]},
    ]
    spaces = [
        {"key": "HR", "name": "Human Resources", "groups": ["wiki-hr"],
         "updated_at": iso(BASE - 600)},
        {"key": "ALL", "name": "Company", "groups": ["wiki-staff"],
         "updated_at": iso(BASE - 540)},
    ]
    pages = []
    for i in range(1, 13):
        sp = spaces[(i - 1) % 2]
        restr = {"users": [], "groups": []}
        if i == 5:
            restr = {"users": ["a-3"], "groups": []}
        pages.append({"id": str(1000 + i), "space": sp["key"], "title": "Page %d zebra" % i,
                      "body": {"storage": "Zebra wiki page %d in %s." % (i, sp["key"])},
                      "restrictions": restr, "lastModified": iso(BASE + i * 60)})
    return {
        "tracker.users": tracker_users, "tracker.groups": tracker_groups,
        "tracker.projects": projects, "tracker.tickets": tickets,
        "tracker.comments": comments,
        "wiki.users": wiki_users, "wiki.groups": wiki_groups, "wiki.spaces": spaces,
        "wiki.pages": pages,
    }


# Which field of a collection is its key and its modification time.
KEYS = {"wiki.users": "accountId", "wiki.groups": "name", "wiki.spaces": "key"}
TIMES = {"wiki.pages": "lastModified"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.data = initial_data()
        self.deleted = {k: [] for k in self.data}
        self.faults = []
        self.paths = {}
        self.requests = []
        self.tokens = {}
        self.token_count = 0
        self.token_ttl = 3600
        self.max_limit = 1000
        self.tick = BASE + 100000
        self.not_before = {}   # path -> epoch seconds before which it must not be asked
        self.early = []        # requests that came too soon: {"path", "early_by_ms"}

    def next_tick(self):
        self.tick += 60
        return iso(self.tick)

    def find(self, coll, key):
        kf = KEYS.get(coll, "id")
        for it in self.data[coll]:
            if str(it[kf]) == str(key):
                return it
        return None


STATE = State()


class Fault:
    """One queued fault: {"path": prefix, "type": ..., "count": 1, "skip": 0, ...}.

    type "status": answer "code" (429, 500, 503, ...) with an optional
      "retry_after": seconds, or "retry_after_date": seconds from now as an
      HTTP-date, or "reset": X-RateLimit-Remaining 0 with that X-RateLimit-Reset; "stall": sleep "seconds" before answering; "truncate": cut
      the JSON in half; "bad_utf8": put invalid UTF-8 into a string;
      "not_json": answer an HTML page; "echo_auth": 400 whose body echoes
      the request's credentials; "ratelimit": answer normally with
      X-RateLimit-Remaining: 0 and X-RateLimit-Reset: "reset" seconds;
      "touch": answer normally, then change the items "ids" of
      "collection" (records changing between pages).
    """


# A client's clock and ours are the same; this only absorbs float rounding.
SLACK = 0.005


def wait_for(path, until):
    """Ask the client not to request path again before epoch second until."""
    with STATE.lock:
        STATE.not_before[path] = max(STATE.not_before.get(path, 0), until)


def too_early(path):
    """Seconds the client still had to wait for path (counted), or 0."""
    now = time.time()
    with STATE.lock:
        left = STATE.not_before.get(path, 0) - SLACK - now
        if left <= 0:
            return 0
        STATE.early.append({"path": path, "early_by_ms": int(left * 1000)})
        return left


def take_fault(path):
    with STATE.lock:
        for f in STATE.faults:
            if not path.startswith(f.get("path", "")) or f.get("count", 1) <= 0:
                continue
            if f.get("skip", 0) > 0:
                f["skip"] -= 1
                continue
            f["count"] = f.get("count", 1) - 1
            return dict(f)
    return None


def sort_key(coll):
    kf, tf = KEYS.get(coll, "id"), TIMES.get(coll, "updated_at")

    def key(it):
        k = it.get(kf)
        ks = (0, int(k), "") if isinstance(k, int) or str(k).isdigit() else (1, 0, str(k))
        return (parse_time(it.get(tf)) or 0, ks)
    return key


def encode_cursor(key):
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(tok):
    pad = "=" * (-len(tok) % 4)
    k = json.loads(base64.urlsafe_b64decode(tok + pad))
    return (k[0], tuple(k[1]))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing ----
    def send(self, code, body, ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        url = urlsplit(self.path)
        body = self.read_body()
        if url.path.startswith("/_control/"):
            return self.control(url.path[len("/_control/"):], body)
        if url.path == "/oauth/token":
            if self.refuse_early(url.path):
                return
            fault = take_fault(url.path)
            if fault and self.apply_fault(fault, url.path):
                return
            return self.token(body)
        self.send(404, {"error": "not found"})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_control/stats":
            with STATE.lock:
                return self.send(200, {"paths": STATE.paths, "requests": STATE.requests,
                                       "tokens": STATE.token_count,
                                       "early_retries": len(STATE.early),
                                       "early": STATE.early})
        with STATE.lock:
            STATE.paths[url.path] = STATE.paths.get(url.path, 0) + 1
            STATE.requests.append(self.path)
        if self.refuse_early(url.path):
            return
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if parts[0] not in ("tracker", "wiki") or len(parts) < 2:
            return self.send(404, {"error": "no such endpoint"})
        if not self.authorized(parts[0]):
            return self.send(401, {"error": "unauthorized"},
                             headers={"WWW-Authenticate": "Bearer"})
        fault = take_fault(url.path)
        if fault and self.apply_fault(fault, url.path):
            return
        status, body, headers = self.route(parts, q, url.path)
        raw = json.dumps(body).encode()
        if fault and fault["type"] == "truncate":
            raw = raw[: len(raw) // 2]
        elif fault and fault["type"] == "bad_utf8":
            i = raw.find(b"zebra")
            raw = raw[:i] + b"\xff\xfe" + raw[i:] if i >= 0 else raw + b"\xff"
        elif fault and fault["type"] == "ratelimit":
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(fault.get("reset", 1))
            wait_for(url.path, time.time() + fault.get("reset", 1))
        self.send(status, raw, headers=headers)
        if fault and fault["type"] == "touch":
            with STATE.lock:
                coll = fault["collection"]
                for k in fault.get("ids", []):
                    it = STATE.find(coll, k)
                    if it:
                        it[TIMES.get(coll, "updated_at")] = STATE.next_tick()

    def refuse_early(self, path):
        """Answer 429 to a request that did not wait as asked; True if so."""
        left = too_early(path)
        if not left:
            return False
        self.send(429, {"error": "retried %.3f s before Retry-After" % left},
                  headers={"Retry-After": str(int(math.ceil(left)))})
        return True

    def apply_fault(self, f, path):
        t = f["type"]
        if t == "status":
            h = {}
            now = time.time()
            if "retry_after" in f:
                h["Retry-After"] = str(f["retry_after"])
                wait_for(path, now + f["retry_after"])
            if "reset" in f:
                h["X-RateLimit-Remaining"] = "0"
                h["X-RateLimit-Reset"] = str(f["reset"])
                if "retry_after" not in f and "retry_after_date" not in f:
                    wait_for(path, now + f["reset"])
            if "retry_after_date" in f:
                # An HTTP-date has whole seconds: the wait ends at that second.
                until = int(now + f["retry_after_date"])
                h["Retry-After"] = email.utils.formatdate(until, usegmt=True)
                wait_for(path, until)
            self.send(f.get("code", 503), {"error": "injected %d" % f.get("code", 503)},
                      headers=h)
            return True
        if t == "stall":
            time.sleep(f.get("seconds", 5))
            return False
        if t == "not_json":
            self.send(200, "<html><body>Maintenance</body></html>", ctype="text/html")
            return True
        if t == "echo_auth":
            self.send(400, {"error": "bad request", "you_sent": {
                "authorization": self.headers.get("Authorization"),
                "x-api-key": self.headers.get("X-API-Key")}})
            return True
        return False

    def authorized(self, profile):
        auth = self.headers.get("Authorization") or ""
        if profile == "tracker":
            if auth == "Bearer " + TRACKER_TOKEN or self.headers.get("X-API-Key") == TRACKER_TOKEN:
                return True
            if auth.startswith("Basic "):
                try:
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                except ValueError:
                    return False
                return user == "bot" and pw == TRACKER_TOKEN
            return False
        if not auth.startswith("Bearer "):
            return False
        with STATE.lock:
            exp = STATE.tokens.get(auth[7:])
        return exp is not None and exp > time.time()

    def token(self, body):
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials" or (cid, secret) != WIKI_CLIENT:
            return self.send(401, {"error": "invalid_client"})
        with STATE.lock:
            STATE.token_count += 1
            tok = "wiki-token-%d-%d" % (STATE.token_count, int(time.time() * 1000) % 100000)
            STATE.tokens[tok] = time.time() + STATE.token_ttl
            ttl = STATE.token_ttl
        self.send(200, {"access_token": tok, "token_type": "bearer", "expires_in": ttl})

    def control(self, what, body):
        arg = json.loads(body) if body else None
        with STATE.lock:
            if what == "reset":
                STATE.reset()
            elif what == "faults":
                STATE.faults.extend(copy.deepcopy(arg))
            elif what == "config":
                STATE.token_ttl = arg.get("token_ttl", STATE.token_ttl)
                STATE.max_limit = arg.get("max_limit", STATE.max_limit)
            elif what == "expire_tokens":
                STATE.tokens.clear()
            elif what in ("update", "add", "delete"):
                coll = arg["collection"]
                tf = TIMES.get(coll, "updated_at")
                if what == "add":
                    item = dict(arg["item"])
                    if tf not in item:  # given: an item that shows up late
                        item[tf] = STATE.next_tick()
                    STATE.data[coll].append(item)
                else:
                    it = STATE.find(coll, arg["id"])
                    if it is None:
                        return self.send(404, {"error": "no such item"})
                    if what == "update":
                        it.update(arg.get("set", {}))
                        # "touch": false changes the item behind its time's back,
                        # as a permission change in many SaaS APIs does
                        if tf in it and arg.get("touch", True):
                            it[tf] = STATE.next_tick()
                    else:
                        STATE.data[coll].remove(it)
                        STATE.deleted[coll].append({"id": it[KEYS.get(coll, "id")],
                                                    "deleted_at": STATE.next_tick()})
            else:
                return self.send(404, {"error": "unknown control " + what})
        self.send(200, {"ok": True})

    # ---- the APIs ----
    def route(self, parts, q, path):
        profile, name = parts[0], parts[1]
        with STATE.lock:
            if profile == "wiki" and name == "pages" and len(parts) == 4 \
                    and parts[3] == "permissions":
                page = STATE.find("wiki.pages", parts[2])
                if page is None:
                    return 404, {"error": "no such page"}, {}
                return 200, self.wiki_permissions(page), {}
            coll = profile + "." + name
            if len(parts) == 3 and parts[2] == "deleted" and coll in STATE.deleted:
                items = [dict(d) for d in STATE.deleted[coll]]
                tf = "deleted_at"
            elif len(parts) == 2 and coll in STATE.data:
                items = [self.view(coll, it) for it in STATE.data[coll]]
                tf = TIMES.get(coll, "updated_at")
            else:
                return 404, {"error": "no such endpoint"}, {}
        since = q.get("updated_since") or q.get("since")
        if since:
            s = parse_time(since)
            items = [it for it in items if (parse_time(it.get(tf)) or 0) >= s]
        key = sort_key(coll) if tf != "deleted_at" else \
            (lambda it: (parse_time(it["deleted_at"]), (0, 0, str(it["id"]))))
        items.sort(key=key)
        return self.page(items, key, q, path, profile)

    def page(self, items, key, q, path, profile):
        limit = min(int(q.get("limit") or q.get("per_page") or 10), STATE.max_limit)
        base = {k: v for k, v in q.items() if k not in ("page", "offset", "cursor")}
        if "page" in q:
            start = (int(q["page"]) - 1) * limit
            nxt = dict(base, page=int(q["page"]) + 1)
        elif "offset" in q:
            start = int(q["offset"])
            nxt = dict(base, offset=start + limit)
        else:
            start = 0
            if q.get("cursor"):
                after = decode_cursor(q["cursor"])
                items = [it for it in items if key(it) > after]
            nxt = None
        chunk = items[start:start + limit]
        more = start + limit < len(items)
        token = encode_cursor(list(key(chunk[-1]))) if chunk and more else None
        if nxt is None and token:
            nxt = dict(base, cursor=token)
        headers = {}
        if more:
            headers["Link"] = '<%s?%s>; rel="next", <%s>; rel="first"' % (
                path, urlencode(nxt), path)
        if profile == "tracker":
            return 200, {"items": chunk, "next_cursor": token, "total": len(items)}, headers
        return 200, {"results": chunk, "paging": {"next": token}, "size": len(chunk)}, headers

    def view(self, coll, it):
        it = dict(it)
        if coll == "tracker.tickets":
            proj = STATE.find("tracker.projects", it["project"])
            it["acl"] = {"users": [it["reporter"]], "groups": proj["groups"] if proj else []}
        elif coll == "tracker.comments":
            t = STATE.find("tracker.tickets", it["ticket_id"])
            proj = STATE.find("tracker.projects", t["project"]) if t else None
            it["acl"] = {"users": [t["reporter"]] if t else [],
                         "groups": proj["groups"] if proj else []}
        elif coll == "wiki.pages":
            it = {k: v for k, v in it.items() if k != "restrictions"}
        return it

    def wiki_permissions(self, page):
        r = page["restrictions"]
        if r["users"] or r["groups"]:
            return {"users": list(r["users"]), "groups": list(r["groups"]), "source": "page"}
        sp = STATE.find("wiki.spaces", page["space"])
        return {"users": [], "groups": list(sp["groups"]) if sp else [], "source": "space"}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (a stall past its timeout) is not news.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    args = sys.argv[1:]
    tls = None
    if "--tls" in args:
        i = args.index("--tls")
        tls = args[i + 1:i + 3]
        del args[i:i + 3]
    port = int(args[0]) if args else 0
    srv = Server(("127.0.0.1", port), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
