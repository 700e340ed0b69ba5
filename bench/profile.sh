#!/usr/bin/env bash
# Where Coffer's CPU goes per GetSecretValue, by stage (issue 17): starts the release build on a
# fresh data directory, stores one 100-byte secret, drives it with wrk replaying one pre-signed
# GetSecretValue, records the server with `perf record --call-graph dwarf` in the middle of the
# run and prints bench/stages.py's table (share of the server's CPU and µs per request).
#
# usage: bench/profile.sh [--connections 64] [--seconds 4] [--coffer PATH]
# PROFILE_KEEP=FILE keeps the recording (perf.data) there, for `perf report -i FILE`.
# Needs perf (Debian: linux-perf), wrk and the bench venv (bench/run.sh makes it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
COFFER="$TARGET_DIR/release/coffer"
LOADGEN="$TARGET_DIR/release/coffer-loadgen"
CONNECTIONS=64
SECONDS_RECORDED=4
FREQUENCY=499
while [[ $# -gt 0 ]]; do
    case "$1" in
        --connections) CONNECTIONS="$2"; shift ;;
        --seconds) SECONDS_RECORDED="$2"; shift ;;
        --coffer) COFFER="$2"; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "bench/profile.sh: $*" >&2; exit 1; }
command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
[[ -x $ROOT/bench/.venv/bin/python ]] || die "no bench/.venv: run bench/run.sh once"
[[ -x $COFFER && -x $LOADGEN ]] || (cd "$ROOT" && cargo build --release --locked -p coffer -p coffer-loadgen)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/coffer-profile.XXXXXX")"
PID=""
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

"$COFFER" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
url=""
for _ in $(seq 100); do
    url="$(grep -o -m1 'listening on http://127\.0\.0\.1:[0-9]\+' "$WORK/log" | sed 's/^listening on //' || true)"
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || die "Coffer did not start: $(cat "$WORK/log")"
for _ in $(seq 100); do [[ -s $WORK/data/aws/credentials ]] && break; sleep 0.1; done
akid="$(awk -F' = ' '/aws_access_key_id/ { print $2 }' "$WORK/data/aws/credentials")"
sk="$(awk -F' = ' '/aws_secret_access_key/ { print $2 }' "$WORK/data/aws/credentials")"
AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$sk" "$ROOT/bench/.venv/bin/python" \
    "$ROOT/bench/create_secret.py" "$url" us-east-1 bench-secret "$(printf 'v%.0s' $(seq 100))" >/dev/null
AWS_SECRET_ACCESS_KEY="$sk" "$LOADGEN" wrk-script --endpoint "$url" --access-key "$akid" \
    --secret-id bench-secret >"$WORK/get.lua"

# wrk runs 2 s before and after the recording; requests during the recording are counted from
# the server's audit log (one record per request), its CPU time from /proc (perf's DWARF
# unwinding drops samples, so they only give the shares).
wrk -t 2 -c "$CONNECTIONS" -d "$((SECONDS_RECORDED + 4))s" -s "$WORK/get.lua" "$url" >"$WORK/wrk.out" &
WRK=$!
sleep 2
before="$(wc -l <"$WORK/data/audit.log")"
ticks0="$(awk '{ print $14 + $15 }' "/proc/$PID/stat")"
perf record --call-graph dwarf,32768 -F "$FREQUENCY" -p "$PID" -o "$WORK/perf.data" \
    -- sleep "$SECONDS_RECORDED" 2>/dev/null
after="$(wc -l <"$WORK/data/audit.log")"
ticks1="$(awk '{ print $14 + $15 }' "/proc/$PID/stat")"
wait "$WRK"
echo "wrk: $(grep '^WRK_RESULT' "$WORK/wrk.out" | awk '{ printf "%s req/s over the whole run, p99 %s ms", $4, $7 }')"
cpu="$(awk -v t="$((ticks1 - ticks0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }')"
echo "during the recording: $((after - before)) requests, $cpu s of the server's CPU"
[[ -n ${PROFILE_KEEP:-} ]] && cp "$WORK/perf.data" "$PROFILE_KEEP"
perf script -i "$WORK/perf.data" 2>/dev/null | python3 "$ROOT/bench/stages.py" "$((after - before))" "$cpu"
