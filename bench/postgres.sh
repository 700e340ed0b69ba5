#!/usr/bin/env bash
# GetSecretValue and PutSecretValue throughput: SQLite (one node) vs PostgreSQL (one node and two
# nodes over one database), the numbers in docs/benchmarks.md. Usage:
#
#   bench/postgres.sh                          # 32 connections, 5 s per measurement (~1 min)
#   CONCURRENCY=64 DURATION=10s bench/postgres.sh
#
# Builds coffer and coffer-loadgen in release mode (or uses COFFER_BIN / LOADGEN_BIN), starts the
# throwaway PostgreSQL of scripts/postgres.sh (or reuses the running one), and needs the Python
# test venv for boto3 (tests/python/run.sh creates it). Fails loudly when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
die() { echo "bench/postgres.sh: $*" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$root/target}"
if [ -z "${COFFER_BIN:-}" ] || [ -z "${LOADGEN_BIN:-}" ]; then
    cargo build --release --locked -p coffer -p coffer-loadgen >&2
    export COFFER_BIN="$target/release/coffer" LOADGEN_BIN="$target/release/coffer-loadgen"
fi
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN"
[ -x "$LOADGEN_BIN" ] || die "no coffer-loadgen binary at $LOADGEN_BIN"
python="$root/tests/python/.venv/bin/python"
[ -x "$python" ] || die "no Python venv at tests/python/.venv: run tests/python/run.sh once"

started=0
if [ -z "${COFFER_TEST_POSTGRES_URL:-}" ]; then
    eval "$(scripts/postgres.sh start)"
    started=1
fi
[ "$started" = 1 ] && trap 'scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
"$python" "$root/bench/postgres.py"
