#!/usr/bin/python3
"""bench/ultr_xgboost.py: the outside reference row of Experiment 1 (issue 5): XGBoost
rank:ndcg (Debian's python3-xgboost) trained on ALL training labels of each MQ2008 fold,
i.e. a tree-model full-information skyline beside causeway's linear skyline.

Protocol as bench/ultr_experiment (METHODS.md sections 3-5): FoldK trains on
S(K..K+2), validates on S(K+3), tests on S(K+4); test nDCG@1,3,5,10 with gain 2^y - 1, the
ideal over the query's candidates, queries without a relevant document dropped, ties in
row order; mean +- sample std over the 5 folds. Hyper-parameters are fixed here, before
any test figure was seen (XGBoost's ranking defaults, depth 6, eta 0.1), and the number
of trees is chosen by early stopping on validation nDCG@10 (patience 50), like the linear
models' epochs."""
import argparse, math, os, statistics, sys

import numpy as np
import xgboost as xgb


def read_letor(path):
    """Rows, labels and contiguous query group sizes of an SVMlight LETOR file."""
    X, y, qids = [], [], []
    for line in open(path):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        y.append(float(line[0]))
        qids.append(line[1].split(":", 1)[1])
        row = {}
        for tok in line[2:]:
            k, v = tok.split(":")
            row[int(k)] = float(v)
        X.append(row)
    nf = max(max(r) for r in X)
    A = np.zeros((len(X), nf))
    for i, r in enumerate(X):
        for k, v in r.items():
            A[i, k - 1] = v
    groups = []
    for i, q in enumerate(qids):
        if i == 0 or q != qids[i - 1]:
            groups.append(0)
        groups[-1] += 1
    return A, np.array(y), groups


def cat(parts):
    return (np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            sum((p[2] for p in parts), []))


def ndcg_at(scores, labels, groups, k):
    """Mean nDCG@k over queries with a relevant document (causeway's rank_letor_ndcg)."""
    out, b = [], 0
    for g in groups:
        s, l = scores[b:b + g], labels[b:b + g]
        b += g
        ideal = sorted(l, reverse=True)
        idcg = sum((2 ** v - 1) / math.log2(i + 2) for i, v in enumerate(ideal[:k]))
        if idcg <= 0:
            continue
        order = sorted(range(g), key=lambda i: (-s[i], i))  # ties: row order
        dcg = sum((2 ** l[j] - 1) / math.log2(i + 2) for i, j in enumerate(order[:k]))
        out.append(dcg / idcg)
    return sum(out) / len(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="mq2008 directory with S1.txt .. S5.txt")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    S = [read_letor(os.path.join(a.data, f"S{i}.txt")) for i in range(1, 6)]
    cut = (1, 3, 5, 10)
    res = {k: [] for k in cut}
    for fold in range(5):
        tr = cat([S[(fold + i) % 5] for i in range(3)])
        va, te = S[(fold + 3) % 5], S[(fold + 4) % 5]
        dtr = xgb.DMatrix(tr[0], label=tr[1])
        dtr.set_group(tr[2])
        dva = xgb.DMatrix(va[0], label=va[1])
        dva.set_group(va[2])
        params = {"objective": "rank:ndcg", "eval_metric": "ndcg@10", "eta": 0.1,
                  "max_depth": 6, "seed": a.seed, "nthread": 1, "tree_method": "exact"}
        bst = xgb.train(params, dtr, num_boost_round=1000, evals=[(dva, "valid")],
                        early_stopping_rounds=50, verbose_eval=False)
        dte = xgb.DMatrix(te[0])
        pred = bst.predict(dte, iteration_range=(0, bst.best_iteration + 1))
        vals = {k: ndcg_at(pred, te[1], te[2], k) for k in cut}
        for k in cut:
            res[k].append(vals[k])
        print(f"fold {fold + 1}: trees {bst.best_iteration + 1}, " +
              ", ".join(f"nDCG@{k} {vals[k]:.4f}" for k in cut), file=sys.stderr)
    print("| method | " + " | ".join(f"nDCG@{k}" for k in cut) + " |")
    print("|---|" + "---|" * len(cut))
    print(f"| xgboost rank:ndcg (all labels, xgboost {xgb.__version__}) | " +
          " | ".join(f"{statistics.mean(res[k]):.4f} +- {statistics.stdev(res[k]):.4f}"
                     for k in cut) + " |")


if __name__ == "__main__":
    main()
