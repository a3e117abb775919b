#!/bin/sh
# bench/propensity_experiment.sh: the issue 4 experiment, one command.
#   1. METHODS.md randomization table reproduced at 10^7 sessions (acceptance: 1% per rank)
#   2. simulation-core throughput (in memory, no log writes) and regression-EM fit time over
#      10^7 impressions (MQ2008, deterministic BM25 logger)
#   3. max relative error of theta_k/theta_1 (ranks 2..10) per estimator for
#      eta in {0.5, 1, 2} x {10^4, 10^5, 10^6} sessions on the synthetic corpus
#      (causeway synth + index), Cranfield (BM25 top 20) and MQ2008 (LETOR, BM25 feature 25)
# Usage: bench/propensity_experiment.sh [BUILD_DIR]   (default: the current directory)
# Writes propensity_results.tsv and propensity_summary.md into BUILD_DIR.
set -eu
build=${1:-.}
build=$(cd "$build" && pwd)
data=${CW_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
exe="$build/bench/propensity_experiment"
cw="$build/causeway"
[ -x "$exe" ] || { echo "build it first: make bench/propensity_experiment" >&2; exit 1; }
[ -x "$cw" ] || { echo "build causeway first" >&2; exit 1; }
for f in cranfield/corpus.jsonl cranfield/queries.tsv cranfield/qrels.txt mq2008/S1.txt; do
  [ -f "$data/$f" ] || { echo "missing $data/$f (set CW_SHARED_DATA)" >&2; exit 1; }
done
work="$build/propensity_work"
rm -rf "$work"
mkdir -p "$work"
export CAUSEWAY_QUIET=1
export OPENBLAS_NUM_THREADS=1 # single-threaded figures
start=$(date +%s)

"$cw" synth --out "$work/synth" --seed 1 --docs 10000 --queries 200 --quiet
"$cw" index build --corpus "$work/synth/corpus.jsonl" --out "$work/synth.idx" --no-fsync >/dev/null
"$cw" index build --corpus "$data/cranfield/corpus.jsonl" --out "$work/cran.idx" --no-fsync >/dev/null
mq="$data/mq2008/S1.txt,$data/mq2008/S2.txt,$data/mq2008/S3.txt,$data/mq2008/S4.txt,$data/mq2008/S5.txt"

tsv="$build/propensity_results.tsv"
md="$build/propensity_summary.md"
printf 'collection\teta\tsessions\tmethod\tmax_rel_err\tfit_s\titers\n' >"$tsv"
{
  echo "## Randomization table (METHODS.md section 4), 10^7 sessions"
  echo
  "$exe" --table 1e7 --seed 7
  echo
  echo "## Throughput"
  echo
  "$exe" --sim-speed 1e6 --name synthetic-random
  "$exe" --rem-timing 1e7 --letor "$mq" --name mq2008
  echo
  echo "## Click models: held-out (20%) log-likelihood and perplexity, 10^5 RandTop-10 sessions"
  echo
  "$exe" --clickmodels 1e5
  echo
} >"$md"
"$exe" --name synthetic --index "$work/synth.idx" --queries "$work/synth/queries.tsv" \
  --qrels "$work/synth/qrels.txt" >>"$tsv"
"$exe" --name cranfield --index "$work/cran.idx" --queries "$data/cranfield/queries.tsv" \
  --qrels "$data/cranfield/qrels.txt" >>"$tsv"
"$exe" --name mq2008 --letor "$mq" >>"$tsv"

# Table: one row per collection x method, columns eta x sessions.
{
  echo "## Max relative error of theta_k/theta_1 over ranks 2..10 (theta_k = (1/k)^eta)"
  echo
  echo "| collection | estimator | η=0.5: 10^4 | 10^5 | 10^6 | η=1: 10^4 | 10^5 | 10^6 | η=2: 10^4 | 10^5 | 10^6 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR > 1 {
      key = $1 "|" $4
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      v = $5; if (v ~ /^[0-9.]+$/) v = sprintf("%.1f%%", 100 * v); else v = "refused"
      cell[key "|" $2 "|" $3] = v
    }
    END {
      split("0.5 1 2", etas, " "); split("10000 100000 1000000", ns, " ")
      for (i = 1; i <= n; i++) {
        split(order[i], kk, "|"); line = "| " kk[1] " | " kk[2] " |"
        for (e = 1; e <= 3; e++) for (j = 1; j <= 3; j++) {
          c = order[i] "|" etas[e] "|" ns[j]; line = line " " ((c in cell) ? cell[c] : "-") " |"
        }
        print line
      }
    }' "$tsv"
  echo
  echo "total runtime: $(( $(date +%s) - start )) s (wall, shared 2-core machine)"
} >>"$md"
cat "$md"
