#!/usr/bin/env bash
# Quick start (a): install dependencies, build, and run causeway's main job on
# its built-in demo data: generate a corpus, index it, answer example queries.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
"$top/scripts/build.sh"
exec "$top/scripts/demo.sh"
