#!/usr/bin/env bash
# End-to-end tests of Coffer with the AWS SDK for JavaScript v3 (node:test).
# Installs the pinned packages from package-lock.json when needed, then runs every
# *.test.mjs file. Fails loudly on any problem; never skips.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
root=$(cd ../.. && pwd)

die() { printf 'tests/node/run.sh: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node is not installed (Node 20 or newer is required)"
command -v npm >/dev/null || die "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node $(node --version) is too old; Node 20 or newer is required"

export COFFER_BIN="${COFFER_BIN:-$root/target/debug/coffer}"
[ -x "$COFFER_BIN" ] || die "Coffer binary $COFFER_BIN is missing: run 'cargo build -p coffer' or set COFFER_BIN"

# Reinstall when node_modules is missing or was installed from a different lock file.
[ -f package-lock.json ] || die "package-lock.json is missing"
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.coffer-lock-sha256
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  echo "npm ci (tests/node)"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

shopt -s nullglob
files=("$here"/*.test.mjs)
[ "${#files[@]}" -gt 0 ] || die "no *.test.mjs files found in $here"

# The pinned SDK supports Node 20; its notice that later releases will need Node 22 is
# printed once per test process and says nothing about this suite, so it is switched off.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

exec node --test --test-reporter=spec "${files[@]}"
