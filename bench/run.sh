#!/usr/bin/env bash
# Benchmark GetSecretValue throughput/latency: trivial hyper endpoint vs moto_server vs Coffer.
#
# usage: bench/run.sh [--skip-coffer] [--skip-moto] [--concurrency 1,8,32,64]
#                     [--duration 10s] [--warmup 2s] [--client loadgen|wrk] [--out FILE] [--keep]
#
# Builds coffer-loadgen (and coffer) in release mode, sets up bench/.venv with the pinned
# moto[server], starts each server on a free 127.0.0.1 port, stores one ~100-byte secret
# `bench-secret` in it, drives load at each concurrency, stops the server, and finally prints
# one markdown table plus coffer/trivial and coffer/moto throughput ratios.
# --client wrk drives the load with wrk (installed from Debian if missing; 2 threads) replaying
# one pre-signed request (`coffer-loadgen wrk-script`); its default concurrency is 16,64.
# All traffic stays on 127.0.0.1. Everything started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
VENV="$BENCH/.venv"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADGEN="$TARGET_DIR/release/coffer-loadgen"
COFFER="$TARGET_DIR/release/coffer"

SECRET_ID="bench-secret"
# Exactly 100 bytes.
SECRET_VALUE="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB"
MOTO_REGION="us-east-1"

SKIP_COFFER=0
SKIP_MOTO=0
CONCURRENCY=""
CLIENT="loadgen"
DURATION="10s"
WARMUP="2s"
OUT=""
KEEP=0

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --skip-coffer) SKIP_COFFER=1 ;;
        --skip-moto) SKIP_MOTO=1 ;;
        --concurrency) CONCURRENCY="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --client) CLIENT="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

case "$CLIENT" in
    loadgen) CONCURRENCY="${CONCURRENCY:-1,8,32,64}" ;;
    wrk) CONCURRENCY="${CONCURRENCY:-16,64}" ;;
    *) die "--client is loadgen or wrk, not $CLIENT" ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/coffer-bench.XXXXXX")"
PIDS=()

stop_pid() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        stop_pid "$pid"
    done
    if [[ $KEEP == 1 ]]; then
        log "kept logs and raw results in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg LOGFILE CMD...: start a server in the background, remember its pid in $BG_PID.
start_bg() {
    local logfile="$1"
    shift
    "$@" >"$logfile" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}

# wait_listen_url PID LOGFILE TIMEOUT_S: print the URL from a `listening on http://...` line.
wait_listen_url() {
    local pid="$1" logfile="$2" timeout="$3" url
    for _ in $(seq $((timeout * 10))); do
        url="$(grep -o -m1 'listening on http://127\.0\.0\.1:[0-9]\+' "$logfile" 2>/dev/null | sed 's/^listening on //' || true)"
        if [[ -n $url ]]; then
            echo "$url"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$logfile" >&2; die "server (pid $pid) exited before listening"; }
        sleep 0.1
    done
    cat "$logfile" >&2
    die "no 'listening on http://127.0.0.1:PORT' line in $logfile after ${timeout}s"
}

# wait_http_ok PID URL LOGFILE TIMEOUT_S: poll URL until it answers 200.
wait_http_ok() {
    local pid="$1" url="$2" logfile="$3" timeout="$4" code=""
    for _ in $(seq $((timeout * 10))); do
        code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)"
        [[ $code == 200 ]] && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$logfile" >&2; die "server (pid $pid) exited before $url answered 200"; }
        sleep 0.1
    done
    cat "$logfile" >&2
    die "$url did not answer 200 within ${timeout}s (last status: $code)"
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ini_value FILE SECTION KEY
ini_value() {
    "$VENV/bin/python" - "$1" "$2" "$3" <<'EOF'
import configparser, sys
path, section, key = sys.argv[1:4]
cp = configparser.ConfigParser()
if not cp.read(path):
    sys.exit(f"cannot read {path}")
for name in (section, f"profile {section}"):
    if cp.has_option(name, key):
        print(cp.get(name, key).strip())
        sys.exit(0)
sys.exit(f"{path}: no [{section}] {key}")
EOF
}

# proc_ticks PID: CPU clock ticks (user + system) the process used so far.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# machine_ticks: CPU clock ticks all processes used so far (user + nice + system + steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat; }

# wrk_target LABEL SERVER_PID URL REGION ACCESS_KEY SECRET_KEY: as bench_target, with wrk.
wrk_target() {
    local label="$1" pid="$2" url="$3" region="$4" akid="$5" sk="$6" c script out s0 m0 s1 m1
    log "load (wrk): $label at $url (connections $CONCURRENCY, warm-up $WARMUP, $DURATION each)"
    local levels=()
    IFS=, read -r -a levels <<<"$CONCURRENCY"
    : >"$WORK/$label.wrk"
    for c in "${levels[@]}"; do
        script="$WORK/$label-$c.lua"
        AWS_SECRET_ACCESS_KEY="$sk" "$LOADGEN" wrk-script --endpoint "$url" --region "$region" \
            --access-key "$akid" --secret-id "$SECRET_ID" >"$script"
        wrk -t 2 -c "$c" -d "$WARMUP" -s "$script" "$url" >/dev/null
        s0="$(proc_ticks "$pid")"
        m0="$(machine_ticks)"
        out="$(/usr/bin/time -f "WRK_CPU %U %S" wrk -t 2 -c "$c" -d "$DURATION" -s "$script" "$url" 2>&1)"
        s1="$(proc_ticks "$pid")"
        m1="$(machine_ticks)"
        grep -q '^WRK_RESULT ' <<<"$out" || { echo "$out" >&2; die "wrk printed no result"; }
        echo "$c $(grep '^WRK_RESULT ' <<<"$out" | cut -d' ' -f2-) $(grep '^WRK_CPU ' <<<"$out" | cut -d' ' -f2-) $((s1 - s0)) $((m1 - m0))" >>"$WORK/$label.wrk"
    done
    "$VENV/bin/python" "$BENCH/wrk_report.py" "$WORK/$label.wrk" "$label" "$url" \
        "$(getconf CLK_TCK)" >"$WORK/$label.json"
    RESULTS+=("$WORK/$label.json")
}

# bench_target LABEL SERVER_PID URL REGION ACCESS_KEY SECRET_KEY: run the load, JSON to
# $WORK/LABEL.json (the server's CPU use is read from /proc/SERVER_PID during each window).
bench_target() {
    local label="$1" pid="$2" url="$3" region="$4" akid="$5" sk="$6"
    if [[ $CLIENT == wrk ]]; then
        wrk_target "$@"
        return
    fi
    log "load: $label at $url (concurrency $CONCURRENCY, warm-up $WARMUP, $DURATION each)"
    AWS_SECRET_ACCESS_KEY="$sk" "$LOADGEN" run \
        --endpoint "$url" --region "$region" --access-key "$akid" \
        --secret-id "$SECRET_ID" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --warmup "$WARMUP" \
        --server-pid "$pid" --label "$label" --format json >"$WORK/$label.json"
    RESULTS+=("$WORK/$label.json")
}

# create_secret URL REGION ACCESS_KEY SECRET_KEY
create_secret() {
    AWS_ACCESS_KEY_ID="$3" AWS_SECRET_ACCESS_KEY="$4" \
        "$VENV/bin/python" "$BENCH/create_secret.py" "$1" "$2" "$SECRET_ID" "$SECRET_VALUE"
}

ensure_venv() {
    local stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum "$BENCH/requirements.txt" | cut -d' ' -f1)"
    if [[ -x $VENV/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    log "setting up $VENV from bench/requirements.txt"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$BENCH/requirements.txt"
    echo "$want" >"$stamp"
}

command -v curl >/dev/null || die "curl is required"
if [[ $CLIENT == wrk ]] && ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    if [[ $(id -u) == 0 ]]; then
        apt-get install -y -q wrk >&2 || { apt-get update -q >&2 && apt-get install -y -q wrk >&2; } ||
            die "could not install wrk"
    else
        die "wrk is missing: install it with 'sudo apt-get install wrk'"
    fi
fi
[[ $CLIENT == loadgen ]] || [[ -x /usr/bin/time ]] || die "/usr/bin/time is required (Debian package 'time')"

# --- build ------------------------------------------------------------------------------
cd "$ROOT"
if [[ $SKIP_COFFER == 1 ]]; then
    log "building coffer-loadgen (release)"
    cargo build --release --quiet -p coffer-loadgen
else
    log "building coffer-loadgen and coffer (release)"
    cargo build --release --quiet -p coffer-loadgen -p coffer ||
        die "release build failed (use --skip-coffer to benchmark only trivial and moto)"
fi

if [[ $SKIP_MOTO == 0 || $SKIP_COFFER == 0 ]]; then
    ensure_venv
fi

RESULTS=()
# How busy the CPUs are right now (other builds, tests...), sampled over one second.
cpu_busy_pct() {
    local a b
    a="$(head -1 /proc/stat)"
    sleep 1
    b="$(head -1 /proc/stat)"
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); total = 0
        for (i = 2; i <= n; i++) total += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        busy = (total > 0) ? 100 * (total - idle) / total : 0
        printf "%.0f", busy
    }'
}
BUSY_BEFORE="$(cpu_busy_pct)"
if ((BUSY_BEFORE > 10)); then
    log "warning: the CPUs are ${BUSY_BEFORE}% busy before the run: something else is running, numbers will be noisy"
fi

# --- trivial: the machine's ceiling -----------------------------------------------------------
start_bg "$WORK/trivial.log" "$LOADGEN" trivial --listen 127.0.0.1:0
url="$(wait_listen_url "$BG_PID" "$WORK/trivial.log" 10)"
bench_target trivial "$BG_PID" "$url" us-east-1 AKIDBENCHTRIVIAL unused
stop_pid "$BG_PID"

# --- moto_server ----------------------------------------------------------------------------
if [[ $SKIP_MOTO == 0 ]]; then
    port="$(free_port)"
    start_bg "$WORK/moto.log" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
    url="http://127.0.0.1:$port"
    wait_http_ok "$BG_PID" "$url/moto-api/" "$WORK/moto.log" 60
    # moto accepts any credentials.
    create_secret "$url" "$MOTO_REGION" testing testing
    bench_target moto "$BG_PID" "$url" "$MOTO_REGION" testing testing
    stop_pid "$BG_PID"
fi

# --- Coffer ------------------------------------------------------------------------------
if [[ $SKIP_COFFER == 0 ]]; then
    [[ -x $COFFER ]] || die "$COFFER not found after build"
    data="$WORK/coffer-data"
    start_bg "$WORK/coffer.log" "$COFFER" serve --listen 127.0.0.1:0 --data-dir "$data"
    url="$(wait_listen_url "$BG_PID" "$WORK/coffer.log" 60)"
    wait_http_ok "$BG_PID" "$url/health" "$WORK/coffer.log" 60
    creds="$data/aws/credentials"
    for _ in $(seq 50); do [[ -s $creds ]] && break; sleep 0.1; done
    [[ -s $creds ]] || die "Coffer did not write $creds"
    akid="$(ini_value "$creds" default aws_access_key_id)"
    sk="$(ini_value "$creds" default aws_secret_access_key)"
    region="$(ini_value "$data/aws/config" default region 2>/dev/null || echo us-east-1)"
    create_secret "$url" "$region" "$akid" "$sk"
    bench_target coffer "$BG_PID" "$url" "$region" "$akid" "$sk"
    stop_pid "$BG_PID"
fi

# --- report ------------------------------------------------------------------------------
{
    echo "## GetSecretValue benchmark"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), generator and server share these cores"
    echo "- CPU busy before the run (1 s sample, all cores): ${BUSY_BEFORE}%"
    if [[ $CLIENT == wrk ]]; then
        echo "- load: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), 2 threads, one pre-signed GetSecretValue replayed over keep-alive HTTP/1.1, warm-up $WARMUP + $DURATION per connection count, 100-byte secret"
    else
        echo "- load: closed loop, 1 generator thread, keep-alive HTTP/1.1, warm-up $WARMUP + $DURATION per concurrency, 100-byte secret"
    fi
    if [[ $SKIP_MOTO == 0 ]]; then
        echo "- moto: $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))') (moto_server, werkzeug threaded dev server)"
    fi
    if [[ $SKIP_COFFER == 1 ]]; then echo "- coffer: skipped (--skip-coffer)"; fi
    echo
    "$LOADGEN" report "${RESULTS[@]}" --ratio coffer/trivial --ratio coffer/moto --ratio moto/trivial
} >"$WORK/report.md"

cat "$WORK/report.md"
if [[ -n $OUT ]]; then
    cp "$WORK/report.md" "$OUT"
    log "report written to $OUT"
fi
