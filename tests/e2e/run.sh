#!/bin/sh
# tests/e2e/run.sh: the browser test (e2e.mjs) under `make check`. Skips (exit 77) with a
# message when Chromium, Node or the npm packages (scripts/deps.sh installs all three)
# are missing; under CI (CI=true) a missing prerequisite is a failure, not a skip.
here=$(cd "$(dirname "$0")" && pwd)
src=${CW_SRCDIR:-$here/../..}
e2e=$src/tests/e2e
missing() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 (CI must run the browser test; scripts/deps.sh installs it)"
        exit 1
    fi
    echo "SKIP: $1; run scripts/deps.sh to install it"
    exit 77
}
chrome=${CW_CHROMIUM:-}
if [ -z "$chrome" ]; then
    for c in /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser; do
        if [ -x "$c" ]; then
            chrome=$c
            break
        fi
    done
fi
[ -n "$chrome" ] && [ -x "$chrome" ] || missing "chromium is not installed"
command -v node >/dev/null 2>&1 || missing "node is not installed"
[ -f "$e2e/node_modules/playwright-core/package.json" ] ||
    missing "playwright-core is not installed in $e2e/node_modules (npm ci --prefix $e2e)"
[ -x "${CW_BIN:-}" ] || missing "CW_BIN does not name the causeway binary"
CW_CHROMIUM=$chrome exec node "$e2e/e2e.mjs" "$@"
