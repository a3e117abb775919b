#!/usr/bin/env bash
# bench/server_bench.sh: issue 3 benchmarks of `causeway serve` with wrk on loopback
# (64 connections, 2 wrk threads): /search on Cranfield and on a 1M-document synthetic
# index (requests/s, p50, p99), /events ingest (events/s, nothing lost), RSS over a long
# load, start-up time; and in the same run the floor: bench/mhd_floor.c, a minimal
# libmicrohttpd server returning a 1 KB JSON body built per request with jansson.
# Floor and /search runs alternate ROUNDS times; medians and the ratio are reported.
# Usage: bench/server_bench.sh [BUILD_DIR]
#   env: DUR (s per run, 10), ROUNDS (3), RSS_DUR (60), THREADS (2), BATCH (100),
#        INDEX_1M (an index of 1M docs; built with causeway synth+index if unset and
#        BUILD_1M=1), OUT (bench/out/server)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD_DIR:-$top/build}}
bin=$build/causeway
out=${OUT:-$top/bench/out/server}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
RSS_DUR=${RSS_DUR:-60}
THREADS=${THREADS:-2}
BATCH=${BATCH:-100}
data=${CW_SHARED_DATA:-$top/../shared/data}
mkdir -p "$out"
command -v wrk >/dev/null || { echo "wrk missing: scripts/deps.sh installs it" >&2; exit 2; }
[ -x "$bin" ] || { echo "$bin missing: build first" >&2; exit 2; }

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

gcc -O2 -o "$out/mhd_floor" "$top/bench/mhd_floor.c" $(pkg-config --cflags --libs libmicrohttpd jansson)

if [ ! -d "$out/cran" ]; then
    "$bin" index build --corpus "$data/cranfield/corpus.jsonl" --out "$out/cran" --quiet
fi

# to_ms "1.23ms" -> 1.23
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else if (v ~ /s$/) printf "%.3f", v*1000; else print v }'; }
# run_wrk NAME URL [SCRIPT [script args...]] -> sets RPS P50 P99 NON2XX REQS
run_wrk() {
    local name=$1 url=$2; shift 2
    if [ $# -gt 0 ]; then
        local script=$1; shift
        wrk -t2 -c64 -d"${DUR}s" --latency -s "$script" "$url" -- "$@" >"$out/$name.wrk" 2>&1
    else
        wrk -t2 -c64 -d"${DUR}s" --latency "$url" >"$out/$name.wrk" 2>&1
    fi
    RPS=$(awk '/^Requests\/sec:/{print $2}' "$out/$name.wrk")
    P50=$(to_ms "$(awk '$1=="50%"{print $2}' "$out/$name.wrk")")
    P99=$(to_ms "$(awk '$1=="99%"{print $2}' "$out/$name.wrk")")
    NON2XX=$(awk '/Non-2xx/{print $5}' "$out/$name.wrk"); NON2XX=${NON2XX:-0}
    REQS=$(awk '/requests in/{print $1}' "$out/$name.wrk")
    local secs; secs=$(awk '/requests in/{sub(/s,$/, "", $4); print $4}' "$out/$name.wrk")
    OK_RPS=$(awk -v n="$REQS" -v b="$NON2XX" -v s="$secs" 'BEGIN{printf "%.0f", (n-b)/s}')
}
# CPU seconds (user + system) used so far by process $1.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' /proc/"$1"/stat; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# start_serve INDEX DB -> PORT, SPID, START_MS (exec to first /healthz 200)
start_serve() {
    rm -f "$out/port" "$2" "$2"-wal "$2"-shm
    local t0; t0=$(date +%s%N)
    "$bin" serve --index "$1" --db "$2" --port 0 --port-file "$out/port" --threads "$THREADS" \
        ${SERVE_ARGS:-} >"$out/serve.out" 2>"$out/serve.err" &
    SPID=$!; pids+=("$SPID")
    for _ in $(seq 1 2000); do
        if [ -s "$out/port" ]; then
            PORT=$(cat "$out/port")
            if curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; then break; fi
        fi
        sleep 0.005
    done
    START_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}
stop_serve() { kill -TERM "$SPID"; wait "$SPID" || true; }

echo "# causeway serve benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), causeway $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# wrk -t2 -c64 -d${DUR}s on 127.0.0.1, server --threads $THREADS, ${ROUNDS} alternating rounds"

floor_rps=(); floor_p50=(); floor_p99=(); s_rps=(); s_p50=(); s_p99=(); s_non=0
n_rps=(); n_p50=(); n_p99=(); n_non=0; s_cpu=(); n_cpu=(); f_cpu=()
for r in $(seq 1 "$ROUNDS"); do
    rm -f "$out/floor.port"
    "$out/mhd_floor" 0 "$THREADS" >"$out/floor.port" &
    fpid=$!; pids+=("$fpid")
    for _ in $(seq 1 200); do [ -s "$out/floor.port" ] && break; sleep 0.01; done
    c0=$(cpu_s "$fpid")
    run_wrk "floor.$r" "http://127.0.0.1:$(cat "$out/floor.port")/"
    f_cpu+=("$(awk -v a="$c0" -v b="$(cpu_s "$fpid")" -v n="$REQS" 'BEGIN{printf "%.1f", 1e6*(b-a)/n}')")
    floor_rps+=("$RPS"); floor_p50+=("$P50"); floor_p99+=("$P99")
    kill "$fpid"; wait "$fpid" 2>/dev/null || true

    start_serve "$out/cran" "$out/cran.db"
    c0=$(cpu_s "$SPID")
    run_wrk "search_cran.$r" "http://127.0.0.1:$PORT" "$top/bench/search.lua" "$data/cranfield/queries.tsv" 10
    s_cpu+=("$(awk -v a="$c0" -v b="$(cpu_s "$SPID")" -v n="$REQS" 'BEGIN{printf "%.1f", 1e6*(b-a)/n}')")
    s_rps+=("$OK_RPS"); s_p50+=("$P50"); s_p99+=("$P99"); s_non=$((s_non + NON2XX))
    stop_serve

    SERVE_ARGS="--cache-mb 0" start_serve "$out/cran" "$out/cran_nc.db"
    c0=$(cpu_s "$SPID")
    run_wrk "search_cran_nocache.$r" "http://127.0.0.1:$PORT" "$top/bench/search.lua" "$data/cranfield/queries.tsv" 10
    n_cpu+=("$(awk -v a="$c0" -v b="$(cpu_s "$SPID")" -v n="$REQS" 'BEGIN{printf "%.1f", 1e6*(b-a)/n}')")
    n_rps+=("$OK_RPS"); n_p50+=("$P50"); n_p99+=("$P99"); n_non=$((n_non + NON2XX))
    stop_serve
done
fr=$(printf '%s\n' "${floor_rps[@]}" | median); sr=$(printf '%s\n' "${s_rps[@]}" | median)
echo
echo "| run | 2xx requests/s (median) | p50 ms | p99 ms | non-2xx (503: log queue full) | all rounds |"
echo "|---|---|---|---|---|---|"
echo "| floor: minimal MHD + jansson 1 KB | $fr | $(printf '%s\n' "${floor_p50[@]}" | median) | $(printf '%s\n' "${floor_p99[@]}" | median) | - | ${floor_rps[*]} |"
echo "| /search Cranfield (k=10, 225 queries) | $sr | $(printf '%s\n' "${s_p50[@]}" | median) | $(printf '%s\n' "${s_p99[@]}" | median) | $s_non | ${s_rps[*]} |"
nr=$(printf '%s\n' "${n_rps[@]}" | median)
echo "| /search Cranfield, result cache off (--cache-mb 0) | $nr | $(printf '%s\n' "${n_p50[@]}" | median) | $(printf '%s\n' "${n_p99[@]}" | median) | $n_non | ${n_rps[*]} |"
echo
echo "server CPU per request (us, median of rounds; load-independent): floor $(printf '%s\n' "${f_cpu[@]}" | median), /search cached $(printf '%s\n' "${s_cpu[@]}" | median) (503s included), /search uncached $(printf '%s\n' "${n_cpu[@]}" | median)"
echo
echo "/search Cranfield / floor = $(awk -v a="$sr" -v b="$fr" 'BEGIN{printf "%.2f", a/b}') with the result cache, $(awk -v a="$nr" -v b="$fr" 'BEGIN{printf "%.2f", a/b}') without (target >= 0.60)"

# /events ingest: one impression, batches of BATCH events with unique event ids, under
# both durability modes (docs/logs.md).
for sync in full normal; do
SERVE_ARGS="--sync $sync" start_serve "$out/cran" "$out/events.db"
resp=$(curl -s "http://127.0.0.1:$PORT/search?q=wing+slipstream&k=10")
sleep 0.5 # let the impression commit before the stream
imp=$(echo "$resp" | jq -r .impression_id)
docs=$(echo "$resp" | jq -r '[.results[].id] | join(",")')
c0=$(cpu_s "$SPID")
run_wrk events "http://127.0.0.1:$PORT" "$top/bench/events.lua" "$imp" "$docs" "$BATCH"
c1=$(cpu_s "$SPID")
stop_serve
stored=$("$bin" logs stats --db "$out/events.db" | awk '/^events/{print $2}')
acked=$(( (REQS - NON2XX) * BATCH ))
echo
echo "/events: server CPU $(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.1f", b-a}') s for $acked acknowledged events = $(awk -v a="$c0" -v b="$c1" -v n="$acked" 'BEGIN{printf "%.0f", n/(b-a)}') events per server CPU-second"
echo "/events --sync $sync: $(awk -v r="$RPS" -v b="$BATCH" 'BEGIN{printf "%.0f", r*b}') events/s sustained (${RPS} batches/s of $BATCH, p50 ${P50} ms, p99 ${P99} ms); acknowledged $acked, stored $stored, non-2xx $NON2XX (target >= 50000 events/s, stored >= acknowledged)"
done

# RSS over a long /search load (leak check).
start_serve "$out/cran" "$out/rss.db"
DUR=$RSS_DUR run_wrk rss "http://127.0.0.1:$PORT" "$top/bench/search.lua" "$data/cranfield/queries.tsv" 10 &
wpid=$!
rss=()
for _ in $(seq 0 5 "$RSS_DUR"); do
    rss+=("$(awk '/VmRSS/{print $2}' /proc/"$SPID"/status)")
    sleep 5
done
wait "$wpid" || true
stop_serve
echo
echo "RSS over ${RSS_DUR} s of /search load (KiB, every 5 s): ${rss[*]}"

# 1M-document index: start-up time and /search.
if [ -z "${INDEX_1M:-}" ] && [ "${BUILD_1M:-0}" = 1 ]; then
    INDEX_1M=$out/synth1m.idx
    if [ ! -d "$INDEX_1M" ]; then
        "$bin" synth --out "$out/synth1m" --docs 1e6 --queries 200 --seed 7 --quiet
        "$bin" index build --corpus "$out/synth1m/corpus.jsonl" --out "$INDEX_1M" --quiet
    fi
    Q1M=$out/synth1m/queries.tsv
fi
if [ -n "${INDEX_1M:-}" ]; then
    Q1M=${Q1M:-$(dirname "$INDEX_1M")/queries.tsv}
    start_serve "$INDEX_1M" "$out/m1.db"
    startup=$START_MS
    ndocs=$(curl -s "http://127.0.0.1:$PORT/readyz" | jq .documents)
    run_wrk search_1m "http://127.0.0.1:$PORT" "$top/bench/search.lua" "$Q1M" 10
    stop_serve
    echo
    echo "| /search 1M synthetic ($ndocs docs, k=10) | $OK_RPS 2xx req/s | p50 $P50 ms | p99 $P99 ms | non-2xx $NON2XX | start-up to first /healthz: $startup ms |"
    SERVE_ARGS="--cache-mb 0" start_serve "$INDEX_1M" "$out/m1nc.db"
    run_wrk search_1m_nocache "http://127.0.0.1:$PORT" "$top/bench/search.lua" "$Q1M" 10
    stop_serve
    echo "| /search 1M synthetic, result cache off | $OK_RPS 2xx req/s | p50 $P50 ms | p99 $P99 ms | non-2xx $NON2XX | start-up: $START_MS ms |"
fi
