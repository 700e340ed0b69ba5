#!/usr/bin/env bash
# The Python end-to-end suite: boto3 and the AWS CLI against a real Coffer server.
# Makes (or refreshes) a pinned venv at tests/python/.venv, then runs pytest with the venv's
# `aws` first on PATH. Fails loudly when anything is missing; never skips.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
stamp="$venv/.requirements.sha256"

die() { echo "tests/python/run.sh: $*" >&2; exit 1; }

python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python not found: install Python 3 (with the venv module)"

export COFFER_BIN="${COFFER_BIN:-$root/target/debug/coffer}"
[ -x "$COFFER_BIN" ] || die "no Coffer binary at $COFFER_BIN: run 'cargo build -p coffer' first, or set COFFER_BIN"

# The stamp covers the pins and the interpreter the venv was made from.
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ ! -x "$venv/bin/python" ] || [ "$want" != "$have" ]; then
    echo "tests/python/run.sh: creating $venv from requirements.txt" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "cannot create a venv with $python (on Debian: apt-get install python3-venv)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet -r "$here/requirements.txt" \
        || die "pip install -r requirements.txt failed"
    echo "$want" > "$stamp"
fi

# The AWS Secrets Manager Agent (a Rust binary on crates.io), pinned, for test_agent.py: built once
# into target/tools (a few minutes on a fresh machine; `cargo install` does nothing when that
# version is already there).
agent_version=2.1.0
if [ -z "${COFFER_AGENT_BIN:-}" ]; then
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) to build the Secrets Manager Agent"
    cargo install --quiet --locked --debug --root "$root/target/tools" --target-dir "$root/target/tools-build" \
        "aws_secretsmanager_agent@$agent_version" \
        || die "cannot build aws_secretsmanager_agent $agent_version from crates.io"
    export COFFER_AGENT_BIN="$root/target/tools/bin/aws_secretsmanager_agent"
fi
[ -x "$COFFER_AGENT_BIN" ] || die "no Secrets Manager Agent at $COFFER_AGENT_BIN"

export PATH="$venv/bin:$PATH"
# The suite drives the AWS CLI exactly as a user types it: it must be this venv's.
[ "$(command -v aws)" = "$venv/bin/aws" ] || die "the venv has no 'aws' command"
aws --version >/dev/null 2>&1 || die "'aws --version' fails in the venv"

cd "$root"
exec "$venv/bin/python" -m pytest tests/python -q "$@"
