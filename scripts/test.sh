#!/usr/bin/env bash
# Quick start (b): install dependencies, build with -Werror, run the whole test
# suite (unit + integration). Extra arguments go to configure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
BUILD_DIR=${BUILD_DIR:-$top/build} "$top/scripts/build.sh" --enable-werror "$@"
cd "${BUILD_DIR:-$top/build}"
set +e
make -j"$(nproc)" check >/dev/null 2>&1
rc=$?
set -e
"$top/scripts/test-summary.sh" .
exit $rc
