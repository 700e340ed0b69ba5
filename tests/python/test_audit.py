"""The audit log (docs/audit.md): every call on POST / is one CloudTrail-shaped JSON line in
<data_dir>/audit.log, written before the response leaves, with no secret value in it; the lines
are hash-chained and `coffer audit verify` names the first altered, removed or reordered record;
if the log cannot be written, the request fails."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers import (
    ACCOUNT_ID,
    CLIENT_CONFIG,
    COFFER_BIN,
    DEFAULT_REGION,
    raw_post,
    start_server,
    unique,
)

REDACTED = "HIDDEN_DUE_TO_SECURITY_REASONS"
CLOUDTRAIL_FIELDS = {
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "readOnly",
    "eventType",
}


def records(server) -> list[dict]:
    path = server.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_request_id(server, request_id: str) -> dict:
    found = [r for r in records(server) if r["requestID"] == request_id]
    assert len(found) == 1, (request_id, found)
    return found[0]


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COFFER_BIN, "audit", "verify", str(path)], capture_output=True, text=True, timeout=60
    )


def test_calls_are_recorded_with_cloudtrail_fields_and_no_secret_value(fresh_server, aws_cli, tmp_path):
    sm = fresh_server.client()
    name = unique("audit")
    first = f"first-{unique()}"
    binary = os.urandom(24)
    created = sm.create_secret(Name=name, SecretString=first)
    got = sm.get_secret_value(SecretId=name)
    assert got["SecretString"] == first
    put = sm.put_secret_value(SecretId=name, SecretBinary=binary)
    password = sm.get_random_password(PasswordLength=40)["RandomPassword"]
    batch = sm.batch_get_secret_value(SecretIdList=[name])
    assert batch["SecretValues"][0]["SecretBinary"] == binary
    # The AWS CLI, as a user types it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(fresh_server.profile_env, HOME=str(tmp_path))
    cli_value = f"cli-{unique()}"
    done = subprocess.run(
        [aws_cli, "secretsmanager", "put-secret-value", "--secret-id", name, "--secret-string", cli_value],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr

    key_id, _ = fresh_server.access_key
    rec = by_request_id(fresh_server, created["ResponseMetadata"]["RequestId"])
    assert CLOUDTRAIL_FIELDS <= set(rec), rec
    assert rec["eventSource"] == "secretsmanager.amazonaws.com"
    assert rec["eventName"] == "CreateSecret"
    assert rec["eventType"] == "AwsApiCall"
    assert rec["awsRegion"] == DEFAULT_REGION
    assert rec["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in rec["userAgent"], rec["userAgent"]
    assert rec["readOnly"] is False
    assert rec["recipientAccountId"] == ACCOUNT_ID
    assert rec["eventTime"].endswith("Z") and len(rec["eventTime"]) == 20
    ident = rec["userIdentity"]
    assert ident["accountId"] == ACCOUNT_ID
    assert ident["accessKeyId"] == key_id
    assert ident["arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:")
    assert ident["type"] in ("Root", "IAMUser")
    assert rec["requestParameters"]["Name"] == name
    assert rec["requestParameters"]["SecretString"] == REDACTED
    # A change logs its response elements (without secrets); a read does not.
    assert rec["responseElements"]["ARN"] == created["ARN"]
    assert "errorCode" not in rec

    rec = by_request_id(fresh_server, got["ResponseMetadata"]["RequestId"])
    assert rec["eventName"] == "GetSecretValue"
    assert rec["readOnly"] is True
    assert rec["requestParameters"] == {"SecretId": name}
    assert rec["responseElements"] is None

    rec = by_request_id(fresh_server, put["ResponseMetadata"]["RequestId"])
    assert rec["requestParameters"]["SecretBinary"] == REDACTED
    assert rec["responseElements"]["VersionId"] == put["VersionId"]

    cli_records = [r for r in records(fresh_server) if "aws-cli" in r["userAgent"]]
    assert [r["eventName"] for r in cli_records] == ["PutSecretValue"], cli_records
    assert cli_records[0]["requestParameters"]["SecretString"] == REDACTED

    names = [r["eventName"] for r in records(fresh_server)]
    assert names == [
        "CreateSecret", "GetSecretValue", "PutSecretValue", "GetRandomPassword",
        "BatchGetSecretValue", "PutSecretValue",
    ], names
    raw = (fresh_server.data_dir / "audit.log").read_bytes()
    for value in [first, cli_value, password]:
        assert value.encode() not in raw, value
    assert base64.b64encode(binary) not in raw
    assert binary not in raw
    # Nor the signing key.
    assert fresh_server.access_key[1].encode() not in raw


def test_refused_and_unsigned_calls_are_recorded_with_their_error(fresh_server):
    key_id, secret_key = fresh_server.access_key
    unsigned = raw_post(fresh_server, "ListSecrets", {}, signed=False)
    assert unsigned.status_code == 400
    bad_signature = raw_post(fresh_server, "ListSecrets", {}, access_key=(key_id, "wrong" + secret_key[5:]))
    assert bad_signature.status_code == 400
    unknown_key = raw_post(fresh_server, "ListSecrets", {}, access_key=("AKIAUNKNOWNKEY000000", secret_key))
    assert unknown_key.status_code == 400
    unknown_op = raw_post(fresh_server, "StealEverything", {"SecretId": "x", "SecretString": "leak-me-not"})
    missing = fresh_server.client().get_secret_value
    with pytest.raises(ClientError) as info:
        missing(SecretId=unique("absent"))
    not_found_id = info.value.response["ResponseMetadata"]["RequestId"]

    rec = by_request_id(fresh_server, unsigned.headers["x-amzn-RequestId"])
    assert rec["errorCode"] == unsigned.json()["__type"]
    assert rec["errorMessage"] == unsigned.json()["Message"]
    assert rec["userIdentity"] == {"type": "Unknown"}
    assert rec["eventName"] == "ListSecrets"
    assert rec["eventSource"] == "secretsmanager.amazonaws.com"
    assert rec["sourceIPAddress"] == "127.0.0.1"

    rec = by_request_id(fresh_server, bad_signature.headers["x-amzn-RequestId"])
    assert rec["errorCode"] == bad_signature.json()["__type"]
    # A bad signature proves nobody: only the key id it named, no principal.
    assert rec["userIdentity"] == {"type": "Unknown", "accessKeyId": key_id}

    rec = by_request_id(fresh_server, unknown_key.headers["x-amzn-RequestId"])
    assert rec["errorCode"] == "UnrecognizedClientException"
    assert rec["userIdentity"]["accessKeyId"] == "AKIAUNKNOWNKEY000000"

    rec = by_request_id(fresh_server, unknown_op.headers["x-amzn-RequestId"])
    assert rec["eventName"] == "StealEverything"
    assert rec["errorCode"] == unknown_op.json()["__type"]
    assert rec["requestParameters"]["SecretString"] == REDACTED
    assert rec["userIdentity"]["accessKeyId"] == key_id

    rec = by_request_id(fresh_server, not_found_id)
    assert rec["errorCode"] == "ResourceNotFoundException"
    assert rec["userIdentity"]["accessKeyId"] == key_id
    assert b"leak-me-not" not in (fresh_server.data_dir / "audit.log").read_bytes()


def test_verify_accepts_the_real_log_and_names_the_first_tampered_record(fresh_server, tmp_path):
    sm = fresh_server.client()
    for i in range(3):
        name = unique("chain")
        sm.create_secret(Name=name, SecretString=f"v{i}")
        sm.describe_secret(SecretId=name)
    log = fresh_server.data_dir / "audit.log"
    done = verify(log)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact, 6 records" in done.stdout, done.stdout
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) == 6

    def check(tampered: list[str], line: int, reason: str):
        copy = tmp_path / f"copy-{unique()}.log"
        copy.write_text("".join(tampered))
        done = verify(copy)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"line {line}: {reason}" in done.stdout, done.stdout

    edited = list(lines)
    edited[2] = edited[2].replace('"readOnly":false', '"readOnly":true')
    assert edited[2] != lines[2]
    check(edited, 3, "altered")

    edited = list(lines)
    edited[3] = edited[3].replace("127.0.0.1", "10.0.0.1")
    check(edited, 4, "altered")

    deleted = lines[:2] + lines[3:]
    check(deleted, 3, "removed")
    check(lines[1:], 1, "removed")

    reordered = [lines[0], lines[2], lines[1]] + lines[3:]
    check(reordered, 2, "reordered")
    # The log itself was not touched by any of this.
    assert verify(log).returncode == 0


def test_a_restart_continues_the_chain(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        srv.client().create_secret(Name=unique("before"), SecretString="x")
    finally:
        assert srv.stop() == 0
    before = (data / "audit.log").read_text().splitlines()
    srv = start_server(data)
    try:
        srv.client().list_secrets()
    finally:
        assert srv.stop() == 0
    after = (data / "audit.log").read_text().splitlines()
    assert after[: len(before)] == before
    assert json.loads(after[len(before)])["previousHash"] == json.loads(before[-1])["hash"]
    done = verify(data / "audit.log")
    assert done.returncode == 0, done.stdout
    assert f"intact, {len(after)} records" in done.stdout


def test_a_log_that_cannot_be_written_fails_the_request(tmp_path, aws_cli):
    config = tmp_path / "node.toml"
    config.write_text('audit_log = "/dev/full"\n')
    srv = start_server(tmp_path / "data", extra_args=["--config", str(config)])
    try:
        sm = srv.client()
        with pytest.raises(ClientError) as info:
            sm.create_secret(Name=unique("unaudited"), SecretString="x")
        err = info.value.response
        assert err["Error"]["Code"] == "InternalServiceError"
        assert "audit log" in err["Error"]["Message"]
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 500
        # Every later request is refused before it runs, through the CLI too.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(srv.profile_env, HOME=str(tmp_path), AWS_MAX_ATTEMPTS="1")
        done = subprocess.run(
            [aws_cli, "secretsmanager", "list-secrets"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode != 0
        assert "InternalServiceError" in done.stderr, done.stderr
        # The server said why (without the record's contents).
        assert "cannot write the audit log /dev/full" in srv.stderr_text()
    finally:
        srv.stop()


def test_an_audit_log_that_cannot_be_opened_stops_the_start(tmp_path):
    config = tmp_path / "node.toml"
    (tmp_path / "a-directory").mkdir()
    config.write_text(f'audit_log = "{tmp_path / "a-directory"}"\n')
    done = subprocess.run(
        [COFFER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
         "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "listening on" not in done.stdout
    assert "audit log" in done.stderr, done.stderr


def test_kms_iam_and_sts_calls_and_policy_denials_are_recorded_without_secrets(fresh_server):
    def client(service, key=None):
        key_id, secret = key or fresh_server.access_key
        return boto3.client(
            service, region_name=DEFAULT_REGION, endpoint_url=fresh_server.endpoint,
            aws_access_key_id=key_id, aws_secret_access_key=secret, config=CLIENT_CONFIG,
        )

    kms, iam, sts = client("kms"), client("iam"), client("sts")
    key_id = kms.create_key(Description="audit")["KeyMetadata"]["KeyId"]
    plaintext = f"kms-plaintext-{unique()}".encode()
    encrypted = kms.encrypt(KeyId=key_id, Plaintext=plaintext)
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    user = unique("auditor")
    iam.create_user(UserName=user)
    access_key = iam.create_access_key(UserName=user)["AccessKey"]
    sts.get_caller_identity()
    # The new user has no policy: its read is denied, and the denial is recorded under its name.
    name = unique("guarded")
    fresh_server.client().create_secret(Name=name, SecretString="guarded-value")
    denied_client = fresh_server.client(access_key=(access_key["AccessKeyId"], access_key["SecretAccessKey"]))
    with pytest.raises(ClientError) as info:
        denied_client.get_secret_value(SecretId=name)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"

    rec = by_request_id(fresh_server, encrypted["ResponseMetadata"]["RequestId"])
    assert rec["eventSource"] == "kms.amazonaws.com"
    assert rec["eventName"] == "Encrypt"
    assert rec["requestParameters"]["Plaintext"] == REDACTED
    assert rec["requestParameters"]["KeyId"] == key_id
    rec = by_request_id(fresh_server, data_key["ResponseMetadata"]["RequestId"])
    assert rec["eventName"] == "GenerateDataKey" and rec["readOnly"] is True

    recs = records(fresh_server)
    iam_recs = [r for r in recs if r["eventSource"] == "iam.amazonaws.com"]
    assert [r["eventName"] for r in iam_recs] == ["CreateUser", "CreateAccessKey"], iam_recs
    assert iam_recs[1]["requestParameters"] == {"UserName": user}
    assert iam_recs[1]["readOnly"] is False
    sts_recs = [r for r in recs if r["eventSource"] == "sts.amazonaws.com"]
    assert [r["eventName"] for r in sts_recs] == ["GetCallerIdentity"]

    denied = [r for r in recs if r["eventName"] == "GetSecretValue" and r.get("errorCode")]
    assert len(denied) == 1, denied
    assert denied[0]["errorCode"] == "AccessDeniedException"
    assert denied[0]["userIdentity"]["userName"] == user
    assert denied[0]["userIdentity"]["type"] == "IAMUser"
    assert denied[0]["userIdentity"]["accessKeyId"] == access_key["AccessKeyId"]
    assert user in denied[0]["errorMessage"]

    raw = (fresh_server.data_dir / "audit.log").read_bytes()
    for secret in [
        plaintext,
        base64.b64encode(plaintext),
        base64.b64encode(data_key["Plaintext"]),
        access_key["SecretAccessKey"].encode(),
        b"guarded-value",
    ]:
        assert secret not in raw, secret
    assert verify(fresh_server.data_dir / "audit.log").returncode == 0
