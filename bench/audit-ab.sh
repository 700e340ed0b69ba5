#!/usr/bin/env bash
# GetSecretValue throughput of two Coffer binaries, alternated (A B A B ...) so that both see the
# same machine load: used to measure the cost of the audit log (docs/benchmarks.md).
#
# usage: bench/audit-ab.sh A_BIN B_BIN [rounds=3] [concurrency=32] [duration=10s]
#
# Needs target/release/coffer-loadgen and bench/.venv (run bench/run.sh once). Each round starts
# each binary on a fresh data directory, stores the 100-byte `bench-secret`, runs
# `coffer-loadgen run` at one concurrency (2 s warm-up), and stops it. Prints one line per run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOADGEN="${CARGO_TARGET_DIR:-$ROOT/target}/release/coffer-loadgen"
A="$1"; B="$2"; ROUNDS="${3:-3}"; CONC="${4:-32}"; DURATION="${5:-10s}"
[[ -x $LOADGEN ]] || { echo "no $LOADGEN: run bench/run.sh once" >&2; exit 1; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/coffer-ab.XXXXXX")"
PID=""
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

one() {
    local bin="$1" label="$2" data="$WORK/$2-$3"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" >"$data.out" 2>"$data.err" &
    PID=$!
    for _ in $(seq 1200); do grep -q '^listening on ' "$data.out" 2>/dev/null && break; sleep 0.05; done
    local url akid sk
    url="$(sed -n 's/^listening on //p' "$data.out")"
    akid="$(sed -n 's/^aws_access_key_id *= *//p' "$data/aws/credentials")"
    sk="$(sed -n 's/^aws_secret_access_key *= *//p' "$data/aws/credentials")"
    AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$sk" "$ROOT/bench/.venv/bin/python" \
        "$ROOT/bench/create_secret.py" "$url" us-east-1 bench-secret \
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB" >/dev/null
    AWS_SECRET_ACCESS_KEY="$sk" "$LOADGEN" run --endpoint "$url" --region us-east-1 \
        --access-key "$akid" --secret-id bench-secret --concurrency "$CONC" \
        --duration "$DURATION" --warmup 2s --server-pid "$PID" --label "$label" --format markdown \
        2>/dev/null | grep "^| $label" || true
    echo
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    if [[ -f $data/audit.log ]]; then
        echo "  ($label: audit.log $(wc -l <"$data/audit.log") records, $(du -h "$data/audit.log" | cut -f1))"
    fi
}

echo "| target | concurrency | req/s | p50 ms | p99 ms | errors | generator CPU % | server CPU % | other CPU % |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
    one "$A" A "$r"
    one "$B" B "$r"
done
