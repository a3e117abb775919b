#!/bin/sh
# bench/ultr_rerank_latency.sh: latency that reranking the top 100 with a linear
# cw-text-v1 model adds to /search on Cranfield (issue 5), against BM25 alone in the same run.
# Usage: bench/ultr_rerank_latency.sh [BUILD_DIR] [ROUNDS]   (defaults: . and 5)
set -eu
build=${1:-.}
rounds=${2:-5}
data=${CW_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
[ -x "$build/causeway" ] || { echo "build causeway first" >&2; exit 1; }
[ -f "$data/cranfield/corpus.jsonl" ] || { echo "missing $data/cranfield (set CW_SHARED_DATA)" >&2; exit 1; }
exec python3 "$(dirname "$0")/ultr_rerank_latency.py" --causeway "$build/causeway" \
    --data "$data/cranfield" --work "$build/ultr_latency" --rounds "$rounds"
