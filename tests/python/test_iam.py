"""Users, access keys and inline policies through the IAM Query API subset, STS
GetCallerIdentity, and `coffer account create`: boto3's `iam` and `sts` clients and the AWS CLI
against a real server, as `aws iam ... --endpoint-url URL` sends them."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from unittest.mock import ANY

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from helpers import (
    ACCOUNT_ID,
    CLIENT_CONFIG,
    COFFER_BIN,
    DEFAULT_REGION,
    expect_error,
    sign,
    unique,
)

IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/admin"
INVALID_TOKEN = "The security token included in the request is invalid."


def all_user_names(client) -> list[str]:
    """Every user's name, all pages (the shared server holds more than one page of users)."""
    return [u["UserName"] for page in client.get_paginator("list_users").paginate() for u in page["Users"]]


def client(server, service: str, key: tuple[str, str] | None = None, region: str = "us-east-1"):
    key_id, secret = key or server.access_key
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=server.endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=CLIENT_CONFIG,
    )


@pytest.fixture(scope="module")
def iam(server):
    return client(server, "iam")


@pytest.fixture(scope="module")
def sts(server):
    return client(server, "sts")


def user_name() -> str:
    return unique("u")


def new_user(iam, policies: dict[str, dict] | None = None) -> tuple[str, tuple[str, str]]:
    """A user with one access key (and the given inline policies); returns (name, key)."""
    name = user_name()
    iam.create_user(UserName=name)
    for policy_name, document in (policies or {}).items():
        iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, (key["AccessKeyId"], key["SecretAccessKey"])


def allow(action: str, resource: str = "*") -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }


def denied_message(name: str, action: str, resource: str) -> str:
    return (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/{name} is not authorized to perform: {action} "
        f"on resource: {resource} because no identity-based policy allows the {action} action"
    )


# --------------------------------------------------------------------------------------------
# STS


def test_get_caller_identity_names_the_admin(sts, iam):
    me = sts.get_caller_identity()
    assert me["Account"] == ACCOUNT_ID
    assert me["Arn"] == ADMIN_ARN
    assert me["UserId"] == iam.get_user()["User"]["UserId"]
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", me["UserId"])


def test_get_caller_identity_is_accepted_in_any_region(server):
    # IAM and STS are global: a node serving other Regions still answers.
    for region in ("us-east-1", "ap-southeast-2", "eu-central-1"):
        assert client(server, "sts", region=region).get_caller_identity()["Arn"] == ADMIN_ARN


def test_a_user_without_permissions_still_gets_its_identity(server, iam):
    name, key = new_user(iam)
    me = client(server, "sts", key).get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
    assert me["Account"] == ACCOUNT_ID
    assert me["UserId"] == iam.get_user(UserName=name)["User"]["UserId"]


def test_an_unknown_key_is_an_invalid_client_token(server):
    sts = client(server, "sts", ("AKIAUNKNOWN000000000", "x" * 40))
    expect_error(sts.get_caller_identity, "InvalidClientTokenId", INVALID_TOKEN, 403)
    iam = client(server, "iam", ("AKIAUNKNOWN000000000", "x" * 40))
    expect_error(iam.list_users, "InvalidClientTokenId", INVALID_TOKEN, 403)


def test_a_wrong_secret_is_signature_does_not_match(server):
    key_id, _ = server.access_key
    sts = client(server, "sts", (key_id, "wrong" * 8))
    response = expect_error(sts.get_caller_identity, "SignatureDoesNotMatch", None, 403)
    assert "signature we calculated does not match" in response["Error"]["Message"]


# --------------------------------------------------------------------------------------------
# Users


def test_user_lifecycle(iam):
    name = user_name()
    created = iam.create_user(UserName=name)["User"]
    assert created["UserName"] == name
    assert created["Path"] == "/"
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", created["UserId"])
    assert iam.get_user(UserName=name)["User"] == created

    names = all_user_names(iam)
    assert "admin" in names and name in names

    # User names are unique regardless of case, as in IAM.
    expect_error(
        iam.create_user,
        "EntityAlreadyExists",
        f"User with name {name.upper()} already exists.",
        409,
        UserName=name.upper(),
    )
    iam.delete_user(UserName=name)
    expect_error(
        iam.get_user, "NoSuchEntity", f"The user with name {name} cannot be found.", 404, UserName=name
    )
    expect_error(
        iam.delete_user, "NoSuchEntity", f"The user with name {name} cannot be found.", 404, UserName=name
    )
    assert name not in all_user_names(iam)


def test_get_user_without_a_name_is_the_caller(iam):
    me = iam.get_user()["User"]
    assert me["UserName"] == "admin" and me["Arn"] == ADMIN_ARN


def test_bad_user_names_are_validation_errors(iam):
    expect_error(
        iam.create_user,
        "ValidationError",
        "1 validation error detected: Value 'a b' at 'userName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        400,
        UserName="a b",
    )
    expect_error(
        iam.create_user,
        "ValidationError",
        f"1 validation error detected: Value '{'a' * 65}' at 'userName' failed to satisfy constraint: "
        "Member must have length less than or equal to 64",
        400,
        UserName="a" * 65,
    )


def test_delete_user_conflicts_while_it_has_keys_or_policies(iam):
    name, (key_id, _) = new_user(iam, {"p": allow("secretsmanager:ListSecrets")})
    expect_error(
        iam.delete_user,
        "DeleteConflict",
        "Cannot delete entity, must delete access keys first.",
        409,
        UserName=name,
    )
    iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    expect_error(
        iam.delete_user,
        "DeleteConflict",
        "Cannot delete entity, must delete policies first.",
        409,
        UserName=name,
    )
    iam.delete_user_policy(UserName=name, PolicyName="p")
    iam.delete_user(UserName=name)
    expect_error(iam.get_user, "NoSuchEntity", None, 404, UserName=name)


def test_list_users_pages(iam):
    prefix = unique("page").lower()
    names = sorted(f"{prefix}-{i}" for i in range(3))
    for n in names:
        iam.create_user(UserName=n)
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        args = {"MaxItems": 1}
        if marker:
            args["Marker"] = marker
        page = iam.list_users(**args)
        assert len(page["Users"]) == 1
        seen += [u["UserName"] for u in page["Users"]]
        pages += 1
        if not page["IsTruncated"]:
            assert "Marker" not in page
            break
        marker = page["Marker"]
    assert [n for n in seen if n.startswith(prefix)] == names
    assert pages == len(seen) >= 4  # admin and the others of this session too
    # The paginator follows the same markers.
    everything = [
        u["UserName"]
        for p in iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 2})
        for u in p["Users"]
    ]
    assert everything == seen


# --------------------------------------------------------------------------------------------
# Access keys


def test_concurrent_create_access_key_calls_never_exceed_the_quota(iam):
    name = user_name()
    iam.create_user(UserName=name)
    from concurrent.futures import ThreadPoolExecutor

    def create(_):
        try:
            return iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
        except ClientError as e:
            assert e.response["Error"]["Code"] == "LimitExceeded", e.response
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = [k for k in pool.map(create, range(8)) if k]
    assert len(created) == 2
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert sorted(k["AccessKeyId"] for k in listed) == sorted(created)


def test_access_keys_are_shown_once_and_limited_to_two(server, iam):
    name = user_name()
    iam.create_user(UserName=name)
    first = iam.create_access_key(UserName=name)["AccessKey"]
    assert first["UserName"] == name and first["Status"] == "Active"
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", first["AccessKeyId"])
    assert len(first["SecretAccessKey"]) == 40
    second = iam.create_access_key(UserName=name)["AccessKey"]
    expect_error(
        iam.create_access_key,
        "LimitExceeded",
        "Cannot exceed quota for AccessKeysPerUser: 2",
        409,
        UserName=name,
    )
    listed = iam.list_access_keys(UserName=name)
    assert sorted(k["AccessKeyId"] for k in listed["AccessKeyMetadata"]) == sorted(
        [first["AccessKeyId"], second["AccessKeyId"]]
    )
    for k in listed["AccessKeyMetadata"]:
        assert set(k) == {"UserName", "AccessKeyId", "Status", "CreateDate"}  # no secret
    # Never stored or logged in plaintext.
    secret = first["SecretAccessKey"].encode()
    assert secret not in (server.data_dir / "iam.db").read_bytes()
    wal = server.data_dir / "iam.db-wal"
    if wal.exists():
        assert secret not in wal.read_bytes()
    assert first["SecretAccessKey"] not in server.stderr_text()


def test_a_new_key_works_at_once_and_its_own_keys_default_to_the_caller(server, iam):
    name, key = new_user(iam, {"self": allow("iam:*", f"arn:aws:iam::{ACCOUNT_ID}:user/${{aws:username}}")})
    own = client(server, "iam", key)
    # No UserName: the caller's own user.
    assert own.get_user()["User"]["UserName"] == name
    assert [k["AccessKeyId"] for k in own.list_access_keys()["AccessKeyMetadata"]] == [key[0]]
    other = own.create_access_key()["AccessKey"]
    assert other["UserName"] == name
    assert client(server, "sts", (other["AccessKeyId"], other["SecretAccessKey"])).get_caller_identity()[
        "Arn"
    ].endswith(f":user/{name}")
    # Its policy covers its own user only.
    expect_error(
        own.list_users,
        "AccessDenied",
        denied_message(name, "iam:ListUsers", f"arn:aws:iam::{ACCOUNT_ID}:user/"),
        403,
    )


def test_deactivated_key_is_refused_reactivated_accepted_deleted_refused(server, iam):
    name, key = new_user(iam, {"list": allow("secretsmanager:ListSecrets")})
    sm = server.client(DEFAULT_REGION, access_key=key)
    sts = client(server, "sts", key)
    sm.list_secrets()

    iam.update_access_key(UserName=name, AccessKeyId=key[0], Status="Inactive")
    assert iam.list_access_keys(UserName=name)["AccessKeyMetadata"][0]["Status"] == "Inactive"
    # As AWS: an inactive key is refused like an unknown one.
    expect_error(sm.list_secrets, "UnrecognizedClientException", INVALID_TOKEN, 400)
    expect_error(sts.get_caller_identity, "InvalidClientTokenId", INVALID_TOKEN, 403)

    iam.update_access_key(UserName=name, AccessKeyId=key[0], Status="Active")
    sm.list_secrets()
    assert sts.get_caller_identity()["Arn"].endswith(f":user/{name}")

    iam.delete_access_key(UserName=name, AccessKeyId=key[0])
    expect_error(sm.list_secrets, "UnrecognizedClientException", INVALID_TOKEN, 400)
    expect_error(sts.get_caller_identity, "InvalidClientTokenId", INVALID_TOKEN, 403)
    expect_error(
        iam.delete_access_key,
        "NoSuchEntity",
        f"The Access Key with id {key[0]} cannot be found.",
        404,
        UserName=name,
        AccessKeyId=key[0],
    )
    expect_error(
        iam.update_access_key,
        "NoSuchEntity",
        f"The Access Key with id {key[0]} cannot be found.",
        404,
        UserName=name,
        AccessKeyId=key[0],
        Status="Active",
    )


def test_update_access_key_checks_status_and_owner(iam):
    name, key = new_user(iam)
    expect_error(
        iam.update_access_key,
        "ValidationError",
        "1 validation error detected: Value 'Paused' at 'status' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Active, Inactive]",
        400,
        UserName=name,
        AccessKeyId=key[0],
        Status="Paused",
    )
    other = user_name()
    iam.create_user(UserName=other)
    # Another user's key is not found under this user.
    expect_error(
        iam.update_access_key,
        "NoSuchEntity",
        f"The Access Key with id {key[0]} cannot be found.",
        404,
        UserName=other,
        AccessKeyId=key[0],
        Status="Inactive",
    )


# --------------------------------------------------------------------------------------------
# Inline policies


def test_user_policies_put_get_list_delete(iam):
    name = user_name()
    iam.create_user(UserName=name)
    document = allow("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:*:*:secret:a/b-*")
    text = json.dumps(document, indent=2)
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=text)
    iam.put_user_policy(UserName=name, PolicyName="Another", PolicyDocument=json.dumps(allow("iam:GetUser")))
    got = iam.get_user_policy(UserName=name, PolicyName="read")
    assert got["UserName"] == name and got["PolicyName"] == "read"
    assert got["PolicyDocument"] == document  # boto3 URL-decodes and parses it
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["Another", "read"]
    # Put again replaces.
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps(allow("iam:ListUsers")))
    assert iam.get_user_policy(UserName=name, PolicyName="read")["PolicyDocument"] == allow("iam:ListUsers")
    iam.delete_user_policy(UserName=name, PolicyName="read")
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["Another"]
    message = "The user policy with name read cannot be found."
    expect_error(iam.get_user_policy, "NoSuchEntity", message, 404, UserName=name, PolicyName="read")
    expect_error(iam.delete_user_policy, "NoSuchEntity", message, 404, UserName=name, PolicyName="read")
    expect_error(
        iam.put_user_policy,
        "NoSuchEntity",
        "The user with name nobody-here cannot be found.",
        404,
        UserName="nobody-here",
        PolicyName="p",
        PolicyDocument=json.dumps(allow("iam:GetUser")),
    )


def test_get_user_policy_returns_the_document_url_encoded(server):
    """The wire format, as IAM sends it: the document percent-encoded inside the XML."""
    iam = client(server, "iam")
    name = user_name()
    iam.create_user(UserName=name)
    document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}'
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document)
    body = f"Action=GetUserPolicy&Version=2010-05-08&UserName={name}&PolicyName=p".encode()
    headers = sign(
        server,
        body,
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        region="us-east-1",
        service="iam",
    )
    response = requests.post(server.endpoint + "/", data=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)
    assert root.tag == f"{IAM_NS}GetUserPolicyResponse"
    encoded = root.find(f"{IAM_NS}GetUserPolicyResult/{IAM_NS}PolicyDocument").text
    assert encoded.startswith("%7B%22Version%22%3A%222012-10-17%22")
    assert requests.utils.unquote(encoded) == document
    assert root.find(f"{IAM_NS}ResponseMetadata/{IAM_NS}RequestId").text


def test_unknown_action_and_malformed_requests(server):
    def post(body: bytes):
        headers = sign(
            server, body, {"Content-Type": "application/x-www-form-urlencoded"}, service="iam"
        )
        return requests.post(server.endpoint + "/", data=body, headers=headers, timeout=30)

    response = post(b"Action=CreateRole&Version=2010-05-08&RoleName=r")
    assert response.status_code == 400
    root = ET.fromstring(response.text)
    assert root.tag == f"{IAM_NS}ErrorResponse"
    assert root.find(f"{IAM_NS}Error/{IAM_NS}Type").text == "Sender"
    assert root.find(f"{IAM_NS}Error/{IAM_NS}Code").text == "InvalidAction"
    assert root.find(f"{IAM_NS}Error/{IAM_NS}Message").text == (
        "Could not find operation CreateRole for version 2010-05-08"
    )
    assert root.find(f"{IAM_NS}RequestId").text == response.headers["x-amzn-RequestId"]
    response = post(b"Action=CreateUser&Version=2010-05-08")
    assert response.status_code == 400
    assert "<Code>ValidationError</Code>" in response.text
    assert "Value null at &apos;userName&apos;" in response.text or "Value null at 'userName'" in response.text
    response = post(b"Action=GetUser&Version=2010-05-08&UserName=%zz")
    assert response.status_code == 400 and "<Code>MalformedQueryString</Code>" in response.text
    # Unsigned: the Query protocol's error, not a 500.
    response = requests.post(
        server.endpoint + "/",
        data=b"Action=ListUsers&Version=2010-05-08",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 403 and "<Code>MissingAuthenticationToken</Code>" in response.text


def test_malformed_policy_documents_are_refused(iam):
    name = user_name()
    iam.create_user(UserName=name)
    for bad in ["not json", "{}", json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]})]:
        with pytest.raises(ClientError) as info:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=bad)
        error = info.value.response
        assert error["Error"]["Code"] == "MalformedPolicyDocument", error
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["Error"]["Message"]
    # An identity policy names no Principal.
    with_principal = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "iam:GetUser", "Resource": "*"}],
    }
    expect_error(
        iam.put_user_policy,
        "MalformedPolicyDocument",
        None,
        400,
        UserName=name,
        PolicyName="p",
        PolicyDocument=json.dumps(with_principal),
    )
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []


def test_inline_policies_are_limited_to_2048_characters_per_user(iam):
    name = user_name()
    iam.create_user(UserName=name)
    big = allow([f"secretsmanager:GetSecretValue{i}" for i in range(50)])
    big["Statement"][0]["Action"] = [a[: len("secretsmanager:GetSecretValue")] + "*" for a in big["Statement"][0]["Action"]]
    size = len(json.dumps(big).replace(" ", ""))
    assert 1024 < size < 2048
    iam.put_user_policy(UserName=name, PolicyName="one", PolicyDocument=json.dumps(big))
    expect_error(
        iam.put_user_policy,
        "LimitExceeded",
        f"Maximum policy size of 2048 bytes exceeded for user {name}",
        409,
        UserName=name,
        PolicyName="two",
        PolicyDocument=json.dumps(big),
    )
    # Replacing the same policy does not count it twice.
    iam.put_user_policy(UserName=name, PolicyName="one", PolicyDocument=json.dumps(big))


# --------------------------------------------------------------------------------------------
# Authorisation: of IAM itself, and of Secrets Manager by users' policies


def test_a_user_without_iam_permissions_is_denied_in_iams_shape(server, iam):
    name, key = new_user(iam)
    own = client(server, "iam", key)
    target = user_name()
    expect_error(
        own.create_user,
        "AccessDenied",
        denied_message(name, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT_ID}:user/{target}"),
        403,
        UserName=target,
    )
    expect_error(
        own.get_user,
        "AccessDenied",
        denied_message(name, "iam:GetUser", f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"),
        403,
    )
    # Denied before existence: no hint whether the user exists.
    expect_error(own.delete_user, "AccessDenied", None, 403, UserName="admin")
    expect_error(own.delete_user, "AccessDenied", None, 403, UserName="nobody-at-all")
    expect_error(iam.get_user, "NoSuchEntity", None, 404, UserName=target)


def test_a_policy_granting_iam_actions_takes_effect_at_once(server, iam):
    name, key = new_user(iam)
    own = client(server, "iam", key)
    expect_error(own.list_users, "AccessDenied", None, 403)
    iam.put_user_policy(UserName=name, PolicyName="list", PolicyDocument=json.dumps(allow("iam:ListUsers")))
    # All pages: the shared server holds more than one page (100) of users by now.
    assert name in all_user_names(own)
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="deny", PolicyDocument=json.dumps(deny))
    response = expect_error(own.list_users, "AccessDenied", None, 403)
    assert response["Error"]["Message"].endswith("with an explicit deny in an identity-based policy")
    iam.delete_user_policy(UserName=name, PolicyName="deny")
    own.list_users()


def test_get_secret_value_on_one_secret_only(server, iam, sm):
    allowed = sm.create_secret(Name=unique("iam-allowed"), SecretString="yes")
    other = sm.create_secret(Name=unique("iam-other"), SecretString="no")
    name, key = new_user(iam, {"read-one": allow("secretsmanager:GetSecretValue", allowed["ARN"])})
    user_sm = server.client(DEFAULT_REGION, access_key=key)
    assert user_sm.get_secret_value(SecretId=allowed["ARN"])["SecretString"] == "yes"
    assert user_sm.get_secret_value(SecretId=allowed["Name"])["SecretString"] == "yes"
    response = expect_error(user_sm.get_secret_value, "AccessDeniedException", None, 400, SecretId=other["ARN"])
    assert response["Error"]["Message"].startswith(
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/{name} is not authorized to perform: "
        "secretsmanager:GetSecretValue on resource: "
    )
    expect_error(user_sm.put_secret_value, "AccessDeniedException", None, 400, SecretId=allowed["ARN"], SecretString="z")
    # Taking the policy away takes effect with the next request.
    iam.delete_user_policy(UserName=name, PolicyName="read-one")
    expect_error(user_sm.get_secret_value, "AccessDeniedException", None, 400, SecretId=allowed["ARN"])


# --------------------------------------------------------------------------------------------
# The AWS CLI


def test_the_aws_cli_manages_users_and_keys(cli, server):
    name = user_name()
    created = json.loads(cli("iam", "create-user", "--user-name", name).stdout)
    assert created["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
    key = json.loads(cli("iam", "create-access-key", "--user-name", name).stdout)["AccessKey"]
    listed = json.loads(cli("iam", "list-access-keys", "--user-name", name).stdout)
    assert [k["AccessKeyId"] for k in listed["AccessKeyMetadata"]] == [key["AccessKeyId"]]
    cli(
        "iam", "put-user-policy", "--user-name", name, "--policy-name", "p",
        "--policy-document", json.dumps(allow("secretsmanager:ListSecrets")),
    )
    got = json.loads(cli("iam", "get-user-policy", "--user-name", name, "--policy-name", "p").stdout)
    assert got["PolicyDocument"] == allow("secretsmanager:ListSecrets")
    assert json.loads(cli("iam", "list-user-policies", "--user-name", name).stdout)["PolicyNames"] == ["p"]
    assert name in cli("iam", "list-users", "--query", "Users[].UserName", "--output", "text").stdout.split()

    as_user = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    who = json.loads(cli("sts", "get-caller-identity", extra_env=as_user).stdout)
    assert who["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}" and who["Account"] == ACCOUNT_ID

    cli("iam", "update-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"], "--status", "Inactive")
    refused = cli("sts", "get-caller-identity", extra_env=as_user, check=False)
    assert refused.returncode != 0 and "InvalidClientTokenId" in refused.stderr
    cli("iam", "update-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"], "--status", "Active")
    cli("sts", "get-caller-identity", extra_env=as_user)

    conflict = cli("iam", "delete-user", "--user-name", name, check=False)
    assert conflict.returncode != 0 and "DeleteConflict" in conflict.stderr
    cli("iam", "delete-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"])
    cli("iam", "delete-user-policy", "--user-name", name, "--policy-name", "p")
    cli("iam", "delete-user", "--user-name", name)
    missing = cli("iam", "get-user", "--user-name", name, check=False)
    assert missing.returncode != 0 and "NoSuchEntity" in missing.stderr
    admin = json.loads(cli("sts", "get-caller-identity").stdout)
    assert admin["Arn"] == ADMIN_ARN


def test_users_keys_and_policies_survive_a_restart(tmp_path):
    from helpers import start_server

    first = start_server(tmp_path / "data")
    try:
        admin_iam = client(first, "iam")
        sm = first.client(DEFAULT_REGION)
        readable = sm.create_secret(Name="kept/readable", SecretString="r")
        hidden = sm.create_secret(Name="kept/hidden", SecretString="h")
        name, key = new_user(admin_iam, {"read": allow("secretsmanager:GetSecretValue", readable["ARN"])})
        spare = admin_iam.create_access_key(UserName=name)["AccessKey"]
        admin_iam.update_access_key(UserName=name, AccessKeyId=spare["AccessKeyId"], Status="Inactive")
    finally:
        assert first.stop() == 0
    second = start_server(tmp_path / "data")
    try:
        assert second.access_key == first.access_key  # the admin's profile is unchanged
        user_sm = second.client(DEFAULT_REGION, access_key=key)
        assert user_sm.get_secret_value(SecretId=readable["ARN"])["SecretString"] == "r"
        expect_error(user_sm.get_secret_value, "AccessDeniedException", None, 400, SecretId=hidden["ARN"])
        inactive = second.client(DEFAULT_REGION, access_key=(spare["AccessKeyId"], spare["SecretAccessKey"]))
        expect_error(inactive.list_secrets, "UnrecognizedClientException", INVALID_TOKEN, 400)
        assert client(second, "iam").list_user_policies(UserName=name)["PolicyNames"] == ["read"]
    finally:
        second.stop()


# --------------------------------------------------------------------------------------------
# Accounts


def create_account(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COFFER_BIN, "account", "create", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_account_created_while_the_server_runs(server, iam):
    account = "210987654321"
    done = create_account(server, "--account-id", account)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"[{account}]"
    fields = dict(line.split(" = ", 1) for line in lines[1:])
    key = (fields["aws_access_key_id"], fields["aws_secret_access_key"])
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key[0]) and len(key[1]) == 40
    assert key[1] not in done.stderr

    # The running server accepts the new key at once.
    me = client(server, "sts", key).get_caller_identity()
    assert me["Account"] == account
    assert me["Arn"] == f"arn:aws:iam::{account}:user/admin"
    other_iam = client(server, "iam", key)
    assert [u["UserName"] for u in other_iam.list_users()["Users"]] == ["admin"]
    # Users are per account: the same name exists independently in both.
    name = user_name()
    other_iam.create_user(UserName=name)
    expect_error(iam.get_user, "NoSuchEntity", None, 404, UserName=name)
    assert other_iam.get_user(UserName=name)["User"]["Arn"] == f"arn:aws:iam::{account}:user/{name}"
    # Its secrets are its own.
    other_sm = server.client(DEFAULT_REGION, access_key=key)
    secret = other_sm.create_secret(Name=unique("acct2"), SecretString="v")
    assert f":{account}:secret:" in secret["ARN"]
    assert other_sm.get_secret_value(SecretId=secret["Name"])["SecretString"] == "v"

    again = create_account(server, "--account-id", account)
    assert again.returncode == 2 and f"account {account} already exists" in again.stderr
    bad = create_account(server, "--account-id", "12ab")
    assert bad.returncode == 2


def test_account_create_without_an_account_id_picks_one(server):
    done = create_account(server)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    account = lines[0].strip("[]")
    assert re.fullmatch(r"[1-9][0-9]{11}", account)
    fields = dict(line.split(" = ", 1) for line in lines[1:])
    me = client(server, "sts", (fields["aws_access_key_id"], fields["aws_secret_access_key"])).get_caller_identity()
    assert me["Account"] == account


def test_account_create_needs_an_initialised_data_dir(tmp_path):
    done = subprocess.run(
        [COFFER_BIN, "account", "create", "--data-dir", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "start `coffer serve`" in done.stderr


# --------------------------------------------------------------------------------------------
# Several nodes sharing one PostgreSQL IAM store

from test_postgres_nodes import PgNode, copy_keys, nodes, pg_url  # noqa: E402,F401 - fixtures


def test_key_and_policy_changes_reach_the_other_node(tmp_path, pg_url, nodes):
    from cluster import ADMIN_KEY

    store = [f'store = "{pg_url}"']
    a = PgNode(tmp_path, "a", ["us-west-2"], store)
    b = PgNode(tmp_path, "b", ["us-west-2"], store)
    a.start()
    nodes.append(a)
    copy_keys(a, b)
    b.start()
    nodes.append(b)

    def on(node, service: str, key: tuple[str, str]):
        return boto3.client(
            service,
            region_name="us-west-2",
            endpoint_url=node.url,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=CLIENT_CONFIG,
        )

    iam_a = on(a, "iam", ADMIN_KEY)
    secret = on(a, "secretsmanager", ADMIN_KEY).create_secret(Name="shared", SecretString="s")
    name = user_name()
    iam_a.create_user(UserName=name)
    created = iam_a.create_access_key(UserName=name)["AccessKey"]
    key = (created["AccessKeyId"], created["SecretAccessKey"])
    # A key created on node a works on node b at once.
    assert on(b, "sts", key).get_caller_identity()["Arn"].endswith(f":user/{name}")
    sm_b = on(b, "secretsmanager", key)
    expect_error(sm_b.get_secret_value, "AccessDeniedException", None, 400, SecretId=secret["ARN"])

    # A policy put through node a applies on node b within the credential TTL (2 s).
    iam_a.put_user_policy(
        UserName=name,
        PolicyName="read",
        PolicyDocument=json.dumps(allow("secretsmanager:GetSecretValue", secret["ARN"])),
    )

    def eventually(check, what: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return check()
            except (ClientError, AssertionError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what} not within {timeout}s")
                time.sleep(0.2)

    started = time.monotonic()
    eventually(lambda: sm_b.get_secret_value(SecretId=secret["ARN"]), "the policy on node b")
    assert time.monotonic() - started < 4

    # A key deactivated through node a is refused by node b within the TTL, too.
    iam_a.update_access_key(UserName=name, AccessKeyId=key[0], Status="Inactive")

    def refused():
        try:
            sm_b.get_secret_value(SecretId=secret["ARN"])
        except ClientError as e:
            assert e.response["Error"]["Code"] == "UnrecognizedClientException", e.response
            return
        raise AssertionError("still accepted")

    started = time.monotonic()
    eventually(refused, "the deactivation on node b")
    assert time.monotonic() - started < 4
    expect_error(on(a, "sts", key).get_caller_identity, "InvalidClientTokenId", INVALID_TOKEN, 403)


# --------------------------------------------------------------------------------------------
# User tags


def test_create_user_with_tags_returns_and_keeps_them(iam):
    name = user_name()
    tags = [{"Key": "team", "Value": "payments"}, {"Key": "Env", "Value": ""}]
    created = iam.create_user(UserName=name, Tags=tags)["User"]
    expected = [{"Key": "Env", "Value": ""}, {"Key": "team", "Value": "payments"}]
    assert created["Tags"] == expected
    assert iam.get_user(UserName=name)["User"]["Tags"] == expected
    assert iam.list_user_tags(UserName=name) == {"Tags": expected, "IsTruncated": False, "ResponseMetadata": ANY}
    # A user without tags has no Tags member, as on AWS.
    bare = user_name()
    assert "Tags" not in iam.create_user(UserName=bare)["User"]
    assert "Tags" not in iam.get_user(UserName=bare)["User"]
    assert iam.list_user_tags(UserName=bare)["Tags"] == []


def test_tag_user_adds_and_replaces_and_untag_user_removes(iam):
    name = user_name()
    iam.create_user(UserName=name, Tags=[{"Key": "a", "Value": "1"}])
    iam.tag_user(UserName=name, Tags=[{"Key": "b", "Value": "2"}, {"Key": "A", "Value": "changed"}])
    # Keys are unique without regard to case: "A" replaced "a".
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "A", "Value": "changed"}, {"Key": "b", "Value": "2"}]
    iam.untag_user(UserName=name, TagKeys=["a", "not-there"])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "b", "Value": "2"}]
    first = iam.list_user_tags(UserName=name, MaxItems=1)
    assert first["IsTruncated"] is False and len(first["Tags"]) == 1


def test_user_tags_are_checked_as_iam_checks_them(iam):
    name = user_name()
    iam.create_user(UserName=name)
    expect_error(
        iam.tag_user,
        "InvalidInput",
        "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        UserName=name,
        Tags=[{"Key": "k", "Value": "1"}, {"Key": "K", "Value": "2"}],
    )
    expect_error(iam.tag_user, "InvalidInput", None, UserName=name, Tags=[{"Key": "aws:x", "Value": "1"}])
    expect_error(
        iam.tag_user,
        "ValidationError",
        f"1 validation error detected: Value '{'k' * 129}' at 'tags.1.member.key' failed to satisfy constraint: Member must have length less than or equal to 128",
        UserName=name,
        Tags=[{"Key": "k" * 129, "Value": "1"}],
    )
    iam.tag_user(UserName=name, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    expect_error(
        iam.tag_user, "LimitExceeded", "Cannot exceed quota for TagsPerUser: 50", 409, UserName=name, Tags=[{"Key": "one-more", "Value": "v"}]
    )
    expect_error(
        iam.create_user,
        "LimitExceeded",
        "Cannot exceed quota for TagsPerUser: 50",
        409,
        UserName=user_name(),
        Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)],
    )
    missing = user_name()
    for call, params in (
        (iam.tag_user, {"Tags": [{"Key": "k", "Value": "v"}]}),
        (iam.untag_user, {"TagKeys": ["k"]}),
        (iam.list_user_tags, {}),
    ):
        expect_error(call, "NoSuchEntity", f"The user with name {missing} cannot be found.", 404, UserName=missing, **params)


def test_tagging_a_user_needs_iam_tag_user(server, iam):
    name, key = new_user(iam, {"p": allow("iam:CreateUser")})
    own = client(server, "iam", key)
    target = user_name()
    expect_error(own.create_user, "AccessDenied", None, 403, UserName=target, Tags=[{"Key": "k", "Value": "v"}])
    own.create_user(UserName=target)
    expect_error(
        own.tag_user,
        "AccessDenied",
        denied_message(name, "iam:TagUser", f"arn:aws:iam::{ACCOUNT_ID}:user/{target}"),
        403,
        UserName=target,
        Tags=[{"Key": "k", "Value": "v"}],
    )


def test_the_aws_cli_tags_users(cli):
    name = user_name()
    created = json.loads(cli("iam", "create-user", "--user-name", name, "--tags", "Key=team,Value=orders").stdout)["User"]
    assert created["Tags"] == [{"Key": "team", "Value": "orders"}]
    cli("iam", "tag-user", "--user-name", name, "--tags", "Key=env,Value=prod")
    listed = json.loads(cli("iam", "list-user-tags", "--user-name", name).stdout)["Tags"]
    assert listed == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "orders"}]
    cli("iam", "untag-user", "--user-name", name, "--tag-keys", "team")
    assert json.loads(cli("iam", "get-user", "--user-name", name).stdout)["User"]["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_a_users_tags_are_its_principal_tags_in_policies(server, iam):
    team_a, team_b = unique("teama"), unique("teamb")
    admin_sm = server.client()
    for team in (team_a, team_b):
        admin_sm.create_secret(Name=f"{team}/db", SecretString=f"{team} secret")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*",
            }
        ],
    }
    name, key = new_user(iam, {"by-team": policy})
    own = server.client(access_key=key)
    # Untagged, the variable has no value and the statement matches nothing.
    expect_error(own.get_secret_value, "AccessDeniedException", None, SecretId=f"{team_a}/db")
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": team_a}])
    assert own.get_secret_value(SecretId=f"{team_a}/db")["SecretString"] == f"{team_a} secret"
    expect_error(own.get_secret_value, "AccessDeniedException", None, SecretId=f"{team_b}/db")
    # A new tag value takes effect with the next request.
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": team_b}])
    assert own.get_secret_value(SecretId=f"{team_b}/db")["SecretString"] == f"{team_b} secret"
    expect_error(own.get_secret_value, "AccessDeniedException", None, SecretId=f"{team_a}/db")


def test_the_aws_principaltag_condition_key_reads_the_users_real_tags(server, iam):
    secret = unique("ptag")
    server.client().create_secret(Name=secret, SecretString="for the blue team")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}},
            }
        ],
    }
    name, key = new_user(iam, {"blue-only": policy})
    own = server.client(access_key=key)
    expect_error(own.get_secret_value, "AccessDeniedException", None, SecretId=secret)
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "blue"}])
    assert own.get_secret_value(SecretId=secret)["SecretString"] == "for the blue team"
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "red"}])
    expect_error(own.get_secret_value, "AccessDeniedException", None, SecretId=secret)
    iam.untag_user(UserName=name, TagKeys=["team"])
    expect_error(own.get_secret_value, "AccessDeniedException", None, SecretId=secret)
