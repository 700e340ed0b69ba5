#!/usr/bin/env bash
# Three Coffer nodes on loopback, one AWS Region each, replicating secrets to each other:
#
#   us-west-2  http://127.0.0.1:7781     (COFFER_PORT_US_WEST_2)
#   us-east-1  http://127.0.0.1:7782     (COFFER_PORT_US_EAST_1)
#   eu-west-1  http://127.0.0.1:7783     (COFFER_PORT_EU_WEST_1)
#
# Everything lives under ${COFFER_CLUSTER_DIR:-./coffer-cluster}:
#
#   cluster.env              account id and the admin key shared by the three nodes (0600)
#   <region>/node.toml       the node's config file: listen, data_dir, regions, [[peers]]
#   <region>/data/           the node's data directory (stores, root keys)
#   <region>/node.log        the node's stdout and stderr of the last run
#   <region>/node.pid        the node's process id while it runs
#   aws/config               AWS CLI profiles `us-west-2`, `us-east-1`, `eu-west-1` (default: us-west-2)
#   aws/credentials          the admin key, for every profile
#
# The first run creates the directory; later runs reuse it as it is (node.toml files that you
# edited are kept; delete a file to have it written again). The script stays in the foreground
# and stops the three nodes on Ctrl-C or SIGTERM; <region>/node.pid holds each node's process id.
# `three-regions.sh --prepare` only writes the directory and exits, so that a node.toml can be
# edited before the first start (bench/replication-lag.sh points a peer URL at a proxy that way).
#
# Settings (environment): COFFER_BIN (default: `cargo build --release -p coffer`, then
# target/release/coffer), COFFER_CLUSTER_DIR, COFFER_HOST (127.0.0.1), the three ports above,
# COFFER_ACCOUNT_ID (first run only; 111122223333), COFFER_REPLICATION_FAILURE_TIMEOUT_SECS
# (first run only; 30).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
prepare_only=false
case "${1:-}" in
    --prepare) prepare_only=true ;;
    "") ;;
    *) printf 'usage: three-regions.sh [--prepare]\n' >&2; exit 2 ;;
esac
regions=(us-west-2 us-east-1 eu-west-1)
host="${COFFER_HOST:-127.0.0.1}"
declare -A port=(
    [us-west-2]="${COFFER_PORT_US_WEST_2:-7781}"
    [us-east-1]="${COFFER_PORT_US_EAST_1:-7782}"
    [eu-west-1]="${COFFER_PORT_EU_WEST_1:-7783}"
)

say() { printf '%s\n' "$*"; }
die() { printf 'three-regions.sh: %s\n' "$*" >&2; exit 1; }

# --- the binary -------------------------------------------------------------------------------
if [ -n "${COFFER_BIN:-}" ]; then
    bin="$COFFER_BIN"
else
    say "Building coffer (cargo build --release -p coffer) ..."
    (cd "$root" && cargo build --release -p coffer) || die "cargo build --release -p coffer failed"
    bin="$root/target/release/coffer"
fi
[ -x "$bin" ] || die "no coffer binary at $bin (set COFFER_BIN or run cargo build --release -p coffer)"

# --- the cluster directory --------------------------------------------------------------------
umask 077
cluster="${COFFER_CLUSTER_DIR:-./coffer-cluster}"
mkdir -p "$cluster"
cluster="$(cd "$cluster" && pwd)"

# One account and one admin key for the whole deployment, so one credential works on every node.
if [ ! -s "$cluster/cluster.env" ]; then
    hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
    key_id="AKIA$(hex 8 | tr 'a-f' 'A-F')"
    cat >"$cluster/cluster.env" <<EOF
# Written by scripts/three-regions.sh on the first run; the nodes' data directories hold the same.
COFFER_ACCOUNT_ID=${COFFER_ACCOUNT_ID:-111122223333}
COFFER_ADMIN_ACCESS_KEY_ID=$key_id
COFFER_ADMIN_SECRET_ACCESS_KEY=$(hex 20)
EOF
    say "Created $cluster"
else
    say "Reusing $cluster"
fi
# shellcheck disable=SC1091
. "$cluster/cluster.env"

# Each node's Region key pair: peers seal replication messages to its public key.
declare -A public_key
for r in "${regions[@]}"; do
    mkdir -p "$cluster/$r/data"
    public_key[$r]="$("$bin" public-key --data-dir "$cluster/$r/data" --region "$r")" \
        || die "coffer public-key failed for $r"
done

for r in "${regions[@]}"; do
    conf="$cluster/$r/node.toml"
    [ -s "$conf" ] && continue
    {
        say "# Coffer node hosting $r (written by scripts/three-regions.sh; edit it and restart)."
        say "listen = \"$host:${port[$r]}\""
        say "data_dir = \"$cluster/$r/data\""
        say "regions = [\"$r\"]"
        say "account_id = \"$COFFER_ACCOUNT_ID\""
        say "admin_access_key_id = \"$COFFER_ADMIN_ACCESS_KEY_ID\""
        say "admin_secret_access_key = \"$COFFER_ADMIN_SECRET_ACCESS_KEY\""
        say "replication_failure_timeout_secs = ${COFFER_REPLICATION_FAILURE_TIMEOUT_SECS:-30}"
        for p in "${regions[@]}"; do
            [ "$p" = "$r" ] && continue
            say ""
            say "[[peers]]"
            say "region = \"$p\""
            say "url = \"http://$host:${port[$p]}\""
            say "public_key = \"${public_key[$p]}\""
        done
    } >"$conf"
done

# The URL each node listens on, as its node.toml says (it may have been edited since).
declare -A url
for r in "${regions[@]}"; do
    listen="$(sed -n 's/^listen *= *"\(.*\)".*/\1/p' "$cluster/$r/node.toml" | head -n 1)"
    [ -n "$listen" ] || die "$cluster/$r/node.toml has no listen = \"HOST:PORT\" line"
    url[$r]="http://$listen"
done

# AWS CLI files: one profile per Region (its region and its node's endpoint), the same key in each.
mkdir -p "$cluster/aws"
{
    say "[default]"
    say "region = us-west-2"
    say "endpoint_url = ${url[us-west-2]}"
    for r in "${regions[@]}"; do
        say ""
        say "[profile $r]"
        say "region = $r"
        say "endpoint_url = ${url[$r]}"
    done
} >"$cluster/aws/config"
{
    for p in default "${regions[@]}"; do
        say "[$p]"
        say "aws_access_key_id = $COFFER_ADMIN_ACCESS_KEY_ID"
        say "aws_secret_access_key = $COFFER_ADMIN_SECRET_ACCESS_KEY"
        say ""
    done
} >"$cluster/aws/credentials"

if $prepare_only; then
    say "Prepared $cluster (not started)"
    exit 0
fi

# --- run --------------------------------------------------------------------------------------
declare -A pid
stop_all() {
    trap - INT TERM
    for r in "${!pid[@]}"; do
        kill -TERM "${pid[$r]}" 2>/dev/null || true
    done
    for r in "${!pid[@]}"; do
        wait "${pid[$r]}" 2>/dev/null || true
        rm -f "$cluster/$r/node.pid"
    done
    pid=()
}
on_signal() {
    say ""
    say "Stopping the three nodes ..."
    stop_all
    say "Stopped. Data kept in $cluster"
    exit 0
}
trap on_signal INT TERM
trap stop_all EXIT

for r in "${regions[@]}"; do
    # NO_COLOR: plain log lines in node.log (no terminal escapes).
    NO_COLOR=1 "$bin" serve --config "$cluster/$r/node.toml" >"$cluster/$r/node.log" 2>&1 </dev/null &
    pid[$r]=$!
    echo "${pid[$r]}" >"$cluster/$r/node.pid"
done

# Ready when each node printed `listening on`; a node that exits instead is reported with its log.
deadline=$((SECONDS + 30))
for r in "${regions[@]}"; do
    until grep -q '^listening on ' "$cluster/$r/node.log" 2>/dev/null; do
        if ! kill -0 "${pid[$r]}" 2>/dev/null; then
            say "The $r node did not start; the end of $cluster/$r/node.log:" >&2
            tail -n 20 "$cluster/$r/node.log" >&2
            exit 1
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "the $r node did not start within 30 s (see $cluster/$r/node.log)"
        sleep 0.1
    done
done

cat <<EOF

Three Coffer nodes are running (account $COFFER_ACCOUNT_ID); each hosts the Regions of its config file:

  us-west-2  ${url[us-west-2]}   config $cluster/us-west-2/node.toml   log $cluster/us-west-2/node.log
  us-east-1  ${url[us-east-1]}   config $cluster/us-east-1/node.toml   log $cluster/us-east-1/node.log
  eu-west-1  ${url[eu-west-1]}   config $cluster/eu-west-1/node.toml   log $cluster/eu-west-1/node.log

In another shell:

export AWS_CONFIG_FILE=$cluster/aws/config AWS_SHARED_CREDENTIALS_FILE=$cluster/aws/credentials
aws secretsmanager create-secret --name production/DBWest --secret-string s3cr3t --profile us-west-2
aws secretsmanager replicate-secret-to-regions --secret-id production/DBWest --add-replica-regions Region=us-east-1 --profile us-west-2
aws secretsmanager describe-secret --secret-id production/DBWest --profile us-west-2
aws secretsmanager get-secret-value --secret-id production/DBWest --profile us-east-1

Ctrl-C stops the three nodes.
EOF

# Stay in the foreground until a signal arrives. A node that stops (say, `kill $(cat
# $cluster/us-west-2/node.pid)` to take its Region down) is reported; the others keep running,
# and running this script again restarts all three.
set +e
while [ "${#pid[@]}" -gt 0 ]; do
    wait -n "${pid[@]}"
    for r in "${!pid[@]}"; do
        if ! kill -0 "${pid[$r]}" 2>/dev/null; then
            wait "${pid[$r]}" 2>/dev/null
            say "The $r node has stopped; the end of $cluster/$r/node.log:" >&2
            tail -n 3 "$cluster/$r/node.log" >&2
            rm -f "$cluster/$r/node.pid"
            unset "pid[$r]"
        fi
    done
done
say "All three nodes have stopped."
