#!/usr/bin/env bash
# Builds tests/fuzz/fuzz_request.c with clang's libFuzzer, ASan and UBSan over the server's
# parsing sources and runs it for a bounded time (CI: 60 s; FUZZ_SECONDS overrides).
# Usage: tests/fuzz/run.sh [BUILD_DIR]   (BUILD_DIR holds a configured config.h)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD_DIR:-$top/build}}
secs=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-$build/fuzz}
mkdir -p "$out/corpus"
if [ ! -f "$build/config.h" ]; then
    echo "fuzz: $build/config.h missing: configure a build there first" >&2
    exit 2
fi
command -v clang >/dev/null || { echo "fuzz: clang missing: scripts/deps.sh installs it" >&2; exit 2; }
clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$top" -I"$build" -o "$out/fuzz_request" \
    "$top/tests/fuzz/fuzz_request.c" "$top/server/parse.c" "$top/causal/logstore.c" \
    "$top/common/err.c" "$top/common/arena.c" "$top/common/text.c" "$top/common/sys.c" \
    "$top/common/hash.c" "$top/common/rng.c" "$top/causal/pl.c" \
    $(pkg-config --cflags --libs jansson sqlite3) -lm -pthread
# Seeds: one valid request of each kind.
printf '\x00white+rabbit%%C3%%A9' > "$out/corpus/seed_pct"
printf '\x02{"query":"rabbit","k":3,"offset":1,"explain":true}' > "$out/corpus/seed_search"
printf '\x03[{"impression_id":5,"doc_id":"d1","position":1,"type":"dwell","value_ms":4,"event_id":"e"}]' \
    > "$out/corpus/seed_events"
printf '\x04a"b\\c\n\x01\xc3\xa9' > "$out/corpus/seed_json"
"$out/fuzz_request" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 15
echo "fuzz: ${secs} s clean"
