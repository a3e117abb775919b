#!/bin/sh
# bench/dense_bench.sh: the dense-retrieval figures of docs/benchmarks.md (issue 6).
#   bench/dense_bench.sh ann [N]      HNSW vs exact vs hnswlib on N x 128 clustered vectors
#   bench/dense_bench.sh ann-search   search figures again on the graphs saved by `ann`
#   bench/dense_bench.sh quality      BM25 / dense / hybrid nDCG@10, R@100 on Cranfield, CISI
#   bench/dense_bench.sh encode       query-encoding latency, word cache off vs on, Cranfield
#                                     and CISI (REPEAT=3 alternating runs each)
#   bench/dense_bench.sh finetune     embed finetune on simulated clicks (half the queries),
#                                     dense nDCG@10 on the other half: IPS vs naive weights
#   bench/dense_bench.sh train1m      embed train + build on a 1,000,000-document synth
#                                     corpus (DIR=/work/dense1m, EPOCHS=1, DOCS=1000000):
#                                     wall, CPU, RSS, loss per tenth of the run
# Run from a build directory (./causeway, bench/dense_ann built); BUILD=... overrides.
set -eu
BUILD=${BUILD:-.}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=${CW_SHARED_DATA:-$SRC/../shared/data}
OUT=${OUT:-/tmp/cw_dense_bench}
PY=${PY:-/usr/bin/python3}
what=${1:-all}

ann() {
    n=${1:-1000000}
    efs=10,16,24,32,48,64,96,128,192,256
    mkdir -p "$OUT/ann"
    # Both sides single-threaded, same data, same M / efConstruction. The machine is
    # shared, so besides wall-clock QPS each side reports CPU-QPS (queries per second of
    # its own CPU time), and the search figures are measured again, alternating causeway
    # and hnswlib on the saved graphs, for the ratio.
    OPENBLAS_NUM_THREADS=1 "$BUILD/bench/dense_ann" --n "$n" --dim 128 --queries 1000 --m 32 \
        --ef-construction 100 --ef "$efs" --out "$OUT/ann" | tee "$OUT/ann/causeway.txt"
    "$PY" "$SRC/bench/dense_hnswlib.py" "$OUT/ann" 32 100 "$efs" | tee "$OUT/ann/hnswlib.txt"
    ann_search
}

ann_search() {
    efs=10,16,24,32,48,64,96,128,192,256
    "$BUILD/bench/dense_ann" --reuse 1 --out "$OUT/ann" --ef "$efs" | tee "$OUT/ann/causeway2.txt"
    "$PY" "$SRC/bench/dense_hnswlib.py" "$OUT/ann" 32 100 "$efs" reuse | tee "$OUT/ann/hnswlib2.txt"
    # QPS of each at matched recall: linear interpolation of QPS along each recall curve.
    "$PY" - "$OUT/ann/causeway2.txt" "$OUT/ann/hnswlib2.txt" <<'PYEOF2'
import re, sys
def curve(path, key):
    pts = []
    for line in open(path):
        m = re.search(r"ef (\d+): recall@10 ([\d.]+) QPS (\d+) CPU-QPS (\d+)", line)
        if m:
            pts.append((float(m.group(2)), float(m.group(3 if key == "wall" else 4))))
    return sorted(pts)
def qps_at(pts, r):
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= r <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (r - r0) / (r1 - r0)
    return None
for key in ("CPU", "wall"):
    a, b = curve(sys.argv[1], key), curve(sys.argv[2], key)
    for r in (0.90, 0.95, 0.98, 0.99):
        qa, qb = qps_at(a, r), qps_at(b, r)
        if qa and qb:
            print(f"matched recall@10 {r:.2f} ({key}): causeway {qa:.0f} QPS, hnswlib {qb:.0f} QPS, ratio {qa / qb:.2f}")
PYEOF2
}

# Per-query nDCG@10 of a run (qid value), for the cross-validated fusion weight.
perq() {
    "$BUILD/causeway" eval -q --qrels "$1" --metrics ndcg@10 "$2" |
        awk '$1 == "ndcg_cut_10" && $2 != "all" {print $2, $3}'
}

metrics() {
    "$BUILD/causeway" eval --qrels "$1" --metrics ndcg@10,recall@100 "$2" |
        awk '$1 == "ndcg_cut_10" {n = $3} $1 == "recall_100" {r = $3} END {printf "%s %s", n, r}'
}

# quality COLLECTION NAME TRAIN-OPTIONS...: one dense configuration on one collection.
quality_one() {
    c=$1 name=$2
    shift 2
    q=$DATA/$c
    x=$OUT/quality/$c/$name
    mkdir -p "$x"
    [ -f "$OUT/quality/$c/index/index.cw" ] ||
        "$BUILD/causeway" index build --quiet --corpus "$q/corpus.jsonl" --out "$OUT/quality/$c/index"
    cp "$OUT/quality/$c/index/index.cw" "$OUT/quality/$c/index/docs.cw" "$x/"
    "$BUILD/causeway" run --index "$x" --queries "$q/queries.tsv" > "$x/bm25.run"
    "$BUILD/causeway" embed train --index "$x" --quiet "$@" 2> "$x/train.log"
    "$BUILD/causeway" embed build --index "$x" --quiet 2> "$x/build.log"
    "$BUILD/causeway" embed run --index "$x" --queries "$q/queries.tsv" > "$x/dense.run" 2> "$x/encode.log"
    "$BUILD/causeway" embed run --index "$x" --queries "$q/queries.tsv" --mode hybrid > "$x/rrf.run"
    for w in 0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0; do
        "$BUILD/causeway" embed run --index "$x" --queries "$q/queries.tsv" --mode hybrid \
            --fusion weighted --w-dense $w > "$x/w$w.run"
        perq "$q/qrels.txt" "$x/w$w.run" > "$x/w$w.perq"
    done
    # Weight chosen on one half of the queries (alternate lines of queries.tsv), scored on
    # the other half, and vice versa (2-fold cross-validation); "cv" is the mean over all
    # judged queries of their held-out scores.
    cv=$("$PY" - "$x" "$q/queries.tsv" <<'PYEOF'
import glob, os, sys
x, qfile = sys.argv[1], sys.argv[2]
order = [l.split("\t", 1)[0] for l in open(qfile) if l.strip()]
fold = {q: i % 2 for i, q in enumerate(order)}
runs = {}
for f in sorted(glob.glob(os.path.join(x, "w*.perq"))):
    w = os.path.basename(f)[1:-5]
    runs[w] = dict(l.split() for l in open(f))
qs = list(next(iter(runs.values())).keys())
held, picks = {}, []
for k in (0, 1):
    train = [q for q in qs if fold.get(q) == k]
    best = max(runs, key=lambda w: (sum(float(runs[w][q]) for q in train) / len(train), -abs(float(w) - 0.5)))
    picks.append(best)
    for q in qs:
        if fold.get(q) != k:
            held[q] = float(runs[best][q])
print(f"{sum(held.values()) / len(held):.4f} w={picks[0]}/{picks[1]}")
PYEOF
)
    train=$(sed -n 's/.*loss \([0-9.]*\) -> \([0-9.]*\), \([0-9]*\) docs\/s.*/loss \1->\2, \3 docs\/s/p' "$x/train.log")
    enc=$(sed -n 's/.*median \([0-9.]*\) ms (p90 [0-9.]*) first call, \([0-9.]*\) ms.*/\1 \2/p' "$x/encode.log")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$name" \
        "$(metrics "$q/qrels.txt" "$x/bm25.run")" "$(metrics "$q/qrels.txt" "$x/dense.run")" \
        "$(metrics "$q/qrels.txt" "$x/rrf.run")" "$cv" "$train" "$enc"
}

quality() {
    echo "| collection | dense config | BM25 nDCG@10 R@100 | dense nDCG@10 R@100 | hybrid RRF nDCG@10 R@100 | weighted, 2-fold CV nDCG@10 (w per fold) | training | encode ms median first/best-of-20 |"
    echo "|---|---|---|---|---|---|---|---|"
    for c in ${QUALITY_COLLECTIONS:-cranfield cisi}; do
        for cfg in ${QUALITY_CONFIGS:-lsa lsa+moco moco}; do
            case $cfg in
            lsa) quality_one $c lsa --lsa --epochs 0 ;;
            lsa+moco) quality_one $c lsa+moco --lsa ;;
            moco) quality_one $c moco ;;
            esac
        done
    done
}

# encode: per collection, an LSA encoder (embed train --lsa --epochs 0: the speed of
# encoding does not depend on the weights), then `embed run` in dense mode alternately
# without (--no-word-cache, the baseline) and with the word cache, REPEAT times each; each
# run prints the median / p90 over the queries of the first-call and best-of-20 encoding
# times. Reported: the median over the runs of each figure.
encode() {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), causeway $(git -C "$SRC" rev-parse --short HEAD); $(uptime)"
    echo "| collection | queries, mean words | word cache | first call median / p90 ms | best of 20 median / p90 ms |"
    echo "|---|---|---|---|---|"
    for c in ${ENCODE_COLLECTIONS:-cranfield cisi}; do
        q=$DATA/$c
        x=$OUT/encode/$c
        mkdir -p "$OUT/encode"
        [ -f "$x/index.cw" ] ||
            "$BUILD/causeway" index build --quiet --corpus "$q/corpus.jsonl" --out "$x"
        "$BUILD/causeway" embed train --index "$x" --quiet --lsa --epochs 0 2> "$x/train.log"
        "$BUILD/causeway" embed build --index "$x" --quiet 2> "$x/build.log"
        words=$(awk -F'\t' '{ n++; w += split($2, a, /[^A-Za-z0-9]+/) } END { printf "%d, %.0f", n, w / n }' "$q/queries.tsv")
        : > "$x/off.txt"
        : > "$x/on.txt"
        for r in $(seq "${REPEAT:-3}"); do
            OPENBLAS_NUM_THREADS=1 "$BUILD/causeway" embed run --index "$x" --queries "$q/queries.tsv" \
                --no-word-cache 2>> "$x/off.txt" > /dev/null
            OPENBLAS_NUM_THREADS=1 "$BUILD/causeway" embed run --index "$x" --queries "$q/queries.tsv" \
                2>> "$x/on.txt" > /dev/null
        done
        for m in off on; do
            sed -n 's/.*median \([0-9.]*\) ms (p90 \([0-9.]*\)) first call, \([0-9.]*\) ms (p90 \([0-9.]*\)).*word cache \([0-9]*\) words/\1 \2 \3 \4 \5/p' "$x/$m.txt" |
                sort -n | awk -v c="$c" -v w="$words" -v m="$m" '{ a[NR] = $1; b[NR] = $2; e[NR] = $3; f[NR] = $4; n = $5 }
                    function med(v, k,   t, i, j) { for (i = 1; i <= k; i++) t[i] = v[i]
                        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (t[j] < t[i]) { s = t[i]; t[i] = t[j]; t[j] = s }
                        return t[int((k + 1) / 2)] }
                    END { printf "| %s | %s | %s (%d words) | %.4f / %.4f | %.4f / %.4f |\n", c, w, m, n,
                          med(a, NR), med(b, NR), med(e, NR), med(f, NR) }'
        done
    done
}

# train1m: the "1M documents in under an hour" figure. Generates DIR (synth, 1e6 docs of
# ~200 tokens, seed 1) and its index once, then `embed train` with the default options
# except --epochs (one epoch: 15,625 steps of 64 documents; the default 10 would take
# ten times as long) under /usr/bin/time -v, then `embed build` (HNSW, M 32, efC 100).
train1m() {
    d=${DIR:-/work/dense1m}
    if [ ! -s "$d/index/docs.cw" ]; then
        "$BUILD/causeway" synth --out "$d" --docs "${DOCS:-1000000}" --queries 1000 --seed 1 --quiet
        "$BUILD/causeway" index build --quiet --corpus "$d/corpus.jsonl" --out "$d/index"
    fi
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), causeway $(git -C "$SRC" rev-parse --short HEAD); $(uptime)"
    /usr/bin/time -v "$BUILD/causeway" embed train --index "$d/index" --epochs "${EPOCHS:-1}" \
        2> "$d/train.log"
    echo "# $(uptime)"
    tr '\r' '\n' < "$d/train.log" | grep -E '^embed train:|Elapsed|User time|System time|Maximum resident'
    # Loss trajectory: mean loss of each tenth of the run.
    tr '\r' '\n' < "$d/train.log" | sed -n 's/^embed-train loss \([0-9.]*\), \([0-9]*\) docs\/s: \([0-9]*\)\/\([0-9]*\).*/\1 \2 \3 \4/p' |
        awk '{ b = int(10 * ($3 - 1) / $4); s[b] += $1; n[b]++; r[b] = $2 }
             END { for (i = 0; i < 10; i++) if (n[i]) printf "steps %d-%d0%%: mean loss %.3f (%d docs/s so far)\n", 10 * i, i + 1, s[i] / n[i], r[i] }'
    /usr/bin/time -v "$BUILD/causeway" embed build --index "$d/index" 2> "$d/build.log"
    echo "# $(uptime)"
    tr '\r' '\n' < "$d/build.log" | grep -E '^embed build:|Elapsed|User time|System time|Maximum resident'
}

# finetune: per collection, the `lsa` encoder (embed train --lsa --epochs 0); the queries
# split by line parity into a click half and a held-out half; SESSIONS simulated PBM users
# (examination theta = the METHODS.md eye-tracking table, clicks from qrels) on the click
# half through a running `causeway serve` (hybrid pages, top 10, deterministic); then
# `embed finetune` with IPS weights (the true theta_k/theta_1, clip 10) or naive weights
# (theta = 1), and dense nDCG@10 / R@100 of the held-out and the click halves.
finetune() {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), causeway $(git -C "$SRC" rev-parse --short HEAD); $(uptime)"
    echo "| collection | clicks (pairs) | encoder | held-out nDCG@10 / R@100 | click-half nDCG@10 / R@100 |"
    echo "|---|---|---|---|---|"
    for c in ${FINETUNE_COLLECTIONS:-cranfield cisi}; do
        q=$DATA/$c
        x=$OUT/finetune/$c
        rm -rf "$x"
        mkdir -p "$x"
        "$BUILD/causeway" index build --quiet --corpus "$q/corpus.jsonl" --out "$x/base" 2> /dev/null
        "$BUILD/causeway" embed train --index "$x/base" --quiet --lsa --epochs 0 2> /dev/null
        "$BUILD/causeway" embed build --index "$x/base" --quiet 2> /dev/null
        awk 'NR % 2 == 1' "$q/queries.tsv" > "$x/click.tsv"
        awk 'NR % 2 == 0' "$q/queries.tsv" > "$x/heldout.tsv"
        for h in click heldout; do # each half scored on its own queries only
            awk 'NR == FNR { split($0, a, "\t"); keep[a[1]] = 1; next } ($1 in keep)' "$x/$h.tsv" "$q/qrels.txt" \
                > "$x/$h.qrels"
        done
        # The server takes queries up to 1,024 bytes: longer (CISI) ones are cut at a word
        # boundary for the simulated users (and so in the log); evaluation uses them whole.
        awk -F'\t' '{ t = $2; if (length(t) > 1000) { t = substr(t, 1, 1000); sub(/ [^ ]*$/, "", t) }
                      print $1 "\t" t }' "$x/click.tsv" > "$x/click_sim.tsv"
        "$BUILD/causeway" serve --index "$x/base" --db "$x/log.db" --port 0 \
            --port-file "$x/port" --sync normal --cache-mb 0 > /dev/null 2>&1 &
        spid=$!
        trap 'kill -TERM $spid 2> /dev/null' EXIT
        while [ ! -s "$x/port" ]; do sleep 0.2; done
        "$BUILD/causeway" simulate --server "http://127.0.0.1:$(cat "$x/port")" \
            --queries "$x/click_sim.tsv" --qrels "$q/qrels.txt" --sessions "${SESSIONS:-5000}" \
            --seed 1 --quiet 2> "$x/sim.log"
        kill -TERM "$spid"
        wait "$spid" || true
        trap - EXIT
        echo '[1, 0.8971, 0.7059, 0.5, 0.4118, 0.2941, 0.1618, 0.1471, 0.1176, 0.0882]' > "$x/ips.json"
        echo '[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]' > "$x/naive.json"
        row() {
            printf '| %s | %s | %s | %s | %s |\n' "$c" "$1" "$2" \
                "$(OPENBLAS_NUM_THREADS=1 "$BUILD/causeway" embed run --index "$3" \
                    --queries "$x/heldout.tsv" 2> /dev/null > "$3/h.run" &&
                    metrics "$x/heldout.qrels" "$3/h.run" | tr ' ' /)" \
                "$(OPENBLAS_NUM_THREADS=1 "$BUILD/causeway" embed run --index "$3" \
                    --queries "$x/click.tsv" 2> /dev/null > "$3/c.run" &&
                    metrics "$x/click.qrels" "$3/c.run" | tr ' ' /)"
        }
        clicks=$(sed -n 's/.*(\([0-9]*\) clicks).*/\1/p' "$x/sim.log")
        row "$clicks" "lsa (before)" "$x/base"
        for w in ips naive; do
            cp -r "$x/base" "$x/$w"
            OPENBLAS_NUM_THREADS=1 "$BUILD/causeway" embed finetune --index "$x/$w" --quiet \
                --db "$x/log.db" --propensity "$x/$w.json" --epochs "${FT_EPOCHS:-5}" --batch 32 \
                2> "$x/$w.log"
            "$BUILD/causeway" embed build --index "$x/$w" --quiet 2> /dev/null
            row "$(sed -n 's/^embed finetune: \([0-9]*\) click pairs.*weights mean \([0-9.]*\).*/\1, w mean \2/p' "$x/$w.log")" \
                "lsa + finetune $w" "$x/$w"
        done
    done
}

case "$what" in
ann) ann "${2:-1000000}" ;;
ann-search) ann_search ;;
quality) quality ;;
encode) encode ;;
train1m) train1m ;;
finetune) finetune ;;
*) echo "usage: $0 ann [N] | ann-search | quality | encode | train1m | finetune" >&2; exit 2 ;;
esac
