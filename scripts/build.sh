#!/usr/bin/env bash
# Bootstraps autotools and builds causeway in ./build (or $BUILD_DIR), passing
# any arguments to configure. Used by quickstart.sh, test.sh and .ci/run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p "$build"
cd "$build"
"$top/configure" -q "$@"
make -j"$(nproc)" >/dev/null
echo "built $build/causeway" >&2
