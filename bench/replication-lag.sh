#!/usr/bin/env bash
# Replication lag p50/p99 at a steady write load across processes: three nodes on loopback
# (scripts/three-regions.sh, release build), 200 PutSecretValue/s on us-west-2 spread over 200
# secrets each replicated to us-east-1 and eu-west-1, lag read from the primary's
# coffer_replication_lag_seconds histogram (commit on the primary -> apply on the replica).
#
# usage: [COFFER_BIN=path] bench/replication-lag.sh [--rate 200] [--seconds 20] [--secrets 200]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# The Python environment of bench/run.sh (boto3 is pinned there).
if [[ ! -x bench/.venv/bin/python ]]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet -r bench/requirements.txt
fi
# COFFER_BIN: a prebuilt release binary to measure instead of building this tree.
if [[ -z "${COFFER_BIN:-}" ]]; then
    cargo build --release --locked -p coffer
    COFFER_BIN="$root/target/release/coffer"
fi
export COFFER_BIN
export COFFER_CLUSTER_DIR
COFFER_CLUSTER_DIR="$(mktemp -d)"
export COFFER_PORT_US_WEST_2=17781 COFFER_PORT_US_EAST_1=17782 COFFER_PORT_EU_WEST_1=17783
scripts/three-regions.sh > "$COFFER_CLUSTER_DIR/cluster.log" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null; rm -rf "$COFFER_CLUSTER_DIR"' EXIT
for port in 17781 17782 17783; do
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$COFFER_CLUSTER_DIR/cluster.log"; exit 1; }
done
export AWS_SHARED_CREDENTIALS_FILE="$COFFER_CLUSTER_DIR/aws/credentials"
export AWS_CONFIG_FILE="$COFFER_CLUSTER_DIR/aws/config"
bench/.venv/bin/python bench/replication_lag.py --primary http://127.0.0.1:17781 "$@"
