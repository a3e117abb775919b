#!/usr/bin/python3
"""bench/dense_hnswlib.py: hnswlib (Debian python3-hnswlib) on the vectors written by
bench/dense_ann, single-threaded, same M/efConstruction: build time, memory, recall@10
and QPS per ef. Called by bench/dense_bench.sh."""
import resource
import sys
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


def main():
    out, m, efc, efs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    base = read_vecs(out + "/base.fvecs", np.float32)
    qs = read_vecs(out + "/query.fvecs", np.float32)
    gt = read_vecs(out + "/gt.ivecs", np.int32)
    n, d = base.shape
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    idx = hnswlib.Index(space="ip", dim=d)
    t0 = time.perf_counter()
    idx.init_index(max_elements=n, M=m, ef_construction=efc, random_seed=1)
    idx.set_num_threads(1)
    idx.add_items(base, np.arange(n), num_threads=1)
    build = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hnswlib build: {build:.1f} s single-threaded (M {m}, efConstruction {efc}), "
          f"peak RSS {rss1:.0f} MiB ({rss0:.0f} with the data loaded)")
    nq = qs.shape[0]
    for ef in [int(x) for x in efs.split(",")]:
        idx.set_ef(ef)
        idx.knn_query(qs[:100], k=10, num_threads=1)
        # All queries in one call with one thread: hnswlib loops over them in C, so no
        # Python overhead is charged to it (the fairest setting for the baseline).
        t0 = time.perf_counter()
        labels, _ = idx.knn_query(qs, k=10, num_threads=1)
        secs = time.perf_counter() - t0
        found = sum(len(set(labels[i]) & set(gt[i])) for i in range(nq))
        print(f"hnswlib ef {ef}: recall@10 {found / (nq * 10):.4f} QPS {nq / secs:.0f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
