#!/usr/bin/env bash
# Benchmark GetSecretValue over HTTPS vs HTTP, and the cost of a TLS handshake.
#
# usage: bench/tls.sh [--concurrency 1,8,32] [--duration 10s] [--warmup 2s] [--out FILE]
#
# Builds coffer and coffer-loadgen in release mode, then in one run: starts `coffer serve`
# (plain HTTP) and `coffer serve --tls auto` (HTTPS, rustls with ring, TLS 1.3), each on a free
# 127.0.0.1 port with a fresh data directory and one ~100-byte secret, and measures
#   1. keep-alive: N connections sending GetSecretValue back to back (`--concurrency`);
#   2. a new connection per request (`--reconnect`, 1 and 8 connections): the request's latency
#      then includes TCP connect, and over HTTPS the full TLS handshake.
# Prints one markdown table with https/http ratios. All traffic stays on 127.0.0.1; everything
# started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADGEN="$TARGET_DIR/release/coffer-loadgen"
COFFER="$TARGET_DIR/release/coffer"
CONCURRENCY="1,8,32"
DURATION="10s"
WARMUP="2s"
OUT=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --concurrency) CONCURRENCY="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
    shift
done

(cd "$ROOT" && nice -n 10 cargo build --release -p coffer -p coffer-loadgen)

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME [coffer serve flags...]: sets ENDPOINT and SERVER_PID.
start() {
    local name="$1"; shift
    "$COFFER" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --regions us-east-1 "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        ENDPOINT="$(sed -n 's/^listening on //p' "$WORK/$name.out")"
        [[ -n "$ENDPOINT" ]] && break
        sleep 0.05
    done
    [[ -n "$ENDPOINT" ]] || { echo "$name did not start:"; cat "$WORK/$name.log"; exit 1; }
}

credentials() {
    local dir="$1"
    AWS_ACCESS_KEY_ID="$(sed -n 's/^aws_access_key_id = //p' "$dir/aws/credentials")"
    AWS_SECRET_ACCESS_KEY="$(sed -n 's/^aws_secret_access_key = //p' "$dir/aws/credentials")"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1
}

measure() {
    local label="$1"; shift
    "$LOADGEN" create --endpoint "$ENDPOINT" --secret-id bench --secrets 1 "$@" >/dev/null
    "$LOADGEN" run --endpoint "$ENDPOINT" --secret-id bench-0 --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --format json \
        --label "$label" "$@" >"$WORK/$label.json"
    "$LOADGEN" run --endpoint "$ENDPOINT" --secret-id bench-0 --concurrency 1,8 \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --format json \
        --label "$label-reconnect" --reconnect "$@" >"$WORK/$label-reconnect.json"
}

start http
credentials "$WORK/http"
measure http
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

start https --tls auto
credentials "$WORK/https"
measure https --ca-file "$WORK/https/tls/ca.pem"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

REPORT="$("$LOADGEN" report "$WORK/http.json" "$WORK/https.json" "$WORK/http-reconnect.json" \
    "$WORK/https-reconnect.json" --ratio https/http --ratio https-reconnect/http-reconnect)"
echo "$REPORT"
[[ -z "$OUT" ]] || echo "$REPORT" >"$OUT"
