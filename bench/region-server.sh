# Sourced by bench/scale.sh, bench/reads.sh, bench/put.sh and bench/versions.sh: a Coffer server on a
# Region's data directory. The caller sets COFFER (the binary), DATA, CONFIG (an array of extra
# `serve` arguments), WORK (a scratch directory) and die().

rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
ini_value() { awk -F' *= *' -v s="[$2]" -v k="$3" '$0 == s { on = 1; next } /^\[/ { on = 0 } on && $1 == k { print $2; exit }' "$1"; }

# build_release: builds the release coffer-loadgen, and coffer unless COFFER names a binary
# already (then COFFER is the one built); needs ROOT and TARGET_DIR.
build_release() {
    local packages=(-p coffer-loadgen)
    [[ -n $COFFER ]] || packages+=(-p coffer)
    (cd "$ROOT" && cargo build --release --quiet "${packages[@]}") || die "release build failed"
    COFFER="${COFFER:-$TARGET_DIR/release/coffer}"
}

# start_server: starts Coffer on $DATA, sets SERVER_PID, URL and STARTUP_MS (to /health = 200).
start_server() {
    local t0 log="$WORK/coffer.log" code=""
    t0=$(date +%s%N)
    "$COFFER" serve --listen 127.0.0.1:0 --data-dir "$DATA" "${CONFIG[@]}" >"$log" 2>&1 &
    SERVER_PID=$!
    URL=""
    for _ in $(seq 6000); do
        URL="$(grep -o -m1 'listening on http://127\.0\.0\.1:[0-9]\+' "$log" 2>/dev/null | sed 's/^listening on //' || true)"
        if [[ -n $URL ]]; then
            code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/health" || true)"
            [[ $code == 200 ]] && break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "coffer exited"; }
        sleep 0.01
    done
    [[ $code == 200 ]] || die "coffer did not become healthy"
    STARTUP_MS=$(ms_since "$t0")
    local creds="$DATA/aws/credentials"
    for _ in $(seq 50); do [[ -s $creds ]] && break; sleep 0.1; done
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
    AWS_ACCESS_KEY_ID="$(ini_value "$creds" default aws_access_key_id)"
    AWS_SECRET_ACCESS_KEY="$(ini_value "$creds" default aws_secret_access_key)"
    AWS_REGION="$(ini_value "$DATA/aws/config" default region)"
    AWS_REGION="${AWS_REGION:-us-east-1}"
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
