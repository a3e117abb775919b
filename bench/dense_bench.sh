#!/bin/sh
# bench/dense_bench.sh: the dense-retrieval figures of docs/benchmarks.md (issue 6).
#   bench/dense_bench.sh ann [N]      HNSW vs exact vs hnswlib on N x 128 clustered vectors
#   bench/dense_bench.sh quality      BM25 / dense / hybrid nDCG@10, R@100 on Cranfield, CISI
#   bench/dense_bench.sh encode       query-encoding latency and training docs/s
# Run from a build directory (./causeway, bench/dense_ann built); BUILD=... overrides.
set -eu
BUILD=${BUILD:-.}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=${CW_SHARED_DATA:-$SRC/../shared/data}
OUT=${OUT:-/tmp/cw_dense_bench}
PY=${PY:-/usr/bin/python3}
what=${1:-all}

ann() {
    n=${1:-1000000}
    efs=10,16,24,32,48,64,96,128,192,256
    mkdir -p "$OUT/ann"
    # Both sides single-threaded, same data, same M / efConstruction.
    OPENBLAS_NUM_THREADS=1 "$BUILD/bench/dense_ann" --n "$n" --dim 128 --queries 1000 --m 32 \
        --ef-construction 100 --ef "$efs" --out "$OUT/ann" | tee "$OUT/ann/causeway.txt"
    "$PY" "$SRC/bench/dense_hnswlib.py" "$OUT/ann" 32 100 "$efs" | tee "$OUT/ann/hnswlib.txt"
    # QPS of each at matched recall: linear interpolation of QPS along each recall curve.
    "$PY" - "$OUT/ann/causeway.txt" "$OUT/ann/hnswlib.txt" <<'PYEOF'
import re, sys
def curve(path):
    pts = []
    for line in open(path):
        m = re.search(r"ef (\d+): recall@10 ([\d.]+) QPS (\d+)", line)
        if m:
            pts.append((float(m.group(2)), float(m.group(3))))
    return sorted(pts)
def qps_at(pts, r):
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= r <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (r - r0) / (r1 - r0)
    return None
a, b = curve(sys.argv[1]), curve(sys.argv[2])
for r in (0.90, 0.95, 0.98, 0.99):
    qa, qb = qps_at(a, r), qps_at(b, r)
    if qa and qb:
        print(f"matched recall@10 {r:.2f}: causeway {qa:.0f} QPS, hnswlib {qb:.0f} QPS, ratio {qa / qb:.2f}")
PYEOF
}

case "$what" in
ann) ann "${2:-1000000}" ;;
*) echo "usage: $0 ann [N] | quality | encode" >&2; exit 2 ;;
esac
