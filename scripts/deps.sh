#!/usr/bin/env bash
# Installs every Debian/Ubuntu package causeway needs to build, test and benchmark.
# Idempotent: packages already present are left alone.
set -euo pipefail
PKGS=(build-essential autoconf automake libtool pkg-config
      libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3
      liblapacke-dev libopenblas-dev libcriterion-dev
      libstemmer-dev libutf8proc-dev libcurl4-openssl-dev curl)
# clang: the libFuzzer harness (tests/fuzz); wrk: bench/server_bench.sh.
PKGS+=(clang wrk)
# The browser test (tests/e2e): Debian's Chromium driven by playwright-core from npm.
PKGS+=(chromium chromium-driver)
# Node.js and npm only where there are none: a machine with another build of Node.js
# (e.g. a vendor package that bundles npm) must not get Debian's npm, which conflicts.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
PKGS+=("${CW_EXTRA_PKGS[@]:-}")
missing=()
for p in "${PKGS[@]}"; do
    [ -n "$p" ] || continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm packages of the browser test, exactly as locked (playwright-core downloads no
# browser: the test drives the system Chromium).
e2e=$(cd "$(dirname "$0")/.." && pwd)/tests/e2e
if [ -f "$e2e/package-lock.json" ] && [ ! -f "$e2e/node_modules/playwright-core/package.json" ]; then
    (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
