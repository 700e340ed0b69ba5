#!/usr/bin/env bash
# A throwaway PostgreSQL for the store's conformance tests.
#
#   eval "$(scripts/postgres.sh start)"   # initialises a cluster, prints the export line
#   scripts/postgres.sh url               # prints the export line of the running cluster again
#   scripts/postgres.sh stop              # stops the cluster and removes its directory
#
# The cluster uses the machine's PostgreSQL 15 server binaries (override with PG_BIN), runs as
# the `postgres` user (initdb refuses root) in a fresh temporary directory, listens on a free
# 127.0.0.1 port with trust authentication for local TCP, and has one database, `coffer`.
# State lives in $COFFER_PG_STATE (default /tmp/coffer-test-postgres.env). Everything that goes
# wrong stops the script with a message on stderr and a non-zero status: there is no silent skip.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
STATE=${COFFER_PG_STATE:-/tmp/coffer-test-postgres.env}
PG_USER=postgres
DB_NAME=coffer

die() {
    printf 'postgres.sh: %s\n' "$*" >&2
    exit 1
}

# Runs a command as the postgres user (or directly when we already are that user).
as_pg() {
    if [ "$(id -un)" = "$PG_USER" ]; then
        "$@"
    elif [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_USER" -- "$@"
    elif [ "$(id -u)" = 0 ]; then
        su "$PG_USER" -s /bin/sh -c "$(printf '%q ' "$@")"
    else
        die "must run as root or as the '$PG_USER' user to start a cluster (initdb refuses root, so root switches to '$PG_USER')"
    fi
}

free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "found no free TCP port on 127.0.0.1"
}

export_line() {
    local PORT
    # shellcheck disable=SC1090
    . "$STATE"
    echo "export COFFER_TEST_POSTGRES_URL=postgres://$PG_USER@127.0.0.1:$PORT/$DB_NAME"
}

running() {
    [ -f "$STATE" ] || return 1
    # shellcheck disable=SC1090
    . "$STATE"
    [ -d "${DATA_DIR:-}" ] && as_pg "$PG_BIN/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

start() {
    for tool in initdb pg_ctl psql pg_isready; do
        [ -x "$PG_BIN/$tool" ] || die "PostgreSQL server binaries not found: $PG_BIN/$tool is missing. \
Install PostgreSQL 15 (Debian: apt-get install postgresql-15) or set PG_BIN to the directory holding initdb and pg_ctl."
    done
    id "$PG_USER" >/dev/null 2>&1 || die "there is no '$PG_USER' user to run the cluster as (initdb refuses root)"
    if running; then
        echo "postgres.sh: a cluster is already running (state in $STATE)" >&2
        export_line
        return 0
    fi
    if [ -f "$STATE" ]; then
        echo "postgres.sh: removing the stale cluster recorded in $STATE" >&2
        stop
    fi

    local dir port
    dir=$(mktemp -d /tmp/coffer-test-postgres.XXXXXX)
    chown "$PG_USER": "$dir" 2>/dev/null || [ "$(id -un)" = "$PG_USER" ] || die "cannot hand $dir to the '$PG_USER' user"
    chmod 700 "$dir"
    port=$(free_port)
    printf 'DATA_DIR=%q\nPORT=%q\n' "$dir/data" "$port" >"$STATE"

    if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed (log above)"
    fi
    # Small, fast, throwaway: no durability needed for tests.
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    cat >"$dir/data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -w -t 60 >/dev/null; then
        cat "$dir/server.log" >&2 || true
        die "the PostgreSQL server did not start (log above)"
    fi
    as_pg "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -t 30 >/dev/null ||
        die "the PostgreSQL server does not answer on 127.0.0.1:$port"
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -q \
        -c "CREATE DATABASE $DB_NAME" >/dev/null || die "could not create the database '$DB_NAME'"
    echo "postgres.sh: PostgreSQL running on 127.0.0.1:$port (data in $dir)" >&2
    export_line
}

stop() {
    if [ ! -f "$STATE" ]; then
        echo "postgres.sh: no cluster recorded in $STATE; nothing to stop" >&2
        return 0
    fi
    # shellcheck disable=SC1090
    . "$STATE"
    if [ -d "${DATA_DIR:-}" ]; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$DATA_DIR" -m immediate -w >/dev/null 2>&1 || true
        case "$DATA_DIR" in
        /tmp/coffer-test-postgres.*/data) rm -rf "$(dirname "$DATA_DIR")" ;;
        *) die "refusing to remove unexpected directory $DATA_DIR" ;;
        esac
    fi
    rm -f "$STATE"
    echo "postgres.sh: stopped" >&2
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url)
    running || die "no cluster is running; start one with: eval \"\$(scripts/postgres.sh start)\""
    export_line
    ;;
*)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
