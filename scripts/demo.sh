#!/usr/bin/env bash
# The main job on built-in data: generate the seeded demo corpus (causeway synth), index it,
# answer three example queries with `causeway search`, and score all demo queries against
# the generated relevance labels (causeway run + causeway eval).
# Environment: CW_BIN (default build/causeway), DEMO_DIR (default demo/), DEMO_DOCS (20000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${CW_BIN:-$top/build/causeway}
demo=${DEMO_DIR:-$top/demo}
docs=${DEMO_DOCS:-20000}
mkdir -p "$demo"
"$bin" version

echo "== generating $docs synthetic documents, 50 queries and graded qrels in $demo/data"
"$bin" synth --out "$demo/data" --docs "$docs" --queries 50 --doc-len 120 --seed 42

echo "== indexing"
rm -rf "$demo/index"
"$bin" index build --corpus "$demo/data/corpus.jsonl" --out "$demo/index"

# The first three demo queries (the words are made up: the corpus is synthetic).
n=0
while IFS=$'\t' read -r qid text && [ $n -lt 3 ]; do
    n=$((n + 1))
    echo
    echo "== query $qid: $text"
    "$bin" search --index "$demo/index" --k 5 "$text"
done <"$demo/data/queries.tsv"

echo
echo "== BM25 on all 50 demo queries against the generated labels"
"$bin" run --index "$demo/index" --queries "$demo/data/queries.tsv" --k 1000 >"$demo/run.trec"
"$bin" eval --qrels "$demo/data/qrels.txt" --metrics ndcg@10,map,p@10,recall@100 "$demo/run.trec"

# The job ends with the search server on the demo index (docs/api.md); DEMO_SERVE=0 skips it.
if [ "${DEMO_SERVE:-1}" != 0 ]; then
    port=${DEMO_PORT:-8080}
    q=$(head -n 1 "$demo/data/queries.tsv" | cut -f2 | sed 's/ /+/g')
    echo
    echo "== serving $demo/index on http://127.0.0.1:$port (log: $demo/log.db); Ctrl-C stops it"
    echo "open http://127.0.0.1:$port/ in a browser, search and click a result;"
    echo "http://127.0.0.1:$port/report then shows your click (impression, position, query)"
    echo "try, from another terminal:"
    echo "  curl -s 'http://127.0.0.1:$port/search?q=$q&k=3'"
    echo "  curl -s -X POST http://127.0.0.1:$port/search -d '{\"query\":\"$(echo "$q" | tr + ' ')\",\"k\":3,\"explain\":true}'"
    echo "  curl -s -X POST http://127.0.0.1:$port/events -d '[{\"impression_id\":ID,\"doc_id\":\"DOC\",\"position\":1,\"type\":\"click\"}]'"
    echo "  curl -s http://127.0.0.1:$port/metrics"
    echo "  causeway logs export --db $demo/log.db | head"
    exec "$bin" serve --index "$demo/index" --db "$demo/log.db" --port "$port"
fi
