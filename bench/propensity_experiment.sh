#!/bin/sh
# bench/propensity_experiment.sh: the issue 4 experiment, one command.
#   1. METHODS.md randomization table reproduced at 10^7 sessions (acceptance: 1% per rank)
#   2. simulation-core throughput (in memory, no log writes) and regression-EM fit time over
#      10^7 impressions (MQ2008, deterministic BM25 logger)
#   3. max relative error of theta_k/theta_1 (ranks 2..10) per estimator for
#      eta in {0.5, 1, 2} x {10^4, 10^5, 10^6} sessions on the synthetic corpus
#      (causeway synth + index), Cranfield (BM25 top 20) and MQ2008 (LETOR, BM25 feature 25)
#   4. eta = 2, 10^6 sessions, 5 seeds: randomization and harvesting, median and worst, next
#      to the error the click counts alone imply; the harvesting design (5 rankers, noise
#      1 sd) is chosen from intervention counts printed first (no clicks involved)
#      and a power analysis for R in {5, 8, 12, 16} rankers from click counts alone
#      (no fits; none reaches the 2.5% bound on every collection, so 5 stays the default);
#      beside them an oracle that knows every pair's true relevance, on the same logs: the
#      floor no estimator can beat; then the same at 3 x 10^6 sessions, and at 10^6 under
#      METHODS.md's binary-relevance (1/k)^eta variant (--binary 1)
#   5. click models over 3 seeds with paired per-session log-likelihood differences
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
seeds="$build/propensity_seeds.tsv"
printf 'collection\teta\tsessions\tmethod\tmax_rel_err\tfit_s\titers\tseed\tcount_bound\n' >"$tsv"
cp "$tsv" "$seeds"
cran="--index $work/cran.idx --queries $data/cranfield/queries.tsv --qrels $data/cranfield/qrels.txt"
syn="--index $work/synth.idx --queries $work/synth/queries.tsv --qrels $work/synth/qrels.txt"
# the source options of collection $1 (into $src)
src_of() {
  case $1 in
    synthetic) src=$syn ;; cranfield) src=$cran ;; mq2008) src="--letor $mq" ;;
  esac
}
{
  echo "## Harvesting designs: intervention counts n(k,k') of R rankers (ranker 1 = BM25, the"
  echo "## others BM25 + NOISE x the query's score sd), top 10; no clicks involved"
  echo
  for c in synthetic cranfield mq2008; do
    src_of "$c"
    # shellcheck disable=SC2086
    "$exe" --name $c $src --interventions 2:0.5,3:1,5:0.5,5:1,8:1,5:2
    echo
  done
  echo "## Harvesting power analysis (no estimation): count bound of the clicks harvesting can"
  echo "## use, eta 2, 10^6 sessions, R rankers at noise 1 sd. Rule (set after the 5-ranker"
  echo "## results were seen): the smallest R with a bound <= 2.5% on every collection"
  echo
  for c in synthetic cranfield mq2008; do
    src_of "$c"
    # shellcheck disable=SC2086
    "$exe" --name $c $src --etas 2 --sessions 1e6 --power 5,8,12,16
    echo
  done
  echo "## Randomization table (METHODS.md section 4), 10^7 sessions"
  echo
  "$exe" --table 1e7 --seed 7
  echo
  echo "## Throughput"
  echo
  "$exe" --sim-speed 1e6 --name synthetic-random
  "$exe" --rem-timing 1e7 --letor "$mq" --name mq2008
  echo
  echo "## Click models: held-out (20%) log-likelihood and perplexity, 10^5 RandTop-10 sessions,"
  echo "## paired per-session LL differences vs the generating model over 3 seeds"
  echo
  "$exe" --clickmodels 1e5
  echo
} >"$md"
# shellcheck disable=SC2086
{
  "$exe" --name synthetic $syn
  "$exe" --name cranfield $cran
  "$exe" --name mq2008 --letor "$mq"
} >>"$tsv"
# eta = 2, 10^6 sessions, 5 simulation seeds (collections and rankers fixed); then the same
# for the ULTR protocol's query filter (only queries with a relevant candidate)
for skip in 0 1; do
  for c in synthetic cranfield mq2008; do
    src_of "$c"
    for only in RandTop harvest; do
      # shellcheck disable=SC2086
      "$exe" --name "$c$([ $skip = 1 ] && echo ' (judged queries only)')" $src --etas 2 \
        --sessions 1e6 --seeds 1,2,3,4,5 --only $only --skip-unjudged $skip >>"$seeds"
    done
  done
done
# the per-pair PBM MLE on the same 5-ranker logs, and harvesting with 16 rankers (a second
# design looked at after the 5-ranker results; the power rule above picks no R, not adopted)
for c in synthetic cranfield mq2008; do
  src_of "$c"
  # shellcheck disable=SC2086
  "$exe" --name $c $src --etas 2 --sessions 1e6 --seeds 1,2,3,4,5 --only per-pair >>"$seeds"
  # shellcheck disable=SC2086
  "$exe" --name $c $src --etas 2 --sessions 1e6 --seeds 1,2,3,4,5 --only harvest \
    --harvest 16:1 >>"$seeds"
done
"$exe" --name "mq2008 (judged queries only)" --letor "$mq" --etas 1 --sessions 1e6 \
  --only "regression-EM, linear" --skip-unjudged 1 >>"$seeds"
# eta = 2 under METHODS.md section 3's (1/k)^eta variant: binary relevance, P(c|E) = 1 or 0.1
for c in synthetic cranfield mq2008; do
  src_of "$c"
  for only in RandTop "5 rankers"; do
    # shellcheck disable=SC2086
    "$exe" --name "$c (binary relevance)" $src --etas 2 --sessions 1e6 --seeds 1,2,3,4,5 \
      --only "$only" --binary 1 >>"$seeds"
  done
done
# eta = 2 at 3 x 10^6 sessions: how many sessions the 10^6 targets would need
for c in synthetic cranfield mq2008; do
  src_of "$c"
  for only in RandTop "5 rankers"; do
    # shellcheck disable=SC2086
    "$exe" --name $c $src --etas 2 --sessions 3e6 --seeds 1,2,3,4,5 --only "$only" >>"$seeds"
  done
done

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
  for n in 1000000 3000000; do
  echo "## eta = 2, $n sessions, seeds 1-5: max relative error per seed, median, worst;"
  echo "## count bound = expected max error from the click counts' Bernoulli noise alone"
  echo
  echo "| collection | estimator | seeds 1-5 | median | worst | count bound (median) |"
  echo "|---|---|---|---|---|---|"
  awk -F'\t' -v want="$n" 'NR > 1 && $3 == want {
      key = $1 "|" $4 "|" $2
      if (!(key in n)) { order[++m] = key }
      n[key]++; v[key, n[key]] = $5; b[key, n[key]] = $9
    }
    function med(arr, key, cnt,   i, j, t, a) {
      for (i = 1; i <= cnt; i++) a[i] = arr[key, i]
      for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return cnt % 2 ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
    }
    END {
      for (i = 1; i <= m; i++) {
        k = order[i]; split(k, kk, "|"); line = "| " kk[1] " (eta " kk[3] ") | " kk[2] " |"; w = 0; s = ""
        for (j = 1; j <= n[k]; j++) { s = s sprintf(" %.1f", 100 * v[k, j]); if (v[k, j] + 0 > w) w = v[k, j] }
        bm = b[k, 1] == "nan" ? "nan" : med(b, k, n[k])
        line = line s " | " sprintf("%.1f%%", 100 * med(v, k, n[k])) " | " sprintf("%.1f%%", 100 * w) " | " (bm == "nan" || bm == "" ? "-" : sprintf("%.1f%%", 100 * bm)) " |"
        print line
      }
    }' "$seeds"
  echo
  done
  echo "total runtime: $(( $(date +%s) - start )) s (wall, shared 2-core machine)"
} >>"$md"
cat "$md"
