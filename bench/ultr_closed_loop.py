#!/usr/bin/env python3
"""bench/ultr_closed_loop.py: Experiment 2 of issue 5, the closed loop through the real
server on Cranfield: serve BM25, simulate PBM users against the HTTP API (METHODS.md
section 3), fit propensities from the server's own log (regression-EM), train IPS and naive
rankers from that log with `causeway train --db`, hot-reload each into the running server
and measure nDCG@10 on held-out queries before and after.

Query folds: odd query ids carry the simulated traffic, even ids are held out. A second
server instance on the same index and model file answers the evaluation queries, so they do
not enter the training log. Usage: see --help (bench/ultr_closed_loop.sh runs it)."""
import argparse
import http.client
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse

THETA = [.68, .61, .48, .34, .28, .20, .11, .10, .08, .06]  # METHODS.md section 3


def start_server(bin_, index, db, model, work, name, extra=()):
    port_file = os.path.join(work, name + ".port")
    if os.path.exists(port_file):
        os.remove(port_file)
    proc = subprocess.Popen([bin_, "serve", "--index", index, "--db", db, "--model", model,
                             "--port", "0", "--port-file", port_file, "--sync", "normal",
                             "--cache-mb", "0", "--threads", "2"] + list(extra),
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, name + ".log"), "a"))
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, int(open(port_file).read().strip())
        if proc.poll() is not None:
            sys.exit("server %s exited: see %s.log" % (name, name))
        time.sleep(0.05)
    proc.terminate()
    sys.exit("server %s did not start" % name)


class Server:
    """A causeway serve process; restarted on the same log if it dies (acknowledged events
    survive a crash of the process with --sync normal), and the restarts are counted."""

    def __init__(self, bin_, index, db, model, work, name, extra=()):
        self.args = (bin_, index, db, model, work, name, extra)
        self.proc, self.port = start_server(*self.args)
        self.restarts = 0

    def revive(self):
        if self.proc.poll() is None:
            return False
        self.restarts += 1
        print("server %s died (exit %s), restarting on the same log" %
              (self.args[5], self.proc.returncode), file=sys.stderr)
        self.proc, self.port = start_server(*self.args)
        return True

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Client:
    def __init__(self, server):
        self.server = server
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def call(self, method, path, body=None):
        # Searches are safe to repeat and events carry event_ids (the server acknowledges a
        # resent event as a duplicate), so a dropped connection is retried, after restarting
        # the server if it died.
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=body,
                                  headers={"Content-Type": "application/json"} if body else {})
                r = self.conn.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    ConnectionRefusedError):
                self.conn.close()
                time.sleep(0.2)
                self.server.revive()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
                if attempt == 2:
                    raise
        if r.status != 200:
            sys.exit("%s %s: HTTP %d %s" % (method, path, r.status, data[:300]))
        return json.loads(data)

    def search(self, qid, text, k):
        q = urllib.parse.urlencode({"q": text, "k": k, "qid": qid})
        return self.call("GET", "/search?" + q)


def evaluate(bin_, client, queries, qrels_path, work, tag):
    run = os.path.join(work, tag + ".run")
    with open(run, "w") as f:
        for qid, text in queries:
            res = client.search(qid, text, 100)
            for r in res["results"]:
                f.write("%s Q0 %s %d %.9g %s\n" % (qid, r["id"], r["position"],
                                                   1000.0 - r["position"], tag))
    out = subprocess.run([bin_, "eval", "--qrels", qrels_path, "--metrics", "ndcg@10,map,p@10",
                          run], capture_output=True, text=True, check=True).stdout
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "all" and parts[0] in ("ndcg_cut_10", "map", "P_10"):
            vals[parts[0]] = float(parts[2])
    return vals


def split_log(log_db, work, holdout, seed):
    """Splits the log by session (one impression = one simulated session) into
    work/fit.sqlite (1 - holdout of the sessions) and work/heldout.sqlite (the rest), by a
    seeded shuffle of the impression ids. Each copy keeps the whole schema and drops the other
    part's impressions with their items and events. Returns (fit, heldout, n_fit, n_held)."""
    src = sqlite3.connect("file:%s?mode=ro" % log_db, uri=True)
    ids = [r[0] for r in src.execute("SELECT id FROM impressions ORDER BY id")]
    r = random.Random(seed)
    r.shuffle(ids)
    n_held = int(round(holdout * len(ids)))
    parts = {"heldout": set(ids[n_held:]), "fit": set(ids[:n_held])}  # ids to DELETE
    out = {}
    for name, drop in parts.items():
        path = os.path.join(work, name + ".sqlite")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        dst = sqlite3.connect(path)
        src.backup(dst)
        dst.execute("CREATE TEMP TABLE drop_ids(id INTEGER PRIMARY KEY)")
        dst.executemany("INSERT INTO drop_ids VALUES (?)", ((i,) for i in drop))
        dst.execute("DELETE FROM events WHERE impression_id IN (SELECT id FROM drop_ids)")
        kind = dst.execute("SELECT type FROM sqlite_master WHERE name = 'items'").fetchone()
        if kind and kind[0] == "table":
            dst.execute("DELETE FROM items WHERE impression_id IN (SELECT id FROM drop_ids)")
        dst.execute("DELETE FROM impressions WHERE id IN (SELECT id FROM drop_ids)")
        dst.commit()
        dst.execute("VACUUM")
        dst.close()
        out[name] = path
    src.close()
    return out["fit"], out["heldout"], len(ids) - n_held, n_held


def snips_estimates(bin_, db, models, metric, mc):
    """SNIPS estimate of `metric` for each model (a deterministic ranker over the logged
    items of every impression) from the stochastic log db: causeway ope, METHODS.md
    section 6. Returns {model: (value, se, n_eff)}."""
    cmd = [bin_, "ope", "--db", db, "--estimators", "snips", "--metric", metric,
           "--bootstrap", "0", "--mc-samples", str(mc), "--json"]
    for m in models:
        cmd += ["--policy", m]
    doc = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    res = {}
    for p in doc["policies"]:
        e = p["estimates"][0]
        if not e.get("valid"):
            sys.exit("SNIPS not valid for %s: %s" % (p["policy"], e.get("error")))
        res[p["policy"]] = (e["value"], e["se"], e["n_eff"])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--causeway", required=True, help="the causeway binary")
    ap.add_argument("--data", required=True, help="the cranfield data folder")
    ap.add_argument("--work", required=True, help="scratch folder (created)")
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=5)
    # Stochastic logging (issue 5 follow-up): the users' server draws each page of --page
    # results from this policy (e.g. pl:2, Plackett-Luce over BM25 / 2) and users examine
    # only its top 10 (theta_k = 0 below), so candidates beyond the deterministic top 10
    # get shown and clicked with positive probability. Default: deterministic, k = 10.
    ap.add_argument("--logging-policy", default=None)
    ap.add_argument("--page", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3000, help="full-batch Adam epochs")
    ap.add_argument("--max-rank", type=int, default=None,
                    help="train on the items logged at ranks 1..N only (causeway train --max-rank)")
    ap.add_argument("--policy-aware", default=None,
                    help="also train policy-aware IPS (causeway train --policy-aware SPEC, the "
                         "logging policy, e.g. pl:2) and skip the post-hoc clipped row")
    ap.add_argument("--snips-tau", default=None,
                    help="comma list of clipping values (e.g. 0,0.05,0.1,0.2,0.3,0.5): split the "
                         "log by session, train IPS-REM with each tau on the fit part, pick the tau "
                         "whose SNIPS estimate of clicks@10 on the held-out sessions is highest "
                         "(needs --logging-policy), retrain on the whole log with it and serve")
    ap.add_argument("--holdout", type=float, default=0.2,
                    help="share of the logged sessions held out for --snips-tau (default 0.2)")
    ap.add_argument("--ope-mc", type=int, default=2000,
                    help="Monte-Carlo samples of the PL marginals for --snips-tau (causeway ope "
                         "--mc-samples; default 2000)")
    ap.add_argument("--reuse-log", action="store_true",
                    help="keep work/log.sqlite from an earlier run and simulate no sessions")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    rng = random.Random(a.seed)
    index = os.path.join(a.work, "cran.idx")
    if not os.path.exists(index):
        subprocess.run([a.causeway, "index", "build", "--corpus",
                        os.path.join(a.data, "corpus.jsonl"), "--out", index], check=True,
                       stdout=subprocess.DEVNULL)
    queries = [l.rstrip("\n").split("\t", 1) for l in open(os.path.join(a.data, "queries.tsv"))]
    grades = {}
    test_qrels = os.path.join(a.work, "qrels_test.txt")
    with open(test_qrels, "w") as f:
        for line in open(os.path.join(a.data, "qrels.txt")):
            qid, _, doc, rel = line.split()
            grades[(qid, doc)] = int(rel)
            if int(qid) % 2 == 0:
                f.write(line)
    train_q = [q for q in queries if int(q[0]) % 2 == 1]
    test_q = [q for q in queries if int(q[0]) % 2 == 0]
    ymax = 4
    # A linear model on the server's features that reproduces the BM25 order: the
    # starting policy, and the model file every reload reads.
    model = os.path.join(a.work, "serving.json")
    bm25_model = {"format": "causeway-model", "version": 1, "kind": "linear",
                  "features": ["bm25_title", "bm25_text", "bm25_flat"],
                  "normalization": {"mean": [0, 0, 0], "scale": [1, 1, 1]},
                  "params": {"weights": [0, 0, 1], "bias": 0}}
    json.dump(bm25_model, open(model, "w"))
    for f in ("eval.sqlite",) if a.reuse_log else ("log.sqlite", "eval.sqlite"):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(a.work, f + suffix)):
                os.remove(os.path.join(a.work, f + suffix))
    log_db = os.path.join(a.work, "log.sqlite")
    for name in ("serve", "eval"):
        open(os.path.join(a.work, name + ".log"), "w").close()
    extra = []
    if a.logging_policy:
        # The trainer weights clicks by theta of the shown position and does not read the
        # logged PL marginals, so 200 Monte-Carlo samples (not 10^4) keep the server fast.
        cfg = os.path.join(a.work, "serve_config.json")
        json.dump({"mc_samples": 200}, open(cfg, "w"))
        extra = ["--logging-policy", a.logging_policy, "--config", cfg]
    srv = Server(a.causeway, index, log_db, model, a.work, "serve", extra)
    ev = Server(a.causeway, index, os.path.join(a.work, "eval.sqlite"), model, a.work, "eval")
    try:
        users, judge = Client(srv), Client(ev)
        results = {"bm25": evaluate(a.causeway, judge, test_q, test_qrels, a.work, "bm25")}
        t0 = time.time()
        n_clicks = 0
        for s in range(0 if a.reuse_log else a.sessions):
            qid, text = train_q[rng.randrange(len(train_q))]
            res = users.search(qid, text, a.page)
            events = []
            for r in res["results"]:
                k = r["position"]
                y = grades.get((qid, r["id"]), 0)
                exam = THETA[k - 1] ** a.eta if k <= 10 else 0.0
                rel = a.epsilon + (1 - a.epsilon) * (2 ** y - 1) / (2 ** ymax - 1)
                if rng.random() < exam * rel:
                    events.append({"impression_id": res["impression_id"], "doc_id": r["id"],
                                   "position": k, "type": "click", "event_id": "s%d-%d" % (s, k)})
            if events:
                users.call("POST", "/events", json.dumps(events))
                n_clicks += len(events)
        sim_s = time.time() - t0
        print("simulated %d sessions, %d clicks through HTTP in %.1f s" % (a.sessions, n_clicks, sim_s),
              file=sys.stderr)
        truth = os.path.join(a.work, "theta_true.json")
        json.dump([(t / THETA[0]) ** a.eta for t in THETA], open(truth, "w"))
        runs = (("ips-rem", ["--objective", "ips", "--propensity", "rem"]),
                ("ips-rem-clip", ["--objective", "ips", "--propensity", "rem", "--clip", "0.2"]),
                ("ips-true", ["--objective", "ips", "--propensity", truth]),
                ("naive", ["--objective", "naive"]))
        if a.policy_aware:
            pa = ["--policy-aware", a.policy_aware]
            runs = (("ips-rem-pa", ["--objective", "ips", "--propensity", "rem"] + pa),
                    ("ips-true-pa", ["--objective", "ips", "--propensity", truth] + pa),
                    ("ips-rem", ["--objective", "ips", "--propensity", "rem"]),
                    ("ips-true", ["--objective", "ips", "--propensity", truth]),
                    ("naive", ["--objective", "naive"]))
        snips_note = None
        if a.snips_tau:
            if not a.logging_policy:
                sys.exit("--snips-tau needs a stochastic --logging-policy (SNIPS needs logged "
                         "propensities)")
            # Decided before any run: the grid, the 80/20 split by session, SNIPS of clicks@10
            # (ties: the smaller tau); test queries never enter the choice.
            taus = [float(t) for t in a.snips_tau.split(",")]
            fit_db, held_db, n_fit, n_held = split_log(log_db, a.work, a.holdout, a.seed + 1)
            cand = {}
            for tau in taus:
                out = os.path.join(a.work, "snips-tau-%g.json" % tau)
                cmd = [a.causeway, "train", "--db", fit_db, "--out", out, "--epochs",
                       str(a.epochs), "--lr", "0.03", "--batch", "1000", "--seed", str(a.seed),
                       "--quiet", "--objective", "ips", "--propensity", "rem"]
                if tau > 0:
                    cmd += ["--clip", str(tau)]
                if a.max_rank:
                    cmd += ["--max-rank", str(a.max_rank)]
                subprocess.run(cmd, check=True)
                cand[tau] = out
            est = snips_estimates(a.causeway, held_db, [cand[t] for t in taus], "clicks@10",
                                  a.ope_mc)
            best = max(taus, key=lambda t: (est[cand[t]][0], -t))
            lines = ["| tau | SNIPS clicks@10 on held-out sessions | se | n_eff |",
                     "|---|---|---|---|"]
            for t in taus:
                v, se, ne = est[cand[t]]
                mark = "**" if t == best else ""
                lines.append("| %s%g%s | %.4f | %.4f | %.0f |" % (mark, t, mark, v, se, ne))
            snips_note = ("tau chosen by SNIPS on %d held-out sessions (%d fit): %g\n\n%s" %
                          (n_held, n_fit, best, "\n".join(lines)))
            print(snips_note, file=sys.stderr)
            runs = (("ips-rem", ["--objective", "ips", "--propensity", "rem"]),
                    ("ips-rem-snips", ["--objective", "ips", "--propensity", "rem"] +
                     (["--clip", str(best)] if best > 0 else [])),
                    ("ips-true", ["--objective", "ips", "--propensity", truth]),
                    ("naive", ["--objective", "naive"]))
        for name, extra in runs:
            out = os.path.join(a.work, name + ".json")
            # No labels in the loop, so no early stopping: full-batch Adam run to convergence
            # (the linear listwise losses are convex), the same for every objective.
            cmd = [a.causeway, "train", "--db", log_db, "--out", out, "--epochs", str(a.epochs),
                   "--lr", "0.03", "--batch", "1000", "--seed", str(a.seed), "--quiet"] + extra
            if a.max_rank:
                cmd += ["--max-rank", str(a.max_rank)]
            subprocess.run(cmd, check=True)
            os.replace(out, model + ".tmp")
            os.replace(model + ".tmp", model)
            judge.call("POST", "/admin/reload")
            users.call("POST", "/admin/reload")
            results[name] = evaluate(a.causeway, judge, test_q, test_qrels, a.work, name)
        if a.logging_policy:
            print("Logging policy %s over pages of %d, users examine the top 10.\n" %
                  (a.logging_policy, a.page))
        print("Experiment 2, Cranfield, %d sessions of PBM users (eta %g, epsilon %g) on the odd "
              "queries;\nnDCG@10 / MAP / P@10 on the %d even queries (linear gain, trec_eval "
              "conventions), served by causeway serve:\n" % (a.sessions, a.eta, a.epsilon, len(test_q)))
        print("| served ranking | nDCG@10 | MAP | P@10 |\n|---|---|---|---|")
        label = {"bm25": "BM25 (before)",
                 "ips-rem": "IPS, regression-EM propensities fitted on the log",
                 "ips-rem-clip": "IPS, the same propensities clipped at tau = 0.2",
                 "ips-rem-snips": "IPS, REM propensities clipped at the tau chosen by SNIPS",
                 "ips-true": "IPS, the simulator's true propensities (reference)",
                 "ips-rem-pa": "policy-aware IPS (1/rho), regression-EM propensities",
                 "ips-true-pa": "policy-aware IPS (1/rho), the simulator's true propensities",
                 "naive": "naive, same log (contrast)"}
        for name in ["bm25"] + [r[0] for r in runs]:
            v = results[name]
            print("| %s | %.4f | %.4f | %.4f |" % (label[name], v.get("ndcg_cut_10", math.nan),
                                                  v.get("map", math.nan), v.get("P_10", math.nan)))
        if snips_note:
            print("\n" + snips_note)
        if srv.restarts or ev.restarts:
            print("\n(server restarts during the run: %d serving, %d evaluation; see "
                  "serve.log / eval.log)" % (srv.restarts, ev.restarts))
    finally:
        for p in (srv, ev):
            p.stop()


if __name__ == "__main__":
    main()
