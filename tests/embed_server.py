#!/usr/bin/env python3
"""A local OpenAI-compatible embeddings server for the tests (stdlib only).

POST /v1/embeddings {"model": m, "input": [texts]} answers
{"data": [{"index": i, "embedding": [...]}], "model": m} with deterministic
vectors of --dim dimensions. Faults are scripted per request through
POST /control {"script": ["429", "500", "ok", "baddim", "stall", ...]}:
each embeddings request pops the next entry (an empty script means "ok").

  429      Too Many Requests with Retry-After: 0
  429date  Too Many Requests with Retry-After as an HTTP-date 2 s on (the
           next whole second + 2), kept in /stats as "until" (epoch seconds)
  429far   Too Many Requests with Retry-After: 3600
  500      Internal Server Error with an OpenAI-style error body
  401      Unauthorized
  baddim   200 with vectors of dim + 1 dimensions
  short    200 with one vector fewer than inputs
  stall    sleep --stall seconds, then answer normally (too late)
  hold     wait until POST /release (at most --stall seconds), then answer
           normally: a test decides when a stuck call ends

POST /control also ends every hold, as does POST /release.
GET /stats answers {"requests": n, "texts": n, "auth": last Authorization,
"holding": requests waiting in a hold now, "times": each request's arrival
(epoch seconds), "until": the last 429date's date, "seen": how many times
each text was asked for, by text}.
The port it listens on is printed on stdout as "PORT <n>" once ready.
"""
import argparse
import email.utils
import hashlib
import json
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"script": [], "requests": 0, "texts": 0, "auth": None, "times": [], "until": 0,
         "seen": {}}
LOCK = threading.Lock()
HOLDS = []  # one Event per request held now


def release():
    with LOCK:
        for ev in HOLDS:
            ev.set()


def vector(text, dim):
    out, i = [], 0
    while len(out) < dim:
        h = hashlib.sha256(("%d:" % i).encode() + text.encode()).digest()
        out.extend(v / 2**31 for v in struct.unpack("<8i", h))
        i += 1
    return out[:dim]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def read_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                stats = {k: STATE[k] for k in ("requests", "texts", "auth", "times", "until", "seen")}
                stats["holding"] = len(HOLDS)
                self.reply(200, stats)
        else:
            self.reply(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        req = self.read_json()
        if self.path == "/control":
            release()
            with LOCK:
                STATE["script"] = list(req.get("script", []))
                STATE["requests"] = STATE["texts"] = 0
            self.reply(200, {"ok": True})
            return
        if self.path == "/release":
            release()
            self.reply(200, {"ok": True})
            return
        if self.path != "/v1/embeddings":
            self.reply(404, {"error": {"message": "no such path"}})
            return
        texts = req.get("input", [])
        if isinstance(texts, str):
            texts = [texts]
        with LOCK:
            step = STATE["script"].pop(0) if STATE["script"] else "ok"
            held = threading.Event()
            if step == "hold":
                HOLDS.append(held)
            STATE["requests"] += 1
            STATE["times"].append(time.time())
            STATE["texts"] += len(texts)
            for t in texts:
                STATE["seen"][t] = STATE["seen"].get(t, 0) + 1
            STATE["auth"] = self.headers.get("Authorization")
        dim = ARGS.dim
        if step == "429":
            self.reply(429, {"error": {"message": "rate limited"}}, [("Retry-After", "0")])
            return
        if step == "429date":
            until = int(time.time()) + 3
            with LOCK:
                STATE["until"] = until
            self.reply(429, {"error": {"message": "rate limited"}},
                       [("Retry-After", email.utils.formatdate(until, usegmt=True))])
            return
        if step == "429far":
            self.reply(429, {"error": {"message": "rate limited"}}, [("Retry-After", "3600")])
            return
        if step == "500":
            self.reply(500, {"error": {"message": "the model is overloaded"}})
            return
        if step == "401":
            self.reply(401, {"error": {"message": "invalid api key"}})
            return
        if step == "stall":
            time.sleep(ARGS.stall)
        if step == "hold":
            held.wait(ARGS.stall)
            with LOCK:
                HOLDS.remove(held)
        if step == "baddim":
            dim += 1
        data = [{"object": "embedding", "index": i, "embedding": vector(t, dim)}
                for i, t in enumerate(texts)]
        if step == "short":
            data = data[:-1]
        self.reply(200, {"object": "list", "data": data, "model": req.get("model")})


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--stall", type=float, default=2.0)
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
