#!/usr/bin/env bash
# Index build and query latency of causeway against Xapian 1.4 (the baseline), side by side
# in one run, on a `causeway synth` corpus (default 1,000,000 docs x 200 tokens) and on
# Cranfield. Prints a markdown table for docs/benchmarks.md. Not part of `make check`.
#
#   bench/index_bench.sh                    # from a build in ./build
#   BUILD=/path/to/build DOCS=100000 bench/index_bench.sh
#
# Environment: BUILD (build dir, default ./build), BENCH_DIR (scratch, default
# /tmp/cw-bench), DOCS (synthetic documents), PASSES (measured passes over the queries,
# default 3), XAPIAN_FLUSH_THRESHOLD (default 100000 documents), SKIP_SYNTH / SKIP_CRAN=1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
bench=${BENCH_DIR:-/tmp/cw-bench}
docs=${DOCS:-1000000}
passes=${PASSES:-3}
shared=${CW_SHARED_DATA:-$top/../shared/data}
export XAPIAN_FLUSH_THRESHOLD=${XAPIAN_FLUSH_THRESHOLD:-100000}
export CAUSEWAY_QUIET=1
cw="$build/causeway"
mkdir -p "$bench"

if ! pkg-config --exists xapian-core || ! command -v xapian-compact >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq libxapian-dev xapian-tools >/dev/null
fi
g++ -O2 -o "$bench/xapian_bench" "$top/bench/xapian_bench.cc" \
    $(pkg-config --cflags --libs xapian-core jansson)
make -C "$build" -s bench/bench_search causeway >/dev/null
bs="$build/bench/bench_search"

# Runs a command under /usr/bin/time -v; prints "wall_s peak_rss_kb cpu_s" (stdout of the
# command goes to $2). CPU seconds (user + system) are steadier than wall time on a shared box.
timed() {
    local log=$1 out=$2
    shift 2
    /usr/bin/time -v "$@" >"$out" 2>"$log"
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0;
                    for (i = 1; i <= n; i++) s = s * 60 + a[i]; wall = s }
                /Maximum resident set size/ { rss = $2 }
                /User time|System time/ { cpu += $2 }
                END { printf "%.2f %d %.2f\n", wall, rss, cpu }' "$log"
}

field() { # field NAME < "k1 v1 k2 v2 ..."
    awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'
}

row() { printf '| %s | %s | %s | %s |\n' "$@"; }

bench_collection() {
    local name=$1 corpus=$2 queries=$3
    local d="$bench/$name"
    rm -rf "$d.cw" "$d.xdb" "$d.xdb.compact"
    local bytes
    bytes=$(stat -c %s "$corpus")
    local n_docs
    n_docs=$(wc -l <"$corpus")
    sync
    read -r cw_wall cw_rss cw_cpu < <(timed "$d.cw.time" "$d.cw.out" "$cw" index build \
        --corpus "$corpus" --out "$d.cw")
    sync
    read -r xa_wall xa_rss xa_cpu < <(timed "$d.xa.time" "$d.xa.out" "$bench/xapian_bench" index \
        "$corpus" "$d.xdb")
    xapian-compact "$d.xdb" "$d.xdb.compact" >/dev/null
    local cw_size xa_size xc_size postings
    cw_size=$(du -sb "$d.cw" | cut -f1)
    xa_size=$(du -sb "$d.xdb" | cut -f1)
    xc_size=$(du -sb "$d.xdb.compact" | cut -f1)
    # The same analysis on both sides: Xapian's count of (term, doc) pairs is the
    # denominator of bytes per posting for both.
    postings=$("$bench/xapian_bench" stats "$d.xdb.compact" | field postings)
    local lat=()
    for k in 10 1000; do
        lat+=("$("$bs" --index "$d.cw" --queries "$queries" --k $k --passes "$passes")")
        lat+=("$("$bench/xapian_bench" search "$d.xdb.compact" "$queries" $k "$passes")")
    done
    {
        echo
        echo "### $name: $n_docs documents, $(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}') MB of JSONL, $(wc -l <"$queries") queries, $passes measured passes"
        echo
        row "measure" "causeway" "Xapian 1.4" "ratio (causeway/Xapian)"
        row "---" "---" "---" "---"
        awk -v n="$n_docs" -v b="$bytes" -v c="$cw_wall" -v x="$xa_wall" 'BEGIN {
            printf "| build docs/s | %.0f | %.0f | %.2f |\n", n / c, n / x, x / c
            printf "| build MB/s | %.2f | %.2f | %.2f |\n", b / 1e6 / c, b / 1e6 / x, x / c
            printf "| build wall s | %.2f | %.2f | %.2f |\n", c, x, c / x }'
        awk -v n="$n_docs" -v c="$cw_cpu" -v x="$xa_cpu" 'BEGIN {
            printf "| build CPU s (user+sys) | %.2f | %.2f | %.2f |\n", c, x, c / x
            printf "| build docs per CPU s | %.0f | %.0f | %.2f |\n", n / c, n / x, x / c }'
        awk -v c="$cw_rss" -v x="$xa_rss" 'BEGIN {
            printf "| build peak RSS MB | %.0f | %.0f | %.2f |\n", c / 1024, x / 1024, c / x }'
        awk -v c="$cw_size" -v x="$xa_size" -v xc="$xc_size" -v p="$postings" 'BEGIN {
            printf "| index MB (Xapian: compacted) | %.1f | %.1f | %.2f |\n", c / 1e6, xc / 1e6, c / xc
            printf "| index MB (Xapian: as built) | %.1f | %.1f | %.2f |\n", c / 1e6, x / 1e6, c / x
            printf "| index bytes/posting (%d postings) | %.2f | %.2f | %.2f |\n", p, c / p, xc / p, c / xc }'
        local i=0
        for k in 10 1000; do
            local c=${lat[$i]} x=${lat[$((i + 1))]}
            for m in p50_us p99_us qps; do
                local cv xv
                cv=$(echo "$c" | field $m)
                xv=$(echo "$x" | field $m)
                awk -v m="$m" -v k="$k" -v c="$cv" -v x="$xv" \
                    'BEGIN { printf "| top-%d %s | %.1f | %.1f | %.2f |\n", k, m, c, x, c / x }'
            done
            i=$((i + 2))
        done
        echo
        echo "files, causeway: $(cd "$d.cw" && du -b -- * | awk '{ printf "%s %.1f MB; ", $2, $1 / 1e6 }')"
        echo "files, Xapian compacted: $(cd "$d.xdb.compact" && du -b -- *.glass |
            awk '{ printf "%s %.1f MB; ", $2, $1 / 1e6 }')"
    } | tee -a "$bench/results.md"
}

: >"$bench/results.md"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, causeway $(git -C "$top" rev-parse --short HEAD), Xapian $(pkg-config --modversion xapian-core), XAPIAN_FLUSH_THRESHOLD=$XAPIAN_FLUSH_THRESHOLD" \
    | tee -a "$bench/results.md"
if [ "${SKIP_CRAN:-0}" != 1 ]; then
    bench_collection cranfield "$shared/cranfield/corpus.jsonl" "$shared/cranfield/queries.tsv"
fi
if [ "${SKIP_SYNTH:-0}" != 1 ]; then
    if [ ! -s "$bench/synth-$docs/corpus.jsonl" ]; then
        "$cw" synth --out "$bench/synth-$docs" --docs "$docs" --queries 1000 --seed 1
    fi
    bench_collection "synth-$docs" "$bench/synth-$docs/corpus.jsonl" \
        "$bench/synth-$docs/queries.tsv"
fi
echo "results in $bench/results.md" >&2
