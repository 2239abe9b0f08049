#!/usr/bin/env python3
"""rest_server.py - a SaaS-like list API on 127.0.0.1 for bench/sync_rest.sh.

    python3 bench/rest_server.py VOCAB N [--throttle EVERY]

Serves N documents (ids 1..N, made and encoded once at start) at
GET /api/docs, bearer token "bench-token-0042", cursor-paged as the
tracker of tests/saas/server.py answers: ?limit=L&cursor=C gives
{"items": [...], "next_cursor": C' or null}, ordered by (updated_at, id).
Each item has a title, a body of 190 words from VOCAB (a file, the words
blank-separated; drawn with random()^2 like bench/lib.sh's rows, seeded by
the id, so every run serves the same text), updated_at and acl.groups (two
groups out of 50).
tests/saas/server.py cannot be used for 200,000 items: it copies and sorts
the whole collection on every request.

With --throttle EVERY, every EVERY-th request of /api/ is answered 429
with a Retry-After, alternately "2" (delta-seconds) and an HTTP-date one
to two seconds ahead; a request that comes before that time is answered
429 again (with the wait left) and counted as early.

GET /_stats[?span=K] (no auth) answers what the server saw, from its own
clock: cpu_s (the server's CPU seconds since it started serving),
requests, ok, throttled, early, items (served in 200 answers),
  max_in_1s (most requests of /api/ that arrived within any 1 s),
  min_span_ms (with span: the shortest time K + 1 consecutive requests took),
  retry_after: [{"form", "asked_ms", "gap_ms", "honoured"}] per 429 sent:
    asked_ms from the 429's send to the time it named, gap_ms from that
    send to the next request's arrival; honoured when gap >= asked.
The port is the first line on stdout. Python 3 standard library only.
"""
import bisect
import email.utils
import json
import math
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "bench-token-0042"
BASE = 1767225600  # 2026-01-01T00:00:00Z
WORDS = 190
DELTA = 2          # the delta-seconds Retry-After


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals = []     # time.time() of every /api/ request, in order
        self.ok = self.throttled = self.early = self.items = 0
        self.waits = []        # per 429 sent: {"form", "sent", "until", "next"}
        self.not_before = 0.0  # the time the last 429 named


STATS = Stats()


def document(i, words):
    rng = random.Random(i)
    r, nv = rng.random, len(words)
    ws = [words[int(r() ** 2 * nv)] for _ in range(WORDS)]
    body = ". ".join(" ".join(ws[k:k + 17]) for k in range(0, WORDS, 17))
    return {"id": i, "title": "Document %d %s" % (i, words[(i * 7) % nv]),
            "body": body,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE + i)),
            "acl": {"groups": ["g%d" % (i % 50), "g%d" % ((i * 7) % 50)]}}


def max_in_window(ts, width=1.0):
    """The most arrivals within any half-open window [t, t + width)."""
    best = 0
    for i, t in enumerate(ts):
        best = max(best, bisect.bisect_left(ts, t + width, i) - i)
    return best


def stats(span, cpu0):
    with STATS.lock:
        ts = sorted(STATS.arrivals)
        spans = [b - a for a, b in zip(ts, ts[span:])] if span > 0 else []
        waits = []
        for w in STATS.waits:
            asked = (w["until"] - w["sent"]) * 1000
            gap = None if w["next"] is None else (w["next"] - w["sent"]) * 1000
            waits.append({"form": w["form"], "asked_ms": round(asked, 1),
                          "gap_ms": None if gap is None else round(gap, 1),
                          "honoured": gap is not None and w["next"] >= w["until"]})
        return {"cpu_s": round(time.process_time() - cpu0, 2), "requests": len(ts), "ok": STATS.ok,
                "throttled": STATS.throttled, "early": STATS.early, "items": STATS.items,
                "max_in_1s": max_in_window(ts),
                "min_span_ms": round(min(spans) * 1000, 1) if spans else None,
                "retry_after": waits}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body, headers=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        now = time.time()
        url = urlsplit(self.path)
        if url.path == "/_stats":
            span = parse_qs(url.query).get("span", ["0"])[-1]
            return self.send(200, stats(int(span), self.server.cpu0))
        if url.path != "/api/docs":
            return self.send(404, {"error": "no such endpoint"})
        srv = self.server
        with STATS.lock:
            STATS.arrivals.append(now)
            n = len(STATS.arrivals)
            for w in STATS.waits:
                if w["next"] is None:
                    w["next"] = now
            early = now < STATS.not_before
            if early:
                STATS.early += 1
            throttle = early or (srv.every and n % srv.every == 0)
            if throttle:
                STATS.throttled += 1
        if throttle:
            return self.throttle(early)
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.send(401, {"error": "unauthorized"})
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        limit = min(int(q.get("limit") or 10), 1000)
        start = int(q.get("cursor") or 0)
        end = min(start + limit, len(srv.docs))
        nxt = json.dumps(str(end) if end < len(srv.docs) else None)
        with STATS.lock:
            STATS.ok += 1
            STATS.items += max(end - start, 0)
        self.send(200, b'{"items": [' + b", ".join(srv.docs[start:end]) +
                  b'], "next_cursor": ' + nxt.encode() + b"}")

    def throttle(self, early):
        """429 with a Retry-After; the forms alternate, an early request gets seconds."""
        now = time.time()
        with STATS.lock:
            date = not early and len(STATS.waits) % 2 == 1
            if date:
                # An HTTP-date has whole seconds: the wait ends at that second.
                until = float(int(now) + 2)
                value = email.utils.formatdate(until, usegmt=True)
            else:
                seconds = int(math.ceil(STATS.not_before - now)) if early else DELTA
                until = now + seconds   # for now; from the end of the answer below
                value = str(seconds)
            STATS.not_before = max(STATS.not_before, until)
            wait = {"form": "date" if date else "seconds", "sent": now, "until": until,
                    "next": None}
            STATS.waits.append(wait)
        self.send(429, {"error": "rate limited"}, {"Retry-After": value})
        with STATS.lock:
            # Both the gap and delta-seconds count from the end of the answer: a
            # client cannot start waiting before it has the answer.
            wait["sent"] = time.time()
            if not date:
                wait["until"] = wait["sent"] + int(value)
                STATS.not_before = max(STATS.not_before, wait["until"])


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    args = sys.argv[1:]
    every = 0
    if "--throttle" in args:
        i = args.index("--throttle")
        every = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit("usage: rest_server.py VOCAB N [--throttle EVERY]")
    srv = Server(("127.0.0.1", 0), Handler)
    with open(args[0]) as f:
        words = f.read().split()
    # Made before the port is printed, so a page costs the server a join, not
    # the text's generation: the timings are the client's.
    srv.docs = [json.dumps(document(i, words)).encode() for i in range(1, int(args[1]) + 1)]
    srv.cpu0 = time.process_time()
    srv.every = every
    print(srv.server_address[1], flush=True)
    srv.serve_forever()   # until sync_rest.sh kills it


if __name__ == "__main__":
    main()
