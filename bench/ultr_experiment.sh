#!/bin/sh
# bench/ultr_experiment.sh: Experiment 1 of issue 5 (unbiased LTR on LETOR MQ2008, 5 folds,
# PBM eta = 1 and 2, 10^4/10^5/10^6 sessions) and the training-throughput benchmark.
# Usage: bench/ultr_experiment.sh [BUILD_DIR]   (default: the current directory)
# Writes ultr_results.tsv and ultr_summary.md into the build dir; the summary is the
# table of docs/benchmarks.md, "Unbiased LTR (issue 5)".
set -eu
build=${1:-.}
data=${CW_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
exe="$build/bench/ultr_experiment"
[ -x "$exe" ] || { echo "build bench/ultr_experiment first (make bench/ultr_experiment)" >&2; exit 1; }
[ -f "$data/mq2008/S1.txt" ] || { echo "missing $data/mq2008/S1.txt (set CW_SHARED_DATA)" >&2; exit 1; }
export CW_SHARED_DATA="$data"
{
  echo "## throughput (fold 1 click log, 10^6 sessions)"
  "$exe" --throughput 1e6 --folds 1 2>/dev/null
  echo
  echo "## Experiment 1"
  "$exe" --folds 1,2,3,4,5 --sessions 1e4,1e5,1e6 --eta 1,2 --tsv "$build/ultr_results.tsv"
} | tee "$build/ultr_summary.md"
