#!/usr/bin/env bash
# Region failover of many replicas (docs/failover.md): three fresh release-build nodes on
# loopback (scripts/three-regions.sh); --secrets secrets created in us-west-2, each replicated to
# us-east-1 (coffer-loadgen create; not measured); once us-east-1 holds them all, the us-west-2
# node is SIGKILLed. Then GetSecretValue of one of the replicas in us-east-1 is measured twice
# with coffer-loadgen (closed loop, --connections connections, --seconds each): once before the
# failover (baseline) and once while `coffer region failover --region us-east-1 --from
# us-west-2` promotes every replica, started as that measurement's window opens. Prints the
# failover's wall time, the promoted count and both p50/p99.
#
# usage: [COFFER_BIN=path] [LOADGEN_BIN=path] bench/failover.sh [--secrets 10000]
#        [--seconds 10] [--connections 8] [--data-under /tmp] [--keep]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

secrets=10000 seconds=10 connections=8 data_under=/tmp keep=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --secrets) secrets="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --data-under) data_under="$2"; shift 2 ;;
        --keep) keep=true; shift ;;
        *) sed -n '2,12p' "$0" >&2; exit 2 ;;
    esac
done

if [[ -z "${COFFER_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
    cargo build --release --locked -p coffer -p coffer-loadgen
fi
target_dir="${CARGO_TARGET_DIR:-$root/target}"
COFFER_BIN="${COFFER_BIN:-$target_dir/release/coffer}"
LOADGEN_BIN="${LOADGEN_BIN:-$target_dir/release/coffer-loadgen}"
export COFFER_BIN

west=18781 east=18782 eu=18783
dir="$(mktemp -d "$data_under/coffer-failover.XXXXXX")"
cluster_pid=""
cleanup() {
    [[ -n "$cluster_pid" ]] && { kill -TERM "$cluster_pid" 2>/dev/null || true; wait "$cluster_pid" 2>/dev/null || true; }
    if ! $keep; then rm -rf "$dir"; fi
}
trap cleanup EXIT

export COFFER_CLUSTER_DIR="$dir"
export COFFER_PORT_US_WEST_2=$west COFFER_PORT_US_EAST_1=$east COFFER_PORT_EU_WEST_1=$eu
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

east_url="http://127.0.0.1:$east"
replicas() {
    "$COFFER_BIN" region point --region us-east-1 --endpoint "$east_url" |
        python3 -c 'import json,sys; l=[x for x in json.load(sys.stdin)["Links"] if x["PrimaryRegion"]=="us-west-2"]; print(l[0]["ReplicaCount"] if l else 0)'
}

echo "creating $secrets secrets in us-west-2 replicated to us-east-1" >&2
AWS_REGION=us-west-2 "$LOADGEN_BIN" create --endpoint "http://127.0.0.1:$west" --secret-id fo \
    --secrets "$secrets" --replica-regions us-east-1 --concurrency 16
for _ in $(seq 1 600); do
    [[ "$(replicas)" == "$secrets" ]] && break
    sleep 1
done
[[ "$(replicas)" == "$secrets" ]] || { echo "us-east-1 holds $(replicas) of $secrets replicas" >&2; exit 1; }

kill -KILL "$(cat "$dir/us-west-2/node.pid")"
east_pid="$(cat "$dir/us-east-1/node.pid")"
read_load() {
    AWS_REGION=us-east-1 "$LOADGEN_BIN" run --endpoint "$east_url" --secret-id fo-0 \
        --concurrency "$connections" --duration "${seconds}s" --warmup 2s \
        --server-pid "$east_pid" --label "$1" --format json
}
echo "baseline: GetSecretValue in us-east-1, no failover" >&2
read_load baseline >"$dir/baseline.json"
echo "GetSecretValue in us-east-1 while failing over $secrets replicas" >&2
read_load failover >"$dir/during.json" &
load_pid=$!
sleep 2 # the load generator's warm-up: the failover starts as its window opens
start=$(date +%s.%N)
"$COFFER_BIN" region failover --region us-east-1 --from us-west-2 --endpoint "$east_url" >"$dir/report.json"
end=$(date +%s.%N)
wait "$load_pid"

python3 - "$dir" "$start" "$end" "$secrets" "$seconds" <<'PY'
import json, sys
d, start, end, secrets, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
report = json.load(open(f"{d}/report.json"))
base = json.load(open(f"{d}/baseline.json"))["results"][0]
during = json.load(open(f"{d}/during.json"))["results"][0]
assert report["PromotedCount"] == secrets, report["PromotedCount"]
print(f"failover of {secrets} replicas: {end - start:.2f} s wall (PromotedCount {report['PromotedCount']}, status {report['Status']})")
for label, r in (("baseline (no failover)", base), (f"during the failover ({seconds} s window from its start)", during)):
    print(f"GetSecretValue {label}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms, errors {r['errors']}")
PY
