#!/usr/bin/python3
"""bench/dense_hnswlib.py: hnswlib (Debian python3-hnswlib) on the vectors written by
bench/dense_ann, single-threaded, same M/efConstruction: build time (wall and CPU),
memory, recall@10 and QPS per ef (wall and CPU). The index is saved next to the data;
with "reuse" as fifth argument it is loaded instead of rebuilt (search figures only).
Called by bench/dense_bench.sh."""
import os
import resource
import sys
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main():
    out, m, efc, efs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    reuse = len(sys.argv) > 5 and sys.argv[5] == "reuse"
    qs = read_vecs(out + "/query.fvecs", np.float32)
    gt = read_vecs(out + "/gt.ivecs", np.int32)
    path = out + "/hnswlib.bin"
    d = qs.shape[1]
    idx = hnswlib.Index(space="ip", dim=d)
    if reuse and os.path.exists(path):
        idx.load_index(path)
        print("hnswlib: loaded " + path)
    else:
        base = read_vecs(out + "/base.fvecs", np.float32)
        n = base.shape[0]
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0, c0 = time.perf_counter(), cpu()
        idx.init_index(max_elements=n, M=m, ef_construction=efc, random_seed=1)
        idx.set_num_threads(1)
        idx.add_items(base, np.arange(n), num_threads=1)
        build, build_cpu = time.perf_counter() - t0, cpu() - c0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"hnswlib build: {build:.1f} s wall, {build_cpu:.1f} s CPU single-threaded "
              f"(M {m}, efConstruction {efc}), peak RSS {rss1:.0f} MiB ({rss0:.0f} with the "
              f"data loaded)")
        del base
        idx.save_index(path)
    idx.set_num_threads(1)
    nq = qs.shape[0]
    for ef in [int(x) for x in efs.split(",")]:
        idx.set_ef(ef)
        idx.knn_query(qs[:100], k=10, num_threads=1)
        # All queries in one call with one thread: hnswlib loops over them in C, so no
        # Python overhead is charged to it (the fairest setting for the baseline).
        t0, c0 = time.perf_counter(), cpu()
        labels, _ = idx.knn_query(qs, k=10, num_threads=1)
        secs, csecs = time.perf_counter() - t0, cpu() - c0
        found = sum(len(set(labels[i]) & set(gt[i])) for i in range(nq))
        print(f"hnswlib ef {ef}: recall@10 {found / (nq * 10):.4f} QPS {nq / secs:.0f} "
              f"CPU-QPS {nq / max(csecs, 1e-9):.0f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
