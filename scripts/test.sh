#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
# Installs or starts what it needs (pinned Python and npm packages, Debian's chromium, a
# throwaway PostgreSQL) and fails loudly when something is missing; it never skips a suite.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n=== %s ===\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --locked -p coffer
export COFFER_BIN="$root/target/debug/coffer"

step "throwaway PostgreSQL (store conformance suite, PostgreSQL rotators)"
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
: "${COFFER_TEST_POSTGRES_URL:?scripts/postgres.sh start did not export COFFER_TEST_POSTGRES_URL}"

step "Rust unit, store conformance and end-to-end tests (aws-sdk-secretsmanager)"
cargo test --workspace --locked

step "Python: boto3 and the AWS CLI (one process and three processes)"
tests/python/run.sh

step "JavaScript: @aws-sdk/client-secrets-manager"
tests/node/run.sh

step "Web console: headless Chromium"
tests/console/run.sh

step "all suites passed"
