#!/bin/sh
# bench/hybrid_serve.sh: `causeway serve` latency with BM25 vs hybrid candidates on
# Cranfield (docs/benchmarks.md, "Hybrid retrieval in causeway serve"; issue 6 item 4).
# Builds the index and the dense files (defaults of `causeway embed train`), starts one
# server (no model, no result cache) and sends the 225 queries one at a time over
# GET /search, alternating passes with retrieval=bm25 and retrieval=hybrid; prints the
# median `took_ms` of each pass. Run from a build directory; BUILD=... overrides.
set -eu
BUILD=${BUILD:-.}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=${CW_SHARED_DATA:-$SRC/../shared/data}
OUT=${OUT:-/tmp/cw_hybrid_serve_bench}
PASSES=${PASSES:-3}
rm -rf "$OUT" && mkdir -p "$OUT"
"$BUILD/causeway" index build --corpus "$DATA/cranfield/corpus.jsonl" --out "$OUT/ix" --quiet 2>/dev/null
OPENBLAS_NUM_THREADS=1 "$BUILD/causeway" embed train --index "$OUT/ix" 2>&1 | tail -1
"$BUILD/causeway" embed build --index "$OUT/ix" 2>&1 | tail -1
"$BUILD/causeway" serve --index "$OUT/ix" --db "$OUT/log.db" --port 0 \
    --port-file "$OUT/port" --cache-mb 0 --sync normal >/dev/null 2>"$OUT/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
while [ ! -s "$OUT/port" ]; do sleep 0.05; done
python3 - "$OUT/port" "$DATA/cranfield/queries.tsv" "$PASSES" <<'PY'
import json, statistics, sys, urllib.parse, urllib.request
port = int(open(sys.argv[1]).read())
qs = [l.rstrip('\n').split('\t', 1) for l in open(sys.argv[2]) if '\t' in l]
res = {}
for _ in range(int(sys.argv[3])):
    for mode in ('bm25', 'hybrid'):
        t = []
        for qid, q in qs:
            url = 'http://127.0.0.1:%d/search?%s' % (
                port, urllib.parse.urlencode({'q': q[:1000], 'k': 10, 'retrieval': mode}))
            t.append(json.load(urllib.request.urlopen(url))['took_ms'])
        res.setdefault(mode, []).append(statistics.median(t))
for m, v in res.items():
    print('%-6s median took_ms per pass: %s' % (m, ' / '.join('%.3f' % x for x in v)))
PY
