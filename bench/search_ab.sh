#!/usr/bin/env bash
# bench/search_ab.sh: uncached /search (--cache-mb 0) on Cranfield, two causeway binaries
# against the minimal-MHD floor (bench/mhd_floor.c) in the same run: rounds alternate
# floor, A, B (wrk -t2 -c64 --latency, bench/search.lua over the 225 queries, k=10); prints
# req/s, p50, p99 and server CPU µs/request per round. A before/after measurement of a
# change needs both binaries on a loaded 2-core machine (docs/benchmarks.md "Server").
# Usage: bench/search_ab.sh BIN_A BIN_B   env: DUR (s, 8), ROUNDS (3), OUT (/tmp/search_ab),
#   SERVE_ARGS (extra serve options, default "--cache-mb 0"; "" = the result cache on)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 2 ] || { echo "usage: $0 BIN_A BIN_B" >&2; exit 2; }
bins=("$1" "$2")
out=${OUT:-/tmp/search_ab}
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
data=${CW_SHARED_DATA:-$top/../shared/data}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
gcc -O2 -o "$out/mhd_floor" "$top/bench/mhd_floor.c" $(pkg-config --cflags --libs libmicrohttpd jansson)
[ -d "$out/cran" ] || "${bins[0]}" index build --corpus "$data/cranfield/corpus.jsonl" --out "$out/cran" --quiet
"$out/mhd_floor" 0 2 >"$out/floor.port" &
pids+=($!)
sleep 1
fport=$(grep -o '[0-9]*' "$out/floor.port" | head -1)
ports=()
spids=()
for i in 0 1; do
    rm -f "$out/s$i.db"* "$out/s$i.port"
    "${bins[$i]}" serve --index "$out/cran" --db "$out/s$i.db" --port 0 --port-file "$out/s$i.port" \
        ${SERVE_ARGS---cache-mb 0} --threads 2 >"$out/s$i.log" 2>&1 &
    pids+=($!)
    spids+=($!)
done
for i in 0 1; do
    while [ ! -s "$out/s$i.port" ]; do sleep 0.2; done
    ports+=("$(cat "$out/s$i.port")")
done
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' /proc/"$1"/stat; }
report() { # NAME ROUND FILE [CPU_US]
    printf '%s round %s: %s req/s (%s 2xx/s), p50 %s, p99 %s%s\n' "$1" "$2" \
        "$(awk '/^Requests\/sec:/{print $2}' "$3")" \
        "$(awk '/requests in/{n=$1; s=$4; sub(/s,$/, "", s)} /Non-2xx/{b=$5} END{printf "%.0f", (n-b)/s}' "$3")" \
        "$(awk '$1=="50%"{print $2}' "$3")" "$(awk '$1=="99%"{print $2}' "$3")" "${4:+, server CPU $4 µs/request}"
}
for r in $(seq "$ROUNDS"); do
    wrk -t2 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$fport/" >"$out/floor.$r.wrk" 2>&1
    report floor "$r" "$out/floor.$r.wrk"
    for i in 0 1; do
        c0=$(cpu "${spids[$i]}")
        wrk -t2 -c64 -d"${DUR}s" --latency -s "$top/bench/search.lua" "http://127.0.0.1:${ports[$i]}" \
            -- "$data/cranfield/queries.tsv" 10 >"$out/s$i.$r.wrk" 2>&1
        c1=$(cpu "${spids[$i]}")
        n=$(awk '/requests in/{print $1}' "$out/s$i.$r.wrk")
        report "$([ "$i" = 0 ] && echo A || echo B)" "$r" "$out/s$i.$r.wrk" \
            "$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN{printf "%.0f", (b - a) * 1e6 / n}')"
    done
done
