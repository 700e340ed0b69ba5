#!/usr/bin/env bash
# GetSecretValue that misses the secret cache, on secrets with one version against secrets with
# about a hundred (what a secret rotated every hour carries: AWS keeps up to 100 versions
# without staging labels). One fresh node on a fresh data directory with a 1 MiB cache, so
# nearly every read goes to SQLite: --secrets secrets `few-*` (one version each) and `many-*`
# (filled with PutSecretValue until each refuses more: 100 versions without labels, plus the
# labelled ones), then, twice, 10 s of GetSecretValue of a uniformly random one of each set.
#
# usage: bench/versions.sh [--secrets 2000] [--bin COFFER_BIN] [--postgres URL]
# --postgres URL: the Region on PostgreSQL (`store = URL`; an empty database, e.g. one made
#   for the run with createdb) instead of SQLite; psql then counts the versions.
# LOADGEN_BIN (default target/release/coffer-loadgen) drives the load; sqlite3 (or psql)
# counts versions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADGEN="${LOADGEN_BIN:-$TARGET_DIR/release/coffer-loadgen}"
SECRETS=2000
COFFER=""
POSTGRES=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --secrets) SECRETS="$2"; shift ;;
        --bin) COFFER="$2"; shift ;;
        --postgres) POSTGRES="$2"; shift ;;
        *) sed -n '2,13p' "$0" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "[versions] error: $*" >&2; exit 1; }
if [[ -n $POSTGRES ]]; then
    command -v psql >/dev/null || die "psql is needed with --postgres (apt-get install postgresql-client)"
else
    command -v sqlite3 >/dev/null || die "sqlite3 is needed (apt-get install sqlite3)"
fi
# rss_mb, build_release, start_server, stop_server.
source "$ROOT/bench/region-server.sh"
build_release

WORK="$(mktemp -d "${TMPDIR:-/tmp}/coffer-versions.XXXXXX")"
DATA="$WORK/data"
SERVER_PID=""
printf 'cache_max_bytes = 1048576\n' >"$WORK/coffer.toml"
[[ -z $POSTGRES ]] || printf 'store = "%s"\n' "$POSTGRES" >>"$WORK/coffer.toml"
CONFIG=(--config "$WORK/coffer.toml")
trap 'if [[ -n $SERVER_PID ]]; then stop_server; fi; rm -rf "$WORK"' EXIT
start_server

row() { grep '^| 127' | tail -1; }
versions() {
    local counts="SELECT min(c), max(c) FROM (SELECT count(*) AS c \
        FROM secret_versions v JOIN secrets s ON s.arn = v.secret_arn \
        WHERE s.name LIKE '$1-%' GROUP BY v.secret_arn) AS per_secret"
    if [[ -n $POSTGRES ]]; then
        psql "$POSTGRES" -tA -c "SET search_path TO coffer_${AWS_REGION//-/_}; $counts" | tail -1
    else
        sqlite3 "$DATA/regions/$AWS_REGION.db" "$counts"
    fi
}
for set in few many; do
    "$LOADGEN" create --endpoint "$URL" --secret-id "$set" --secrets "$SECRETS" --concurrency 16 >/dev/null
done
# Until every many-* refuses another version (LimitExceededException counts as an error).
while [[ "$(versions many | cut -d'|' -f1)" -lt 100 ]]; do
    "$LOADGEN" run --operation put --endpoint "$URL" --secret-id many --secrets "$SECRETS" \
        --concurrency 64 --duration 30s --warmup 0s >/dev/null 2>&1 || true
done
echo "versions per secret (min|max): few $(versions few), many $(versions many)"
echo "| set | target | connections | req/s | p50 ms | p99 ms | errors | generator CPU % | server CPU % | other CPU % |"
for _ in 1 2; do
    for set in few many; do
        echo "| $set $("$LOADGEN" run --operation get-random --endpoint "$URL" --secret-id "$set" \
            --secrets "$SECRETS" --concurrency 32 --duration 10s --warmup 1s 2>&1 | row)"
    done
done
echo "RSS $(rss_mb "$SERVER_PID") MB"
