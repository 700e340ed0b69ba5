"""Rotation through a configured `http` rotator (spec §6, issue 5 §3): a rotation function
written like AWS's Lambda template (rotation_function.py), served unchanged by the handler the
docs show (docs/examples/lambda_http_handler.py), called by Coffer once per step, and calling
back into Coffer with boto3 and the admin's credentials."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import HTTPServer
from pathlib import Path

import boto3
import pytest

import rotation_function
from helpers import ACCOUNT_ID, COFFER_BIN, REPO_ROOT, CofferServer, expect_error, unique

# The docs' handler imports the user's `lambda_function`: ours is rotation_function.
sys.modules["lambda_function"] = rotation_function
sys.path.insert(0, str(REPO_ROOT / "docs" / "examples"))
lambda_http_handler = importlib.import_module("lambda_http_handler")

PRIMARY, REPLICA = "us-east-1", "us-west-2"
FUNCTION = "my-rotation-fn"
# The same function run as the docs tell users to: the handler script next to lambda_function.py.
SCRIPT_FUNCTION = "docs-example-fn"
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
EVENT_FIELDS = {"Step", "SecretId", "ClientRequestToken", "RotationToken"}
UNFINISHED = "A previous rotation isn't complete. That rotation will be reattempted."
REPLICA_READ_ONLY = "Operation not permitted on a replica secret. Call must be made in primary secret's region."


def function_arn(region: str = PRIMARY, function: str = FUNCTION) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_coffer(data_dir: Path, config: Path, timeout: float = 20) -> CofferServer:
    """`coffer serve --config FILE` on 127.0.0.1:0; waits for its `listening on` line."""
    if not (os.path.isfile(COFFER_BIN) and os.access(COFFER_BIN, os.X_OK)):
        pytest.fail(f"no Coffer binary at {COFFER_BIN}: build it with 'cargo build -p coffer'", pytrace=False)
    args = [
        COFFER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
        "--regions", f"{PRIMARY},{REPLICA}", "--account-id", ACCOUNT_ID, "--config", str(config),
    ]
    stderr_path = data_dir.parent / "coffer.stderr.log"
    started = time.monotonic()
    with open(stderr_path, "ab") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def pump():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("listening on "):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or not any(l.startswith("listening on ") for l in lines):
        process.kill()
        process.wait()
        pytest.fail(f"coffer did not start: {lines!r}\n{stderr_path.read_text(errors='replace')}", pytrace=False)
    endpoint = next(l for l in lines if l.startswith("listening on ")).split(" ", 2)[2]
    export = next(l for l in lines if l.startswith("export "))
    env = dict(part.split("=", 1) for part in export.split()[1:])
    return CofferServer(
        process=process,
        data_dir=data_dir,
        endpoint=endpoint,
        credentials_file=Path(env["AWS_SHARED_CREDENTIALS_FILE"]),
        config_file=Path(env["AWS_CONFIG_FILE"]),
        stderr_path=stderr_path,
        startup_seconds=time.monotonic() - started,
        stdout_lines=lines,
    )


@pytest.fixture(scope="module")
def coffer(tmp_path_factory):
    """The rotation function behind the docs' HTTP handler on 127.0.0.1, and a Coffer whose
    config names it `my-rotation-fn`. The function gets what the docs tell users to set:
    SECRETS_MANAGER_ENDPOINT / AWS_ENDPOINT_URL_SECRETS_MANAGER and the admin's credentials.

    Also `docs-example-fn`: the docs' steps followed literally, the handler script run with
    `python3 lambda_http_handler.py HOST PORT` next to a lambda_function.py, in a process of its
    own with the environment the docs give."""
    function = HTTPServer(("127.0.0.1", 0), lambda_http_handler.RotationHandler)
    threading.Thread(target=function.serve_forever, daemon=True).start()
    script_port = free_port()
    root = tmp_path_factory.mktemp("rotation-http")
    config = root / "coffer.toml"
    config.write_text(
        f'[[rotators]]\nname = "{FUNCTION}"\nkind = "http"\nurl = "http://127.0.0.1:{function.server_port}/"\n\n'
        f'[[rotators]]\nname = "{SCRIPT_FUNCTION}"\nkind = "http"\nurl = "http://127.0.0.1:{script_port}/"\n'
    )
    server = start_coffer(root / "data", config)
    key_id, secret = server.access_key
    wanted = {
        "SECRETS_MANAGER_ENDPOINT": server.endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": server.endpoint,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    touched = wanted.keys() | {"AWS_REGION", "AWS_DEFAULT_REGION"}
    saved = {k: os.environ.get(k) for k in touched}
    os.environ.update(wanted)
    boto3.DEFAULT_SESSION = None

    workdir = root / "function"
    workdir.mkdir()
    shutil.copy(REPO_ROOT / "docs" / "examples" / "lambda_http_handler.py", workdir)
    shutil.copy(Path(rotation_function.__file__), workdir / "lambda_function.py")
    script_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    script_env.update(server.profile_env)  # the `export` line `coffer serve` prints
    script_env["SECRETS_MANAGER_ENDPOINT"] = server.endpoint
    script_env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = server.endpoint
    script_log = open(root / "function.log", "wb")
    script = subprocess.Popen(
        [sys.executable, "lambda_http_handler.py", "127.0.0.1", str(script_port)],
        cwd=workdir, env=script_env, stdout=script_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    script.log_path = root / "function.log"
    script.port = script_port
    server.script = script
    try:
        yield server
    finally:
        script.terminate()
        script.wait(timeout=10)
        script_log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        boto3.DEFAULT_SESSION = None
        function.shutdown()
        function.server_close()
        server.stop()


@pytest.fixture(scope="module")
def east(coffer):
    return coffer.client(PRIMARY)


@pytest.fixture(scope="module")
def west(coffer):
    return coffer.client(REPLICA)


def wait_for(check, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {check.__doc__}")
        time.sleep(interval)


def events_for(arn: str) -> list[dict]:
    with rotation_function.LOCK:
        return [e for e in rotation_function.EVENTS if e["SecretId"] == arn]


def rotated(client, secret_id, token):
    """DescribeSecret once `token` holds AWSCURRENT and no version holds AWSPENDING."""

    def check():
        """the rotation finished"""
        d = client.describe_secret(SecretId=secret_id)
        stages = d.get("VersionIdsToStages", {})
        pending = any("AWSPENDING" in s for s in stages.values())
        if "AWSCURRENT" in stages.get(token, []) and not pending and "LastRotatedDate" in d:
            return d
        return None

    return wait_for(check)


def test_rotate_secret_runs_the_four_steps_of_the_http_function(coffer, east):
    name = unique("rot-http")
    created = east.create_secret(Name=name, SecretString="the first password")
    arn, v1 = created["ARN"], created["VersionId"]
    started = time.monotonic()
    out = east.rotate_secret(
        SecretId=name,
        RotationLambdaARN=function_arn(),
        RotationRules={"AutomaticallyAfterDays": 30},
    )
    token = out["VersionId"]
    assert out["ARN"] == arn

    d = rotated(east, name, token)
    elapsed = time.monotonic() - started
    events = events_for(arn)
    assert [e["Step"] for e in events] == STEPS, events
    for e in events:
        assert set(e) == EVENT_FIELDS, e
        assert e["SecretId"] == arn
        assert e["ClientRequestToken"] == token
        assert e["RotationToken"]
    assert len({e["RotationToken"] for e in events}) == 1

    assert d["VersionIdsToStages"] == {v1: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert d["RotationEnabled"] is True
    assert d["RotationRules"] == {"AutomaticallyAfterDays": 30}
    assert d["RotationLambdaARN"] == function_arn()
    assert "LastRotatedDate" in d and "NextRotationDate" in d
    assert d["NextRotationDate"] > d["LastRotatedDate"]
    current = east.get_secret_value(SecretId=name)
    assert current["VersionId"] == token
    assert current["SecretString"] != "the first password"
    assert len(current["SecretString"]) == 32  # GetRandomPassword's default length
    assert not set(current["SecretString"]) & set("/@\"'\\")  # the template's exclusions
    assert east.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "the first password"
    print(f"rotation through the http function took {elapsed:.2f}s")

    # A second RotateSecret with nothing but the id reuses the stored function and rules.
    again = east.rotate_secret(SecretId=name)
    rotated(east, name, again["VersionId"])
    assert [e["Step"] for e in events_for(arn)] == STEPS * 2

    # CancelRotateSecret: rotation disabled, rules and function kept.
    cancelled = east.cancel_rotate_secret(SecretId=name)
    assert cancelled["ARN"] == arn and "VersionId" not in cancelled
    d = east.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False
    assert d["RotationRules"] == {"AutomaticallyAfterDays": 30}
    assert d["RotationLambdaARN"] == function_arn()
    assert "NextRotationDate" not in d


def test_a_failing_set_secret_keeps_awscurrent_and_a_retry_completes(coffer, east):
    name = unique("rot-fail")
    created = east.create_secret(Name=name, SecretString="still good")
    arn, v1 = created["ARN"], created["VersionId"]
    rotation_function.FAIL_SET_SECRET.add(arn)
    try:
        token = east.rotate_secret(
            SecretId=name, RotationLambdaARN=function_arn(), RotationRules={"ScheduleExpression": "rate(10 days)"}
        )["VersionId"]

        def failed_once():
            """setSecret was called (and failed)"""
            return any(e["Step"] == "setSecret" for e in events_for(arn))

        wait_for(failed_once)
        # AWSCURRENT untouched and readable; the pending version holds createSecret's value.
        current = east.get_secret_value(SecretId=name)
        assert (current["VersionId"], current["SecretString"]) == (v1, "still good")
        stages = east.describe_secret(SecretId=name)["VersionIdsToStages"]
        assert stages == {v1: ["AWSCURRENT"], token: ["AWSPENDING"]}
        pending = east.get_secret_value(SecretId=name, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
        assert pending != "still good"
        expect_error(east.rotate_secret, "InvalidRequestException", UNFINISHED, SecretId=name)
        assert "LastRotatedDate" not in east.describe_secret(SecretId=name)
    finally:
        rotation_function.FAIL_SET_SECRET.discard(arn)
    healed = time.monotonic()

    # Coffer retries by itself (backoff 2 s, 4 s, ...) with the same token.
    d = rotated(east, name, token)
    retry_took = time.monotonic() - healed
    assert d["VersionIdsToStages"] == {v1: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert east.get_secret_value(SecretId=name)["SecretString"] == pending
    steps = [e["Step"] for e in events_for(arn)]
    assert steps[-4:] == STEPS, steps
    assert steps[:2] == ["createSecret", "setSecret"], steps
    assert {e["ClientRequestToken"] for e in events_for(arn)} == {token}
    assert retry_took < 15, retry_took
    print(f"the retry completed {retry_took:.2f}s after the function was fixed; steps: {steps}")


def test_a_rotated_value_reaches_the_replica_and_a_promoted_replica_rotates_on_its_own(coffer, east, west):
    name = unique("rot-repl")
    created = east.create_secret(Name=name, SecretString="replicated", AddReplicaRegions=[{"Region": REPLICA}])
    arn = created["ARN"]
    replica_arn = arn.replace(f":{PRIMARY}:", f":{REPLICA}:", 1)

    def in_sync():
        """the replica is InSync"""
        status = east.describe_secret(SecretId=name).get("ReplicationStatus", [])
        return any(s["Region"] == REPLICA and s["Status"] == "InSync" for s in status)

    wait_for(in_sync)
    token = east.rotate_secret(
        SecretId=name, RotationLambdaARN=function_arn(), RotationRules={"AutomaticallyAfterDays": 7}
    )["VersionId"]
    rotated(east, name, token)
    done = time.monotonic()
    new_value = east.get_secret_value(SecretId=name)["SecretString"]

    final_stages = {created["VersionId"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}

    def replica_rotated():
        """the replica holds the primary's final stages: the rotation's last step (AWSPENDING
        removed after finishSecret) is a write of its own and replicates on its own, so the replica
        may show the step before it for a moment, as the primary did"""
        got = west.get_secret_value(SecretId=name)
        if got["VersionId"] != token:
            return None
        return got if west.describe_secret(SecretId=name)["VersionIdsToStages"] == final_stages else None

    got = wait_for(replica_rotated, timeout=10)
    lag = time.monotonic() - done
    assert got["SecretString"] == new_value
    assert got["ARN"] == replica_arn
    assert lag < 5, lag
    print(f"the rotated value was readable in {REPLICA} {lag:.2f}s after the primary's rotation finished")

    # A replica refuses rotation; only the primary's function ran.
    expect_error(west.rotate_secret, "InvalidParameterException", REPLICA_READ_ONLY,
                 SecretId=name, RotationLambdaARN=function_arn(REPLICA))
    expect_error(west.rotate_secret, "InvalidParameterException", REPLICA_READ_ONLY, SecretId=name)
    assert events_for(replica_arn) == []

    # Promoted, it rotates on its own with the function in its own Region.
    assert west.stop_replication_to_replica(SecretId=name)["ARN"] == replica_arn
    out = west.rotate_secret(
        SecretId=name, RotationLambdaARN=function_arn(REPLICA), RotationRules={"AutomaticallyAfterDays": 7}
    )
    d = rotated(west, name, out["VersionId"])
    assert d["RotationLambdaARN"] == function_arn(REPLICA)
    assert [e["Step"] for e in events_for(replica_arn)] == STEPS
    assert west.get_secret_value(SecretId=name)["SecretString"] != new_value
    # The former primary is independent now: its value did not change.
    assert east.get_secret_value(SecretId=name)["VersionId"] == token


def test_cancel_rotate_secret_disables_rotation_and_keeps_rules_and_function(coffer, east):
    name = unique("rot-cancel")
    east.create_secret(Name=name, SecretString="v")
    east.rotate_secret(
        SecretId=name,
        RotationLambdaARN=function_arn(),
        RotationRules={"ScheduleExpression": "cron(0 10 * * ? *)", "Duration": "2h"},
        RotateImmediately=False,
    )
    d = east.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and "NextRotationDate" in d
    out = east.cancel_rotate_secret(SecretId=name)
    assert "VersionId" not in out
    d = east.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False
    assert d["RotationRules"] == {"ScheduleExpression": "cron(0 10 * * ? *)", "Duration": "2h"}
    assert d["RotationLambdaARN"] == function_arn()
    assert "NextRotationDate" not in d
    [listed] = east.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
    assert listed["RotationEnabled"] is False and listed["RotationLambdaARN"] == function_arn()


def test_the_docs_handler_script_runs_a_lambda_function_unchanged(coffer, east):
    """docs/rotation.md, followed literally: lambda_function.py + lambda_http_handler.py run with
    `python3 lambda_http_handler.py 127.0.0.1 PORT`, credentials from Coffer's export line."""
    name = unique("rot-docs")
    created = east.create_secret(Name=name, SecretString="before")

    def listening():
        """the handler script listens"""
        assert coffer.script.poll() is None, coffer.script.log_path.read_text(errors="replace")
        try:
            socket.create_connection(("127.0.0.1", coffer.script.port), 0.2).close()
            return True
        except OSError:
            return False

    wait_for(listening, timeout=15)
    token = east.rotate_secret(SecretId=name, RotationLambdaARN=function_arn(function=SCRIPT_FUNCTION))["VersionId"]
    d = rotated(east, name, token)
    assert d["VersionIdsToStages"] == {created["VersionId"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert east.get_secret_value(SecretId=name)["SecretString"] != "before"
    assert events_for(created["ARN"]) == []  # it ran in the script's process, not in ours


def test_the_docs_show_the_tested_handler_verbatim():
    """docs/rotation.md's worked example is docs/examples/lambda_http_handler.py, line for line."""
    docs = (REPO_ROOT / "docs" / "rotation.md").read_text()
    section = docs.split("### Running an existing Lambda rotation function", 1)[1]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert shown == (REPO_ROOT / "docs" / "examples" / "lambda_http_handler.py").read_text()
