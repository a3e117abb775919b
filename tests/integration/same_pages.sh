#!/bin/sh
# tests/integration/same_pages.sh OLD_BIN NEW_BIN [WORKDIR]: serves one fixed request list
# with two causeway binaries and fails unless every /search answer is byte-identical
# (took_ms aside). Each server logs to a fresh database, so impression ids, and with them
# the seeds of randomised pages, are the same in both runs. Written to check that drawing
# a randomised page before rendering it (server/server.c render_results) serves what the
# render -> parse -> reorder -> render path served. Indexes: a synthetic collection with
# dense files (hybrid pages, fusion settings) and, when $CW_SHARED_DATA holds it,
# Cranfield (real text). Not part of `make check`: it needs two builds.
set -eu
OLD=$1
NEW=$2
W=${3:-$(mktemp -d /tmp/cw_same_pages_XXXXXX)}
mkdir -p "$W"
export OPENBLAS_NUM_THREADS=1

"$NEW" synth --out "$W/syn" --docs 400 --queries 12 --seed 3 --quiet
"$NEW" index build --corpus "$W/syn/corpus.jsonl" --out "$W/ix_syn" --quiet
"$NEW" embed train --index "$W/ix_syn" --dim 32 --buckets 4096 --epochs 2 --batch 32 >/dev/null 2>&1
"$NEW" embed build --index "$W/ix_syn" >/dev/null 2>&1
sets="syn"
if [ -n "${CW_SHARED_DATA:-}" ] && [ -f "$CW_SHARED_DATA/cranfield/corpus.jsonl" ]; then
    "$NEW" index build --corpus "$CW_SHARED_DATA/cranfield/corpus.jsonl" --out "$W/ix_cran" --quiet
    head -n 40 "$CW_SHARED_DATA/cranfield/queries.tsv" >"$W/cran_queries.tsv"
    sets="syn cran"
fi
cp "$W/syn/queries.tsv" "$W/syn_queries.tsv"

# Query-string variants: the server's policy (pl:0.5) and per-request ones, offsets,
# explain, BM25 and hybrid pages with fusion settings; each list runs twice (the second
# pass answers from the result cache).
cat >"$W/variants" <<'EOF'
k=10
k=5&offset=3
k=10&explain=true
k=8&explain=true&policy=randtop:4
k=10&policy=egreedy:0.3
k=10&policy=pl:2
k=10&policy=det
k=10&retrieval=bm25
k=10&fusion=weighted&dense_weight=0.3
k=1
EOF

serve() { # BIN SET OUT
    bin=$1
    set_=$2
    out=$3
    rm -f "$W/db_$set_.db"* "$W/port"
    "$bin" serve --index "$W/ix_$set_" --db "$W/db_$set_.db" --port 0 --port-file "$W/port" \
        --logging-policy pl:0.5 --sync normal >/dev/null 2>"$W/serve.err" &
    pid=$!
    i=0
    while [ ! -s "$W/port" ]; do
        i=$((i + 1))
        if [ $i -gt 200 ]; then
            echo "server did not start" >&2
            kill $pid
            exit 1
        fi
        sleep 0.1
    done
    port=$(cat "$W/port")
    : >"$out"
    for pass in 1 2; do
        cut -f2 "$W/${set_}_queries.tsv" | while IFS= read -r q; do
            while IFS= read -r v; do
                curl -s -G "http://127.0.0.1:$port/search?$v" --data-urlencode "q=$q" |
                    sed 's/,"took_ms":[0-9.]*}$/}/' >>"$out"
            done <"$W/variants"
        done
    done
    kill -TERM $pid
    wait $pid || true
}

status=0
for set_ in $sets; do
    serve "$OLD" "$set_" "$W/old_$set_.txt"
    serve "$NEW" "$set_" "$W/new_$set_.txt"
    n=$(wc -l <"$W/new_$set_.txt")
    drawn=$(grep -c '"impression_id"' "$W/new_$set_.txt" || true)
    if cmp -s "$W/old_$set_.txt" "$W/new_$set_.txt"; then
        echo "$set_: $n answers ($drawn pages) byte-identical"
    else
        echo "$set_: answers differ:" >&2
        diff "$W/old_$set_.txt" "$W/new_$set_.txt" | head -20 >&2
        status=1
    fi
done
exit $status
