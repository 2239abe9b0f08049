#!/usr/bin/python3
"""fasttext_embed.py - word vectors trained on a corpus, served as an
OpenAI-compatible embeddings endpoint on 127.0.0.1, to measure them beside
ctxgate's built-in embedders (docs/benchmarks.md, "fastText instead of lsa").

    python3 bench/fasttext_embed.py train CORPUS.txt MODEL.bin [--dim 128] [--epoch 20]
    python3 bench/fasttext_embed.py serve MODEL.bin CORPUS.txt PORT [--plain]

CORPUS.txt is one text a line (e.g. the chunks' text out of the store). A
text's vector is the mean of its words' unit vectors, each weighted by its
IDF over CORPUS's lines (--plain: unweighted), then scaled to unit length.
Point ctxgate at it with
    "embeddings": {"provider": "openai", "base_url": "http://127.0.0.1:PORT/v1",
                   "model": "fasttext", "dim": 128}
Needs Debian's python3-fasttext and python3-numpy.
"""
import argparse
import collections
import json
import math
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fasttext
import numpy as np

WORD = re.compile(r"[a-z0-9]+")


def words(text):
    return WORD.findall(text.lower())


def train(args):
    tmp = args.model + ".txt"
    with open(args.corpus, encoding="utf-8", errors="replace") as src, \
            open(tmp, "w", encoding="utf-8") as out:
        for line in src:
            out.write(" ".join(words(line)) + "\n")
    model = fasttext.train_unsupervised(tmp, model="skipgram", dim=args.dim, epoch=args.epoch,
                                        minCount=2, thread=args.threads, verbose=0)
    model.save_model(args.model)


def serve(args):
    model = fasttext.load_model(args.model)
    dim = model.get_dimension()
    df, lines = collections.Counter(), 0
    with open(args.corpus, encoding="utf-8", errors="replace") as src:
        for line in src:
            lines += 1
            df.update(set(words(line)))

    def embed(text):
        acc = np.zeros(dim)
        for w in words(text):
            v = model.get_word_vector(w)
            norm = np.linalg.norm(v)
            if norm > 0:
                weight = 1.0 if args.plain else math.log((lines + 1) / (df.get(w, 0) + 1))
                acc += weight * v / norm
        norm = np.linalg.norm(acc)
        return (acc / norm if norm > 0 else acc).tolist()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            out = json.dumps({"model": body.get("model"), "data": [
                {"index": i, "embedding": embed(t)} for i, t in enumerate(texts)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("corpus")
    t.add_argument("model")
    t.add_argument("--dim", type=int, default=128)
    t.add_argument("--epoch", type=int, default=20)
    t.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("serve")
    s.add_argument("model")
    s.add_argument("corpus")
    s.add_argument("port", type=int)
    s.add_argument("--plain", action="store_true")
    args = ap.parse_args()
    train(args) if args.cmd == "train" else serve(args)


if __name__ == "__main__":
    main()
