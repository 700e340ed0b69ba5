#!/usr/bin/env bash
# GetSecretValue and PutSecretValue throughput: SQLite (one node) vs PostgreSQL (one node and two
# nodes over one database), the numbers in docs/benchmarks.md. Usage:
#
#   bench/postgres.sh                          # 32 connections, 5 s per measurement (~1 min)
#   CONCURRENCY=64 DURATION=10s bench/postgres.sh
#
# Builds coffer and coffer-loadgen in release mode (or uses COFFER_BIN / LOADGEN_BIN), starts a
# PostgreSQL of its own with scripts/postgres.sh (durable: fsync on), and needs the Python test
# venv for boto3 (tests/python/run.sh creates it). Fails loudly when something is missing.
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

# A cluster of its own (not the test suite's), made as durable as SQLite's synchronous=FULL:
# scripts/postgres.sh turns fsync off for the tests; a write benchmark must not.
export COFFER_PG_STATE="${TMPDIR:-/tmp}/coffer-bench-postgres.env"
eval "$(scripts/postgres.sh start)"
trap 'COFFER_PG_STATE="$COFFER_PG_STATE" scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
psql="${PG_BIN:-/usr/lib/postgresql/15/bin}/psql"
for setting in "fsync = on" "synchronous_commit = on" "full_page_writes = on"; do
    "$psql" "$COFFER_TEST_POSTGRES_URL" -qAt -c "ALTER SYSTEM SET $setting" >&2
done
"$psql" "$COFFER_TEST_POSTGRES_URL" -qAt -c "SELECT pg_reload_conf()" >/dev/null
[ "$("$psql" "$COFFER_TEST_POSTGRES_URL" -qAt -c "SHOW fsync")" = on ] || die "cannot turn fsync on"
"$python" "$root/bench/postgres.py"
