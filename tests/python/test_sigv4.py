"""SigV4 authentication (spec §1.6): what boto3 and raw clients see when a request is not
signed, signed badly, signed with an unknown key, for a Region this server does not host,
or at the wrong time."""

import datetime as dt
import re

import pytest
import requests

from helpers import (
    JSON_CONTENT_TYPE,
    assert_raw_error,
    expect_error,
    raw_post,
    sign,
    unique,
)

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
AMZ_DATE = "%Y%m%dT%H%M%SZ"


def parse_amz(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, AMZ_DATE).replace(tzinfo=dt.timezone.utc)


def test_unknown_access_key_gets_unrecognized_client(server):
    client = server.client(access_key=("AKIAUNKNOWNKEY000000", "some-secret"))
    expect_error(
        client.list_secrets,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_wrong_secret_key_gets_invalid_signature(server):
    key_id, _ = server.access_key
    client = server.client(access_key=(key_id, "not-the-secret-key"))
    response = expect_error(client.list_secrets, "InvalidSignatureException", None)
    message = response["Error"]["Message"]
    # AWS's standard sentence; AWS then adds the canonical request and string to sign.
    assert message.split("\n\n")[0] == SIGNATURE_MISMATCH, message


def test_signature_mismatch_explains_the_canonical_request_and_string_to_sign(server):
    key_id, _ = server.access_key
    response = raw_post(server, "ListSecrets", {}, access_key=(key_id, "not-the-secret-key"))
    body = assert_raw_error(response, "InvalidSignatureException", None)
    message = body["Message"]
    assert message.startswith(SIGNATURE_MISMATCH + "\n\nThe Canonical String for this request should have been\n'POST\n/\n\n")
    assert "\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n" in message
    assert "/us-east-1/secretsmanager/aws4_request\n" in message
    assert "not-the-secret-key" not in message
    assert server.access_key[1] not in message


def test_body_changed_after_signing_gets_invalid_signature(server):
    headers = sign(server, b'{"MaxResults": 1}', {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": "secretsmanager.ListSecrets"})
    response = requests.post(server.endpoint + "/", data=b'{"MaxResults": 2}', headers=headers, timeout=10)
    body = assert_raw_error(response, "InvalidSignatureException", None)
    assert body["Message"].startswith(SIGNATURE_MISMATCH)


def test_target_changed_after_signing_gets_invalid_signature(server):
    headers = sign(server, b"{}", {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": "secretsmanager.ListSecrets"})
    headers["X-Amz-Target"] = "secretsmanager.GetRandomPassword"
    response = requests.post(server.endpoint + "/", data=b"{}", headers=headers, timeout=10)
    body = assert_raw_error(response, "InvalidSignatureException", None)
    assert body["Message"].startswith(SIGNATURE_MISMATCH)


def test_request_without_authorization_gets_missing_authentication_token(server):
    # [E] spec §1.6: AWS's text is "Missing Authentication Token".
    assert_raw_error(
        raw_post(server, "ListSecrets", {}, signed=False),
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_malformed_authorization_header_gets_incomplete_signature(server):
    response = requests.post(
        server.endpoint + "/",
        data=b"{}",
        headers={
            "Content-Type": JSON_CONTENT_TYPE,
            "X-Amz-Target": "secretsmanager.ListSecrets",
            "Authorization": "AWS4-HMAC-SHA256 garbage",
        },
        timeout=10,
    )
    # AWS JSON services spell the code with the Exception suffix (sigv4/src/error.rs).
    assert_raw_error(
        response,
        "IncompleteSignatureException",
        "'garbage' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 garbage'.",
    )


def test_region_not_hosted_gets_invalid_signature(server):
    client = server.client(region="ap-south-1")
    expect_error(
        client.list_secrets,
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'ap-south-1'. ",
    )


def test_made_up_region_gets_invalid_signature(server):
    assert_raw_error(
        raw_post(server, "ListSecrets", {}, region="moon-base-1"),
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'moon-base-1'. ",
    )


def test_credential_scoped_to_another_service_gets_invalid_signature(server):
    # [E] text from other AWS JSON services (sigv4/src/error.rs).
    assert_raw_error(
        raw_post(server, "ListSecrets", {}, service="kms"),
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'secretsmanager'. ",
    )


def test_signature_older_than_five_minutes_has_expired(server):
    signed_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).replace(microsecond=0)
    response = raw_post(server, "ListSecrets", {}, when=signed_at)
    body = assert_raw_error(response, "InvalidSignatureException", None)
    match = re.fullmatch(
        r"Signature expired: (\d{8}T\d{6}Z) is now earlier than (\d{8}T\d{6}Z) \((\d{8}T\d{6}Z) - 5 min\.\)",
        body["Message"],
    )
    assert match, body["Message"]
    request_time, limit, now = (parse_amz(g) for g in match.groups())
    assert request_time == signed_at
    assert limit == now - dt.timedelta(minutes=5)
    assert abs(now - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)


def test_signature_more_than_five_minutes_ahead_is_not_yet_current(server):
    signed_at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)).replace(microsecond=0)
    response = raw_post(server, "ListSecrets", {}, when=signed_at)
    body = assert_raw_error(response, "InvalidSignatureException", None)
    match = re.fullmatch(
        r"Signature not yet current: (\d{8}T\d{6}Z) is still later than (\d{8}T\d{6}Z) \((\d{8}T\d{6}Z) \+ 5 min\.\)",
        body["Message"],
    )
    assert match, body["Message"]
    request_time, limit, now = (parse_amz(g) for g in match.groups())
    assert request_time == signed_at
    assert limit == now + dt.timedelta(minutes=5)


@pytest.mark.parametrize("minutes", [-4, 4])
def test_clock_skew_within_five_minutes_is_accepted(server, minutes):
    signed_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
    response = raw_post(server, "ListSecrets", {}, when=signed_at)
    assert response.status_code == 200, response.text


def test_scope_date_must_match_x_amz_date(server):
    body = b"{}"
    headers = sign(server, body, {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": "secretsmanager.ListSecrets"})
    # Move the credential scope to another day while keeping X-Amz-Date.
    amz_date = headers["X-Amz-Date"]
    other_day = (parse_amz(amz_date) - dt.timedelta(days=1)).strftime("%Y%m%d")
    headers["Authorization"] = headers["Authorization"].replace(f"/{amz_date[:8]}/", f"/{other_day}/")
    response = requests.post(server.endpoint + "/", data=body, headers=headers, timeout=10)
    body = assert_raw_error(response, "InvalidSignatureException", None)
    assert body["Message"].startswith("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP")


def test_boto3_configured_only_by_the_printed_environment_works(server, monkeypatch):
    import boto3

    for key in list(__import__("os").environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in server.profile_env.items():
        monkeypatch.setenv(key, value)
    session = boto3.session.Session()
    client = session.client("secretsmanager")
    assert client.meta.region_name == "us-east-1"
    name = unique()
    client.create_secret(Name=name, SecretString="from env")
    assert client.get_secret_value(SecretId=name)["SecretString"] == "from env"


def test_the_same_key_works_in_every_hosted_region(server):
    for region in ("us-east-1", "us-east-2", "us-west-2", "eu-west-1"):
        assert raw_post(server, "ListSecrets", {"MaxResults": 1}, region=region).status_code == 200
