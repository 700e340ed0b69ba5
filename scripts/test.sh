#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
# Installs what it needs (pinned Python and npm packages) and fails loudly when something is
# missing; it never skips a suite.
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

step "Rust unit, store and end-to-end tests (aws-sdk-secretsmanager)"
cargo test --workspace --locked

step "Python: boto3 and the AWS CLI"
tests/python/run.sh

step "JavaScript: @aws-sdk/client-secrets-manager"
tests/node/run.sh

step "all suites passed"
