#!/bin/sh
# bench/ultr_closed_loop.sh: Experiment 2 of issue 5, the closed loop through the real server
# on Cranfield (bench/ultr_closed_loop.py does the work).
# Usage: bench/ultr_closed_loop.sh [BUILD_DIR] [SESSIONS]   (defaults: . and 20000)
set -eu
build=${1:-.}
sessions=${2:-20000}
data=${CW_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
[ -x "$build/causeway" ] || { echo "build causeway first" >&2; exit 1; }
[ -f "$data/cranfield/corpus.jsonl" ] || { echo "missing $data/cranfield (set CW_SHARED_DATA)" >&2; exit 1; }
exec python3 "$(dirname "$0")/ultr_closed_loop.py" --causeway "$build/causeway" \
    --data "$data/cranfield" --work "$build/ultr_loop" --sessions "$sessions"
