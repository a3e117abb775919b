#!/usr/bin/env python3
"""bench/ultr_rerank_latency.py: what reranking the top 100 with a model adds to /search
(issue 5 target: < 0.2 ms median). Two `causeway serve` instances on one index, cache off:
BM25 alone and a linear cw-text-v1 model; the same queries alternate between them, and
the server-side took_ms of each answer is collected. Prints medians and the difference."""
import argparse, json, os, shutil, statistics, subprocess, sys, time, urllib.parse, urllib.request

FEATURES = ["bm25_title", "bm25_text", "bm25_flat", "coverage", "idf_sum_matched",
            "idf_max_matched", "idf_mean_query", "query_terms", "log_len_title",
            "log_len_text", "proximity"]


def start(cw, ix, db, portfile, model):
    if os.path.exists(portfile):
        os.unlink(portfile)
    cmd = [cw, "serve", "--index", ix, "--db", db, "--port", "0", "--port-file", portfile,
           "--cache-mb", "0", "--threads", "1", "--sync", "normal"]
    if model:
        cmd += ["--model", model]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(portfile) and open(portfile).read().strip():
            port = int(open(portfile).read())
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                return p, port
            except OSError:
                pass
        time.sleep(0.05)
    p.kill()
    sys.exit("server did not start")


def search(port, q):
    url = f"http://127.0.0.1:{port}/search?k=10&q=" + urllib.parse.quote_plus(q)
    body = json.loads(urllib.request.urlopen(url, timeout=20).read())
    return body["took_ms"], body["policy"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--causeway", required=True)
    ap.add_argument("--data", required=True, help="cranfield directory")
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    ix = os.path.join(a.work, "cran.idx")
    if not os.path.exists(ix):
        subprocess.run([a.causeway, "index", "build", "--corpus",
                        os.path.join(a.data, "corpus.jsonl"), "--out", ix, "--quiet"], check=True)
    model = os.path.join(a.work, "linear11.json")
    with open(model, "w") as f:  # weights do not change the cost of a linear model
        json.dump({"format": "causeway-model", "version": 1, "kind": "linear",
                   "features": FEATURES,
                   "normalization": {"mean": [0.0] * 11, "scale": [1.0] * 11},
                   "params": {"weights": [1.0, 0.5, 1.0, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0, -0.1, 0.3],
                              "bias": 0.0}}, f)
    queries = [l.split("\t", 1)[1].strip() for l in open(os.path.join(a.data, "queries.tsv"))]
    servers = {}
    for name, m in (("bm25", None), ("model", model)):
        db = os.path.join(a.work, f"lat_{name}.sqlite")
        for ext in ("", "-wal", "-shm"):
            if os.path.exists(db + ext):
                os.unlink(db + ext)
        servers[name] = start(a.causeway, ix, db, os.path.join(a.work, f"port_{name}"), m)
    took = {"bm25": [], "model": []}
    try:
        for q in queries[:20]:  # warm up both (page cache, allocator)
            for name in took:
                search(servers[name][1], q)
        for _ in range(a.rounds):
            for q in queries:
                for name in took:
                    t, pol = search(servers[name][1], q)
                    assert pol == ("model" if name == "model" else "bm25"), pol
                    took[name].append(t)
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait()
    mb, mm = statistics.median(took["bm25"]), statistics.median(took["model"])
    print(f"queries {len(queries)} x {a.rounds} rounds, k = 10, server took_ms medians:")
    print(f"  bm25 alone              {mb:.3f} ms")
    print(f"  model reranking top 100 {mm:.3f} ms")
    print(f"  added by reranking      {mm - mb:.3f} ms (ratio {mm / mb:.2f})")


if __name__ == "__main__":
    main()
