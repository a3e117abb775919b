#!/usr/bin/env bash
# The main job on built-in data: generate the demo corpus, index it, answer queries.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${CW_BIN:-$top/build/causeway}
demo=${DEMO_DIR:-$top/demo}
mkdir -p "$demo"
"$bin" version
