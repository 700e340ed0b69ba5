#!/usr/bin/env bash
# Browser tests of Coffer's web console: playwright-core (pinned in package-lock.json, no
# browser download) drives Debian's chromium, installed here when missing. Runs every
# *.test.mjs with node's test runner. Fails loudly on any problem; never skips.
# COFFER_SCREENSHOTS=1 also saves screenshots of the main pages under docs/console/.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
root=$(cd ../.. && pwd)

die() { printf 'tests/console/run.sh: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node is not installed (Node 20 or newer is required)"
command -v npm >/dev/null || die "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node $(node --version) is too old; Node 20 or newer is required"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium (apt-get)"
  [ "$(id -u)" -eq 0 ] || die "/usr/bin/chromium is missing and installing it needs root: apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || die "apt-get update failed"
  apt-get install -y -q chromium || die "apt-get install chromium failed"
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after installing the chromium package"

export COFFER_BIN="${COFFER_BIN:-$root/target/debug/coffer}"
[ -x "$COFFER_BIN" ] || die "Coffer binary $COFFER_BIN is missing: run 'cargo build -p coffer' or set COFFER_BIN"

# Reinstall when node_modules is missing or was installed from a different lock file.
[ -f package-lock.json ] || die "package-lock.json is missing"
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.coffer-lock-sha256
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  echo "npm ci (tests/console)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

shopt -s nullglob
files=("$here"/*.test.mjs)
[ "${#files[@]}" -gt 0 ] || die "no *.test.mjs files found in $here"

exec node --test --test-reporter=spec "${files[@]}"
