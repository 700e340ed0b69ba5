#!/usr/bin/env bash
# GetSecretValue on a filled Region (bench/scale.sh fill), one fresh server per run: the rate,
# the server's CPU per request and its RSS, for comparing builds run by run (issue 13; results
# in docs/benchmarks.md).
#
# usage: bench/reads.sh --data DIR --secrets N [--op random|hot|hot-signed|each]
#                       [--duration 12s] [--first-reads] [--bin PATH]
#
# --op random:     GetSecretValue of a uniformly random one of scale-0 ... scale-(N-1)
#      hot:        GetSecretValue of scale-0 (the load generator reuses a signature a second)
#      hot-signed: the same, every request signed, as the random run signs every request
#      each:       every secret in turn (so every LastAccessedDate is today)
# --first-reads:   first clears every LastAccessedDate with sqlite3 (Coffer stopped), so each
#                  read is a secret's first of the day and records the day (SQLite only).
# --bin PATH:      the coffer binary to measure (default: the release build, built first).
# 32 connections, closed loop. Server CPU is read from /proc over the middle of the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADGEN="$TARGET_DIR/release/coffer-loadgen"
COFFER=""
DATA=""
SECRETS=""
OP=random
DURATION=12s
FIRST=0

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift ;;
        --secrets) SECRETS="$2"; shift ;;
        --op) OP="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --first-reads) FIRST=1 ;;
        --bin) COFFER="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ -n $DATA && -n $SECRETS ]] || { usage >&2; exit 2; }
die() { echo "[reads] error: $*" >&2; exit 1; }
CONFIG=()
SERVER_PID=""
WORK="$(mktemp -d "${TMPDIR:-/tmp}/coffer-reads.XXXXXX")"
trap 'if [[ -n $SERVER_PID ]]; then stop_server; fi; rm -rf "$WORK"' EXIT
# rss_mb, ini_value, build_release, start_server, stop_server.
source "$ROOT/bench/region-server.sh"
build_release
command -v python3 >/dev/null || die "python3 is needed to read the load generator's JSON"

case "$OP" in
    random) args=(--secret-id scale --secrets "$SECRETS" --operation get-random) ;;
    hot) args=(--secret-id scale-0 --operation get) ;;
    hot-signed) args=(--secret-id scale-0 --operation get --sign-each) ;;
    each) args=(--secret-id scale --secrets "$SECRETS" --operation get-each) ;;
    *) die "unknown --op $OP" ;;
esac

if [[ $FIRST == 1 ]]; then
    command -v sqlite3 >/dev/null || die "--first-reads needs sqlite3 (apt-get install sqlite3)"
    region="$(ini_value "$DATA/aws/config" default region 2>/dev/null || true)"
    db="$DATA/regions/${region:-us-east-1}.db"
    [[ -f $db ]] || die "no SQLite Region at $db"
    sqlite3 "$db" "BEGIN; UPDATE secrets SET last_accessed_day = NULL WHERE last_accessed_day IS NOT NULL; \
        UPDATE secret_versions SET last_accessed_day = NULL WHERE last_accessed_day IS NOT NULL; COMMIT; \
        PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
fi

start_server
PID=$SERVER_PID
rss() { rss_mb "$PID"; }

rss0="$(rss)"
"$LOADGEN" run --endpoint "$URL" "${args[@]}" --concurrency 32 --duration "$DURATION" \
    --warmup 0s --format json >"$WORK/load.json" 2>/dev/null &
load=$!
seconds="${DURATION%s}"
quarter=$(( seconds / 4 ))
sleep "$quarter"
cpu0=$(awk '{ print $14 + $15 }' "/proc/$PID/stat"); t0=$(date +%s%N)
sleep $(( seconds / 2 ))
cpu1=$(awk '{ print $14 + $15 }' "/proc/$PID/stat"); t1=$(date +%s%N)
wait "$load"
python3 - "$cpu0" "$cpu1" "$t0" "$t1" "$OP" "$rss0" "$(rss)" "$WORK/load.json" <<'PY'
import json, os, sys
cpu0, cpu1, t0, t1 = map(int, sys.argv[1:5])
op, rss0, rss1, path = sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
r = json.load(open(path))["results"][0]
cores = (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK") / ((t1 - t0) / 1e9)
print("%s: %.0f req/s, p50 %s ms, p99 %s ms, errors %s; server %.2f cores, %.1f us per request; RSS %s -> %s MB"
      % (op, r["rps"], r.get("p50_ms"), r.get("p99_ms"), r.get("errors"), cores, cores / r["rps"] * 1e6, rss0, rss1))
PY
