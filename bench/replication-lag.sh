#!/usr/bin/env bash
# Replication lag p50/p99 at a fixed write rate across processes, and the same with one
# destination black-holed. Each run starts three fresh release-build nodes on loopback
# (scripts/three-regions.sh), creates --secrets secrets in us-west-2 each replicated to
# us-east-1 and eu-west-1 (coffer-loadgen create; not measured), drives PutSecretValue at
# --rate writes/s spread over them for --seconds (coffer-loadgen run --rate: open loop, Rust),
# waits for the queues to drain, and reads lag from the primary's
# coffer_replication_lag_seconds histogram (commit on the primary -> apply on the replica).
#
# Modes (--mode, comma-separated; --runs repeats the list, alternating):
#   direct     us-west-2 talks to both replicas directly (the replication lag benchmark)
#   proxy      us-west-2 reaches us-east-1 through `coffer-loadgen proxy`, forwarding
#   blackhole  the same proxy, switched to black-hole (accept, never answer) 1 s before the
#              load: the isolation benchmark reads eu-west-1's lag with us-east-1 silent
#
# usage: [COFFER_BIN=path] [LOADGEN_BIN=path] bench/replication-lag.sh [--mode direct]
#        [--runs 1] [--rate 1000] [--seconds 60] [--secrets 1000] [--connections 128] [--keep]
#        [--data-under /tmp]   (where the nodes' data directories go; /dev/shm: no disk syncs)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

modes=direct runs=1 rate=1000 seconds=60 secrets=1000 connections=128 keep=false data_under=/tmp
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mode) modes="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --secrets) secrets="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --keep) keep=true; shift ;;
        --data-under) data_under="$2"; shift 2 ;;
        *) sed -n '2,18p' "$0" >&2; exit 2 ;;
    esac
done
for m in ${modes//,/ }; do
    case "$m" in direct|proxy|blackhole) ;; *) echo "unknown mode $m" >&2; exit 2 ;; esac
done
# AWS keeps at most 100 versions without a label younger than a day: a secret written more
# often than that answers LimitExceededException.
if (( $(awk -v r="$rate" -v s="$seconds" -v n="$secrets" 'BEGIN { print (r * s > 100 * n) }') )); then
    echo "--rate x --seconds must be at most 100 x --secrets (AWS's 100 versions a day per secret)" >&2
    exit 2
fi

# COFFER_BIN / LOADGEN_BIN: prebuilt release binaries to measure instead of building this tree.
if [[ -z "${COFFER_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
    cargo build --release --locked -p coffer -p coffer-loadgen
fi
target_dir="${CARGO_TARGET_DIR:-$root/target}"
COFFER_BIN="${COFFER_BIN:-$target_dir/release/coffer}"
LOADGEN_BIN="${LOADGEN_BIN:-$target_dir/release/coffer-loadgen}"
export COFFER_BIN

west=17781 east=17782 eu=17783 proxy_port=17784
primary="http://127.0.0.1:$west"
helper=(python3 "$root/bench/replication_lag.py")
rows="$(mktemp)"
cluster_pid="" proxy_pid="" watcher_pid="" dir=""
stop_run() {
    [[ -n "$watcher_pid" ]] && { kill "$watcher_pid" 2>/dev/null || true; wait "$watcher_pid" 2>/dev/null || true; }
    [[ -n "$cluster_pid" ]] && { kill -TERM "$cluster_pid" 2>/dev/null || true; wait "$cluster_pid" 2>/dev/null || true; }
    [[ -n "$proxy_pid" ]] && { kill -TERM "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
    cluster_pid="" proxy_pid="" watcher_pid=""
    if [[ -n "$dir" ]] && ! $keep; then rm -rf "$dir"; fi
}
trap 'stop_run; rm -f "$rows"' EXIT

one_run() {
    local label="$1" mode="$2"
    dir="$(mktemp -d "$data_under/coffer-lag.XXXXXX")"
    export COFFER_CLUSTER_DIR="$dir"
    export COFFER_PORT_US_WEST_2=$west COFFER_PORT_US_EAST_1=$east COFFER_PORT_EU_WEST_1=$eu
    scripts/three-regions.sh --prepare >/dev/null
    if [[ "$mode" != direct ]]; then
        # us-west-2's peer us-east-1 is reached through the proxy.
        sed -i "s#^url = \"http://127.0.0.1:$east\"#url = \"http://127.0.0.1:$proxy_port\"#" "$dir/us-west-2/node.toml"
        grep -q "127.0.0.1:$proxy_port" "$dir/us-west-2/node.toml"
        "$LOADGEN_BIN" proxy --listen "127.0.0.1:$proxy_port" --upstream "127.0.0.1:$east" \
            >"$dir/proxy.log" 2>&1 &
        proxy_pid=$!
    fi
    local load_before
    load_before="$(uptime)"
    scripts/three-regions.sh >"$dir/cluster.log" 2>&1 &
    cluster_pid=$!
    for port in $west $east $eu; do
        for _ in $(seq 1 300); do
            curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
            sleep 0.1
        done
        curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$dir/cluster.log" >&2; exit 1; }
    done
    # shellcheck disable=SC1091
    . "$dir/cluster.env"
    export AWS_ACCESS_KEY_ID="$COFFER_ADMIN_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$COFFER_ADMIN_SECRET_ACCESS_KEY"
    export AWS_REGION=us-west-2

    "$LOADGEN_BIN" create --endpoint "$primary" --secret-id lag --secrets "$secrets" \
        --replica-regions us-east-1,eu-west-1 --concurrency 16
    "${helper[@]}" wait "$primary/metrics" --dests us-east-1,eu-west-1 --applied "$secrets" --timeout 300
    local dests=us-east-1,eu-west-1
    if [[ "$mode" == blackhole ]]; then
        kill -USR1 "$proxy_pid"
        dests=eu-west-1
        sleep 1
    fi
    local pids names=us-west-2,us-east-1,eu-west-1,proxy
    pids="$(cat "$dir/us-west-2/node.pid"),$(cat "$dir/us-east-1/node.pid"),$(cat "$dir/eu-west-1/node.pid")"
    if [[ -n "$proxy_pid" ]]; then pids="$pids,$proxy_pid"; fi
    "${helper[@]}" scrape "$primary/metrics" --pids ${pids//,/ } >"$dir/before.json"
    echo "[$label] $mode: $rate writes/s for $seconds s over $secrets secrets; $load_before" >&2
    "${helper[@]}" watch "$primary/metrics" >"$dir/depths.jsonl" &
    watcher_pid=$!
    "$LOADGEN_BIN" run --operation put --endpoint "$primary" --secret-id lag --secrets "$secrets" \
        --rate "$rate" --duration "${seconds}s" --warmup 0s --concurrency "$connections" \
        --server-pid "$(cat "$dir/us-west-2/node.pid")" --label "$label" --format json >"$dir/load.json"
    "${helper[@]}" scrape "$primary/metrics" --pids ${pids//,/ } >"$dir/loaded.json"
    "${helper[@]}" wait "$primary/metrics" --dests "$dests" --timeout 120 || true
    kill "$watcher_pid"; wait "$watcher_pid" 2>/dev/null || true
    watcher_pid=""
    "${helper[@]}" scrape "$primary/metrics" --pids ${pids//,/ } >"$dir/after.json"
    "${helper[@]}" report --before "$dir/before.json" --loaded "$dir/loaded.json" \
        --after "$dir/after.json" --load "$dir/load.json" --label "$label" \
        --pids "$pids" --names "$names" --dests "$dests" --depths "$dir/depths.jsonl" | tee -a "$rows"
    $keep && echo "[$label] kept $dir" >&2
    stop_run
    dir=""
}

n=0
for r in $(seq 1 "$runs"); do
    for m in ${modes//,/ }; do
        n=$((n + 1))
        one_run "$m #$r" "$m"
    done
done
echo
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' + uncommitted changes'), $rate writes/s, $seconds s, $secrets secrets, $connections connections, data under $data_under, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
"${helper[@]}" header --names us-west-2,us-east-1,eu-west-1,proxy
cat "$rows"
