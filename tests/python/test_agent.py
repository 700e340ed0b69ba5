"""The AWS Secrets Manager Agent (aws_secretsmanager_agent 2.1.0 from crates.io, built by
tests/python/run.sh into target/tools) against a real Coffer server, unmodified (issue 18 §5).

The agent checks its credentials with STS GetCallerIdentity before it serves anything, so it is
pointed at Coffer with `AWS_ENDPOINT_URL` (which covers STS as well as Secrets Manager), as
docs/clients.md tells users to."""

from __future__ import annotations

import json
import os
import secrets as random_tokens
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from helpers import DEFAULT_REGION, unique


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, port: int, token: str, process: subprocess.Popen):
        self.port, self.token, self.process = port, token, process

    def get(self, path: str, token: str | None = "default") -> tuple[int, str]:
        headers = {}
        if token is not None:
            headers["X-Aws-Parameters-Secrets-Token"] = self.token if token == "default" else token
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


@pytest.fixture(scope="module")
def agent(server, tmp_path_factory):
    binary = os.environ.get("COFFER_AGENT_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("COFFER_AGENT_BIN is not set to the agent's binary: run the suite with tests/python/run.sh",
                    pytrace=False)
    home = tmp_path_factory.mktemp("agent")
    port = free_port()
    config = home / "agent.toml"
    # A short TTL so the test sees the cache expire.
    config.write_text(
        f'http_port = "{port}"\nttl_seconds = "2"\nlog_to_file = false\nlog_level = "info"\n'
        f'region = "{DEFAULT_REGION}"\n'
    )
    key_id, secret = server.access_key
    token = random_tokens.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": DEFAULT_REGION,
        "AWS_TOKEN": token,
        "HOME": str(home),
    }
    log = open(home / "agent.log", "w")
    process = subprocess.Popen([binary, "--config", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT,
                               cwd=home)
    running = Agent(port, token, process)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"the agent exited ({process.returncode}): {(home / 'agent.log').read_text()[-3000:]}")
        try:
            if running.get("/ping") == (200, "healthy"):
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, (home / "agent.log").read_text()[-3000:]
        time.sleep(0.2)
    yield running
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_the_agent_serves_a_secret_from_coffer_and_caches_it(sm, agent):
    name = unique("agent")
    created = sm.create_secret(Name=name, SecretString=json.dumps({"user": "app", "password": "one"}))

    status, body = agent.get(f"/secretsmanager/get?secretId={name}")
    assert status == 200, body
    got = json.loads(body)
    assert got["Name"] == name
    assert got["ARN"] == created["ARN"]
    assert got["VersionId"] == created["VersionId"]
    assert got["VersionStages"] == ["AWSCURRENT"]
    assert json.loads(got["SecretString"]) == {"user": "app", "password": "one"}

    # The path style gives the same answer.
    status, body = agent.get(f"/v1/{name}")
    assert status == 200, body
    assert json.loads(body)["VersionId"] == created["VersionId"]

    # A new value: the cached one until the TTL, the new one with refreshNow or after the TTL.
    put = sm.put_secret_value(SecretId=name, SecretString=json.dumps({"user": "app", "password": "two"}))
    status, body = agent.get(f"/secretsmanager/get?secretId={name}")
    assert json.loads(json.loads(body)["SecretString"])["password"] == "one"
    status, body = agent.get(f"/secretsmanager/get?secretId={name}&refreshNow=true")
    assert status == 200, body
    assert json.loads(body)["VersionId"] == put["VersionId"]
    time.sleep(2.5)
    status, body = agent.get(f"/secretsmanager/get?secretId={name}")
    assert json.loads(json.loads(body)["SecretString"])["password"] == "two"

    # Another stage, by label and by version id.
    status, body = agent.get(f"/secretsmanager/get?secretId={name}&versionStage=AWSPREVIOUS")
    assert status == 200, body
    assert json.loads(body)["VersionId"] == created["VersionId"]
    status, body = agent.get(f"/secretsmanager/get?secretId={name}&versionId={created['VersionId']}")
    assert json.loads(json.loads(body)["SecretString"])["password"] == "one"


def test_the_agent_passes_coffers_errors_through_and_keeps_its_own_token_check(sm, agent):
    status, body = agent.get(f"/secretsmanager/get?secretId={unique('agent-missing')}")
    assert status == 400, body
    assert json.loads(body)["__type"] == "ResourceNotFoundException"
    assert "can't find the specified secret" in json.loads(body)["message"]

    name = unique("agent-token")
    sm.create_secret(Name=name, SecretString="guarded")
    status, _ = agent.get(f"/secretsmanager/get?secretId={name}", token=None)
    assert status == 403
    status, _ = agent.get(f"/secretsmanager/get?secretId={name}", token="wrong")
    assert status == 403
    # A binary secret comes back base64-encoded, as the agent documents.
    binary = unique("agent-bin")
    sm.create_secret(Name=binary, SecretBinary=b"\x00\xffkey")
    status, body = agent.get(f"/secretsmanager/get?secretId={binary}")
    assert status == 200, body
    assert json.loads(body)["SecretBinary"] == "AP9rZXk="
