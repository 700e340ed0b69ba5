#!/usr/bin/env bash
# PutSecretValue throughput and latency of one node on the embedded SQLite store, at several
# numbers of concurrent writers, for one or more builds in the same run (e.g. before and after a
# change). For each build and each number of writers, in turn: a fresh node on a fresh data
# directory, --secrets secrets created with `coffer-loadgen create` (not measured), then
# `coffer-loadgen run --operation put`
# (closed loop: each connection sends its next PutSecretValue when the last one answered, a
# 100-byte value with a fresh ClientRequestToken, spread evenly over the secrets).
#
# usage: bench/put.sh [--concurrency 1,16,64] [--duration 10s] [--secrets 4000]
#                     [--ratio after/before] LABEL=COFFER_BIN [LABEL=COFFER_BIN ...]
# e.g.   bench/put.sh before=/tmp/main/coffer after=target/release/coffer --ratio after/before
# LOADGEN_BIN (default target/release/coffer-loadgen) drives the load. Prints one markdown table.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
concurrency=1,16,64 duration=10s secrets=4000 ratios=() builds=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --concurrency) concurrency="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --secrets) secrets="$2"; shift 2 ;;
        --ratio) ratios+=(--ratio "$2"); shift 2 ;;
        *=*) builds+=("$1"); shift ;;
        *) sed -n '2,12p' "$0" >&2; exit 2 ;;
    esac
done
[[ ${#builds[@]} -gt 0 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
LOADGEN_BIN="${LOADGEN_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/coffer-loadgen}"
[[ -x "$LOADGEN_BIN" ]] || { echo "no coffer-loadgen at $LOADGEN_BIN" >&2; exit 1; }

WORK="$(mktemp -d /tmp/coffer-put.XXXXXX)"
CONFIG=()
SERVER_PID=""
die() { echo "[put] error: $*" >&2; exit 1; }
trap 'if [[ -n $SERVER_PID ]]; then stop_server; fi; rm -rf "$WORK"' EXIT
# start_server, stop_server (COFFER on DATA; sets SERVER_PID, URL and the AWS_* variables).
source "$root/bench/region-server.sh"

files=()
for build in "${builds[@]}"; do
    label="${build%%=*}" COFFER="${build#*=}"
    [[ -x "$COFFER" ]] || die "no coffer binary at $COFFER"
    for level in ${concurrency//,/ }; do
        # A fresh node per level: every PutSecretValue adds a version, and a level run on the
        # secrets of the one before would start with more versions per secret the faster the
        # build was (each write loads and caches them all), penalising the faster build.
        DATA="$WORK/$label-$level"
        start_server
        "$LOADGEN_BIN" create --endpoint "$URL" --secret-id put --secrets "$secrets" --concurrency 16
        echo "[$label, $level writers] $(uptime)" >&2
        "$LOADGEN_BIN" run --operation put --endpoint "$URL" --secret-id put --secrets "$secrets" \
            --concurrency "$level" --duration "$duration" --server-pid "$SERVER_PID" \
            --label "$label" --format json >"$DATA.json"
        files+=("$DATA.json")
        stop_server
    done
done
echo "commit $(git -C "$root" rev-parse --short HEAD), $secrets secrets, $duration per level, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
"$LOADGEN_BIN" report "${files[@]}" "${ratios[@]}"
