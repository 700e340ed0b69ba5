"""Shared helpers of the end-to-end suite: starting a Coffer server, making boto3 clients,
signing raw HTTP requests, and asserting AWS-shaped errors."""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import boto3
import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
COFFER_BIN = os.environ.get("COFFER_BIN") or str(REPO_ROOT / "target" / "debug" / "coffer")
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1"]
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = REGIONS[0]
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

# AWS texts used by many tests (spec §2.1, §4).
NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_FOR_DELETION = (
    "You can't perform this operation on the secret because it was marked for deletion."
)
MISSING_TOKEN = "You must provide a ClientRequestToken value. We recommend a UUID-type value."
INVALID_NAME = (
    "Invalid name. Must be a valid name containing alphanumeric characters, "
    "or any of the following: -/_+=.@!"
)

# No retries: a 5xx must show up as a failure, not be hidden by the SDK's retry loop.
CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 1},
    connect_timeout=5,
    read_timeout=30,
)


def unique(prefix: str = "t") -> str:
    """A secret name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def token() -> str:
    """A fresh ClientRequestToken (UUIDv4, 36 characters, as the SDKs make them)."""
    return str(uuid.uuid4())


def midnight_utc_today() -> dt.datetime:
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def arn_pattern(name: str, region: str = DEFAULT_REGION, account: str = ACCOUNT_ID) -> str:
    """spec §2: arn:aws:secretsmanager:<region>:<account>:secret:<Name>-<6 random chars>."""
    return rf"^arn:aws:secretsmanager:{region}:{account}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}$"


def body_keys(response: dict) -> set[str]:
    """The members of a boto3 response, without botocore's ResponseMetadata."""
    return set(response) - {"ResponseMetadata"}


@dataclass
class CofferServer:
    """One running `coffer serve`, as its stdout described it."""

    process: subprocess.Popen
    data_dir: Path
    endpoint: str
    credentials_file: Path
    config_file: Path
    stderr_path: Path
    startup_seconds: float
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def profile_env(self) -> dict[str, str]:
        """The two variables the server tells the user to export."""
        return {
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_file),
            "AWS_CONFIG_FILE": str(self.config_file),
        }

    @property
    def access_key(self) -> tuple[str, str]:
        parser = configparser.ConfigParser()
        parser.read(self.credentials_file)
        section = parser["default"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]

    def client(self, region: str = DEFAULT_REGION, access_key: tuple[str, str] | None = None, verify=None):
        """boto3 Secrets Manager client; `verify` is the CA file of an HTTPS server."""
        key_id, secret = access_key or self.access_key
        return boto3.client(
            "secretsmanager",
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=CLIENT_CONFIG,
            verify=verify,
        )

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, as a user or a service manager stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"coffer did not stop within {timeout}s of SIGTERM")
        return self.process.returncode

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")


# The usual "HTTPS only" resource policy (issue 14).
DENY_PLAINTEXT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "secretsmanager:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


def write_config(path: Path, **keys) -> Path:
    """A `coffer serve --config` file with these top-level keys."""
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()))
    return path


def start_server(
    data_dir: Path,
    *,
    regions: list[str] | None = REGIONS,
    account_id: str | None = ACCOUNT_ID,
    timeout: float = 20,
    extra_args: list[str] | None = None,
    open_files: tuple[int, int] | None = None,
) -> CofferServer:
    """Starts `coffer serve` on 127.0.0.1:0 and waits for its `listening on` line."""
    if not (os.path.isfile(COFFER_BIN) and os.access(COFFER_BIN, os.X_OK)):
        pytest.fail(
            f"no Coffer binary at {COFFER_BIN}: build it with 'cargo build -p coffer' or set COFFER_BIN",
            pytrace=False,
        )
    args = [COFFER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)]
    if regions is not None:
        args += ["--regions", ",".join(regions)]
    if account_id is not None:
        args += ["--account-id", account_id]
    args += extra_args or []
    stderr_path = data_dir.parent / f"{data_dir.name}.stderr.log"
    stderr = open(stderr_path, "ab")
    started = time.monotonic()
    def limit_open_files():
        # (soft, hard) RLIMIT_NOFILE for the server, as a service manager would set it.
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=limit_open_files if open_files else None,
    )
    stderr.close()
    lines: list[str] = []
    ready = threading.Event()

    def pump():
        # Keeps draining stdout for the life of the process so it can never block on a pipe.
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("listening on "):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or not any(l.startswith("listening on ") for l in lines):
        process.kill()
        process.wait()
        pytest.fail(
            f"coffer did not print 'listening on' within {timeout}s; exit code {process.returncode}; "
            f"stdout {lines!r}; stderr:\n{stderr_path.read_text(errors='replace')}",
            pytrace=False,
        )
    startup = time.monotonic() - started
    endpoint = next(l for l in lines if l.startswith("listening on ")).split(" ", 2)[2]
    export = next((l for l in lines if l.startswith("export ")), None)
    assert export is not None, f"coffer printed no export line: {lines!r}"
    env = dict(part.split("=", 1) for part in export.split()[1:])
    return CofferServer(
        process=process,
        data_dir=data_dir,
        endpoint=endpoint,
        credentials_file=Path(env["AWS_SHARED_CREDENTIALS_FILE"]),
        config_file=Path(env["AWS_CONFIG_FILE"]),
        stderr_path=stderr_path,
        startup_seconds=startup,
        stdout_lines=lines,
    )


def expect_error(call, code: str, message: str | None, status: int = 400, **params) -> dict:
    """Calls a boto3 method that must fail with AWS's code, exact message and HTTP status."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, response["Error"]
    if message is not None:
        assert response["Error"]["Message"] == message, response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response["ResponseMetadata"]
    return response


def expect_error_matching(call, code: str, pattern: str, status: int = 400, **params) -> dict:
    """Like expect_error, for messages whose exact text depends on the moment (a regex)."""
    response = expect_error(call, code, None, status, **params)
    assert re.fullmatch(pattern, response["Error"]["Message"], re.S), response["Error"]["Message"]
    return response


# ---------------------------------------------------------------------------------------------
# Raw signed HTTP: what a client without an SDK sends.


def sign(
    server: CofferServer,
    body: bytes,
    headers: dict[str, str],
    *,
    region: str = DEFAULT_REGION,
    service: str = "secretsmanager",
    access_key: tuple[str, str] | None = None,
    when: dt.datetime | None = None,
) -> dict[str, str]:
    """Signs a POST / with botocore's SigV4 signer; returns the headers to send."""
    key_id, secret = access_key or server.access_key
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=dict(headers))
    signer = botocore.auth.SigV4Auth(Credentials(key_id, secret), service, region)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
            signer.add_auth(request)
    return dict(request.headers.items())


def raw_post(
    server: CofferServer,
    operation: str | None,
    body: bytes | str | dict | list | None,
    *,
    signed: bool = True,
    extra_headers: dict[str, str] | None = None,
    **sign_args,
) -> requests.Response:
    """POSTs a body to / with X-Amz-Target `secretsmanager.<operation>` (None: no target)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    headers = {"Content-Type": JSON_CONTENT_TYPE}
    if operation is not None:
        headers["X-Amz-Target"] = f"secretsmanager.{operation}"
    headers.update(extra_headers or {})
    if signed:
        headers = sign(server, body, headers, **sign_args)
    return requests.post(server.endpoint + "/", data=body, headers=headers, timeout=30)


def assert_raw_error(response: requests.Response, code: str, message: str | None, status: int = 400) -> dict:
    """An AWS JSON 1.1 error (spec §1.3): status, `__type`, `Message`, x-amzn-ErrorType."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("Content-Type") == JSON_CONTENT_TYPE, response.headers
    assert response.headers.get("x-amzn-RequestId"), response.headers
    assert response.headers.get("x-amzn-ErrorType") == code, response.headers
    body = response.json()
    assert body.get("__type") == code, body
    if message is not None:
        assert body.get("Message") == message, body
    return body


def service_client(server, service: str, key: tuple[str, str] | None = None, region: str = DEFAULT_REGION):
    """A boto3 client of any service Coffer serves (`secretsmanager`, `kms`, `iam`, `sts`),
    signed with `key` (default: the admin's)."""
    key_id, secret = key or server.access_key
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=server.endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=CLIENT_CONFIG,
    )


def console_sign_in(server, key_id: str, secret: str, session: requests.Session | None = None) -> requests.Response:
    """Signs in to the web console as a browser does (the form, then its POST); 303 on success,
    with the session cookie in `session` (a new one when not given)."""
    import html

    session = session or requests.Session()
    page = session.get(server.endpoint + "/console/sign-in", timeout=30)
    assert page.status_code == 200, page.text
    token = html.unescape(re.search(r'name="token" value="([^"]*)"', page.text).group(1))
    return session.post(
        server.endpoint + "/console/sign-in",
        data={"token": token, "access_key_id": key_id, "secret_access_key": secret, "next": "/console"},
        headers={"Origin": server.endpoint},
        allow_redirects=False,
        timeout=30,
    )


def sign_in_accepted(response: requests.Response) -> bool:
    """A console sign-in that started a session: 303 to the page asked for, with the cookie."""
    return (
        response.status_code == 303
        and not response.headers.get("Location", "").startswith("/console/sign-in")
        and "coffer_console=" in response.headers.get("Set-Cookie", "")
    )


def sign_in_refused(response: requests.Response) -> bool:
    """A console sign-in refused for its key (Post/Redirect/Get: 303 back to the sign-in form,
    saying why), with no session started."""
    return (
        response.status_code == 303
        and response.headers.get("Location", "").startswith("/console/sign-in?")
        and "refused=key" in response.headers.get("Location", "")
        and "coffer_console=" not in response.headers.get("Set-Cookie", "")
    )


def create_account(server) -> tuple[str, tuple[str, str]]:
    """A new account of the server's deployment (`coffer account create`, while it runs):
    its id and its admin's access key."""
    done = subprocess.run(
        [COFFER_BIN, "account", "create", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    fields = dict(line.split(" = ", 1) for line in lines[1:])
    return lines[0].strip("[]"), (fields["aws_access_key_id"], fields["aws_secret_access_key"])
