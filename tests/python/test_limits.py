"""AWS's limits as AWS counts them (issue 14 §8): secret values in UTF-8 bytes, 50 tags per
secret; the data directory's SQLite files private to their owner; a request signed over
`UNSIGNED-PAYLOAD` refused outside S3; a re-activated access key signs in to the console at
once."""

import re
import stat

import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from helpers import (
    DEFAULT_REGION,
    assert_raw_error,
    console_sign_in,
    expect_error,
    service_client,
    sign_in_accepted,
    sign_in_refused,
    unique,
)

TOO_LONG = "1 validation error detected: Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536"
# 65,536 characters would pass the model's bound; as UTF-8 they are 131,072 bytes.
TWO_BYTE_VALUE = "é" * 50_000


# --- Secret values: 65,536 bytes ------------------------------------------------------------


def test_a_value_within_65536_characters_but_over_65536_bytes_is_refused_on_create(sm):
    name = unique()
    expect_error(sm.create_secret, "ValidationException", TOO_LONG, Name=name, SecretString=TWO_BYTE_VALUE)
    expect_error(sm.describe_secret, "ResourceNotFoundException", None, SecretId=name)


def test_a_value_over_65536_bytes_is_refused_on_put_and_update(sm, secret, name):
    expect_error(sm.put_secret_value, "ValidationException", TOO_LONG, SecretId=name, SecretString=TWO_BYTE_VALUE)
    expect_error(sm.update_secret, "ValidationException", TOO_LONG, SecretId=name, SecretString=TWO_BYTE_VALUE)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first value"


def test_a_value_of_exactly_65536_bytes_is_accepted(sm, name):
    # 32,768 two-byte characters: 65,536 bytes.
    value = "é" * 32_768
    sm.create_secret(Name=name, SecretString=value)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    expect_error(sm.put_secret_value, "ValidationException", TOO_LONG, SecretId=name, SecretString=value + "x")


# --- 50 tags per secret ---------------------------------------------------------------------


def tags(n, prefix="k"):
    return [{"Key": f"{prefix}{i}", "Value": str(i)} for i in range(n)]


def too_many(n):
    return f"A secret can have at most 50 tags; this request would leave it with {n}."


def test_create_secret_takes_50_tags_and_refuses_51(sm):
    name = unique()
    sm.create_secret(Name=name, SecretString="v", Tags=tags(50))
    assert len(sm.describe_secret(SecretId=name)["Tags"]) == 50
    other = unique()
    expect_error(
        sm.create_secret, "InvalidParameterException", too_many(51), Name=other, SecretString="v", Tags=tags(51)
    )
    expect_error(sm.describe_secret, "ResourceNotFoundException", None, SecretId=other)


def test_tag_resource_refuses_what_would_take_a_secret_past_50_tags(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=tags(40))
    expect_error(sm.tag_resource, "InvalidParameterException", too_many(51), SecretId=name, Tags=tags(11, "new"))
    assert len(sm.describe_secret(SecretId=name)["Tags"]) == 40
    # Existing keys only get new values: still 50.
    sm.tag_resource(SecretId=name, Tags=tags(30) + tags(10, "new"))
    assert len(sm.describe_secret(SecretId=name)["Tags"]) == 50


def test_the_aws_cli_is_told_about_the_tag_limit(cli, name):
    args = [f"Key=k{i},Value=v" for i in range(51)]
    done = cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v", "--tags", *args, check=False)
    assert done.returncode != 0, done
    assert "InvalidParameterException" in done.stderr and too_many(51) in done.stderr, done.stderr


# --- Data files 0600 ------------------------------------------------------------------------


def test_the_sqlite_files_are_readable_by_their_owner_only(fresh_server):
    sm = fresh_server.client()
    sm.create_secret(Name=unique(), SecretString="v")
    files = [p for p in fresh_server.data_dir.rglob("*") if re.search(r"\.db(-wal|-shm)?$", p.name)]
    names = {p.name for p in files}
    assert {"iam.db", f"{DEFAULT_REGION}.db", f"{DEFAULT_REGION}.db-wal", f"{DEFAULT_REGION}.db-shm"} <= names, names
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path} is {oct(mode)}"


# --- UNSIGNED-PAYLOAD -----------------------------------------------------------------------


class UnsignedPayloadAuth(botocore.auth.SigV4Auth):
    """SigV4 as S3 clients sign streaming bodies: `UNSIGNED-PAYLOAD` in place of the hash."""

    def _should_sha256_sign_payload(self, request):
        return False

    def _modify_request_before_signing(self, request):
        super()._modify_request_before_signing(request)
        request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"


def unsigned_post(server, service, signed_body, sent_body, headers, region=DEFAULT_REGION):
    key_id, secret = server.access_key
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=signed_body, headers=dict(headers))
    UnsignedPayloadAuth(Credentials(key_id, secret), service, region).add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    return requests.post(server.endpoint + "/", data=sent_body, headers=dict(request.headers.items()), timeout=30)


def test_a_swapped_body_under_an_unsigned_payload_signature_is_refused(server, sm):
    signed = f'{{"Name": "{unique()}", "SecretString": "what the client meant"}}'.encode()
    swapped_name = unique()
    swapped = f'{{"Name": "{swapped_name}", "SecretString": "what an attacker sent"}}'.encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.CreateSecret"}
    response = unsigned_post(server, "secretsmanager", signed, swapped, headers)
    body = assert_raw_error(response, "InvalidSignatureException", None)
    assert body["Message"].startswith("The request signature we calculated does not match"), body
    expect_error(sm.describe_secret, "ResourceNotFoundException", None, SecretId=swapped_name)


@pytest.mark.parametrize(
    "service,region,headers,body",
    [
        (
            "secretsmanager",
            DEFAULT_REGION,
            {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.ListSecrets"},
            b"{}",
        ),
        ("kms", DEFAULT_REGION, {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}, b"{}"),
        (
            "iam",
            "us-east-1",
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            b"Action=ListUsers&Version=2010-05-08",
        ),
    ],
)
def test_unsigned_payload_is_refused_by_every_service(server, service, region, headers, body):
    response = unsigned_post(server, service, body, body, headers, region=region)
    assert response.status_code in (400, 403), (response.status_code, response.text)
    assert "SignatureDoesNotMatch" in response.text or "InvalidSignatureException" in response.text, response.text


# --- Console: a re-activated key signs in at once -------------------------------------------


def test_a_reactivated_access_key_signs_in_to_the_console_at_once(server):
    iam = service_client(server, "iam", region="us-east-1")
    user = unique("console-user")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    key_id, secret = key["AccessKeyId"], key["SecretAccessKey"]
    assert sign_in_accepted(console_sign_in(server, key_id, secret))
    iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
    assert sign_in_refused(console_sign_in(server, key_id, secret))
    iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Active")
    signed_in = console_sign_in(server, key_id, secret)
    assert sign_in_accepted(signed_in), (signed_in.status_code, signed_in.headers)
