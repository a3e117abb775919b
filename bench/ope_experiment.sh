#!/bin/sh
# bench/ope_experiment.sh: issue 7 item 4 in one command. Builds bench/ope_experiment in
# the given build directory (default: the current one) and runs the full experiment:
# six target policies from Plackett-Luce logs at 1e4, 1e5 and 1e6 impressions, 100
# repetitions each. Markdown tables on stdout (pasted into docs/benchmarks.md), one TSV
# row per (size, estimator, target) in ope_experiment.tsv, then the throughput table.
# Takes ~50 min on one core of the shared machine.
set -eu
build=${1:-.}
reps=${REPS:-100}
sizes=${SIZES:-1e4,1e5,1e6}
make -C "$build" bench/ope_experiment >/dev/null
"$build/bench/ope_experiment" --reps "$reps" --sizes "$sizes" --queries 100 --seed 7 \
    --boot 200 --boot-max-n 1e4 --tsv "$build/ope_experiment.tsv"
# Throughput: medians of 7 runs on one 1e6-impression log, with the naive floor.
"$build/bench/ope_experiment" --speed --sizes 1e6 --seed 7
