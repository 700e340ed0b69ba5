"""The allow/deny matrix of issue 4 §6: one table of who may do what, each row one request made
through boto3 or the AWS CLI by a real principal against a real server, and the outcome a user
would see (the value, or the AWS error code).

The world (made once): account A (the server's) with IAM users whose inline policies cover
plain allows, tag / name / source-IP / version-stage conditions, NotAction, explicit denies,
KMS key-policy denials, deactivated and deleted access keys, IAM and KMS permissions; secrets
under the default key, under customer keys (one shared with account B, one whose policy denies
a user, one disabled) and with resource policies; account B (`coffer account create`) with its
admin, a user with an identity policy and one without.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

import pytest
from botocore.exceptions import ClientError

from helpers import ACCOUNT_ID, DEFAULT_REGION, create_account, service_client, unique

SM = "secretsmanager"


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", condition: dict | None = None, **extra) -> dict:
    st = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition:
        st["Condition"] = condition
    return st


def deny(action, resource="*", condition: dict | None = None, **extra) -> dict:
    st = allow(action, resource, condition, **extra)
    st["Effect"] = "Deny"
    return st


@dataclass
class World:
    server: object
    tag: str
    account_b: str
    keys: dict[str, tuple[str, str]]
    secrets: dict[str, str]  # short name -> ARN
    kms_keys: dict[str, str]  # short name -> key id
    blob: bytes  # a ciphertext of the "open" key

    def client(self, principal: str, service: str = SM):
        return service_client(self.server, service, self.keys[principal])

    def name(self, short: str) -> str:
        return f"{self.tag}/{short}"


@pytest.fixture(scope="module")
def world(server) -> World:
    tag = unique("mx")
    admin_sm = server.client(DEFAULT_REGION)
    admin = service_client(server, "iam")
    admin_kms = service_client(server, "kms")

    # Account B, created while the server runs.
    account_b, b_key = create_account(server)
    keys: dict[str, tuple[str, str]] = {"admin": server.access_key, "b-admin": b_key}
    iam_b = service_client(server, "iam", b_key)

    def user(iam, short: str, *statements: dict) -> str:
        name = f"{tag.replace('/', '-')}-{short}"
        iam.create_user(UserName=name)
        if statements:
            iam.put_user_policy(UserName=name, PolicyName="matrix", PolicyDocument=doc(*statements))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys[short] = (key["AccessKeyId"], key["SecretAccessKey"])
        return name

    secret_arn = f"arn:aws:secretsmanager:*:{ACCOUNT_ID}:secret"
    user(admin, "none")
    user(admin, "reader", allow([f"{SM}:GetSecretValue", f"{SM}:DescribeSecret"]))
    user(admin, "blue-tag", allow(f"{SM}:GetSecretValue", condition={"StringEquals": {f"{SM}:ResourceTag/team": "blue"}}))
    user(admin, "aws-tag", allow(f"{SM}:GetSecretValue", condition={"StringEquals": {"aws:ResourceTag/team": "blue"}}))
    user(admin, "prefix", allow(f"{SM}:GetSecretValue", f"{secret_arn}:{tag}/blue-*"))
    user(
        admin,
        "deny-red",
        allow(f"{SM}:*"),
        deny(f"{SM}:GetSecretValue", condition={"StringEquals": {"aws:ResourceTag/team": "red"}}),
    )
    user(admin, "not-action", {"Effect": "Allow", "NotAction": f"{SM}:GetSecretValue", "Resource": "*"})
    user(admin, "ip-local", allow(f"{SM}:GetSecretValue", condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))
    user(admin, "ip-far", allow(f"{SM}:GetSecretValue", condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))
    user(
        admin,
        "not-ip",
        allow(f"{SM}:GetSecretValue"),
        deny("*", condition={"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
    )
    user(admin, "stage", allow(f"{SM}:GetSecretValue", condition={"StringEquals": {f"{SM}:VersionStage": "AWSCURRENT"}}))
    # A customer key whose policy delegates to IAM: reading needs kms:Decrypt in the identity
    # policy too (the default aws/secretsmanager key does not).
    kms_denied = user(admin, "kms-denied", allow([f"{SM}:GetSecretValue", "kms:Decrypt"]))
    user(admin, "kms-reader", allow([f"{SM}:GetSecretValue", "kms:Decrypt"]))
    user(admin, "create-name", allow(f"{SM}:CreateSecret", condition={"StringLike": {f"{SM}:Name": f"{tag}/team-*"}}))
    user(admin, "request-tag", allow([f"{SM}:CreateSecret", f"{SM}:TagResource"], condition={"StringEquals": {"aws:RequestTag/team": "blue"}}))
    user(admin, "kms-user", allow("kms:Encrypt"))
    user(admin, "iam-creator", allow("iam:CreateUser"))
    granted_user = user(admin, "granted")
    user(admin, "inactive", allow(f"{SM}:GetSecretValue"))
    user(admin, "deleted", allow(f"{SM}:GetSecretValue"))
    user(iam_b, "b-reader", allow([f"{SM}:GetSecretValue", "kms:Decrypt"]))
    user(iam_b, "b-sm-only", allow(f"{SM}:GetSecretValue"))
    user(iam_b, "b-none")
    admin.update_access_key(
        UserName=f"{tag.replace('/', '-')}-inactive", AccessKeyId=keys["inactive"][0], Status="Inactive"
    )
    admin.delete_access_key(UserName=f"{tag.replace('/', '-')}-deleted", AccessKeyId=keys["deleted"][0])

    # Keys: one account B may decrypt with, one only account A, one denying a user, one disabled.
    root_a = {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    kms_keys = {}
    kms_keys["open"] = admin_kms.create_key(
        Policy=doc(
            allow("kms:*", Principal=root_a),
            allow(["kms:Decrypt", "kms:DescribeKey"], Principal={"AWS": f"arn:aws:iam::{account_b}:root"}),
        )
    )["KeyMetadata"]["KeyId"]
    kms_keys["closed"] = admin_kms.create_key(Policy=doc(allow("kms:*", Principal=root_a)))["KeyMetadata"]["KeyId"]
    kms_keys["guarded"] = admin_kms.create_key(
        Policy=doc(
            allow("kms:*", Principal=root_a),
            deny("kms:Decrypt", Principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/{kms_denied}"}),
        )
    )["KeyMetadata"]["KeyId"]
    kms_keys["off"] = admin_kms.create_key()["KeyMetadata"]["KeyId"]

    secrets = {}

    def secret(short: str, value: str, **params) -> str:
        arn = admin_sm.create_secret(Name=f"{tag}/{short}", SecretString=value, **params)["ARN"]
        secrets[short] = arn
        return arn

    secret("blue-1", "blue value", Tags=[{"Key": "team", "Value": "blue"}])
    secret("red-1", "red value", Tags=[{"Key": "team", "Value": "red"}])
    secret("scratch", "scratch value")
    secret("shared", "shared value", KmsKeyId=kms_keys["open"])
    secret("shared-default", "default-key value")
    secret("locked", "locked value", KmsKeyId=kms_keys["closed"])
    secret("guarded", "guarded value", KmsKeyId=kms_keys["guarded"])
    secret("dark", "dark value", KmsKeyId=kms_keys["off"])
    secret("granted", "granted value")
    secret("fenced", "fenced value")
    b_root = {"AWS": f"arn:aws:iam::{account_b}:root"}
    for short in ("shared", "shared-default", "locked"):
        admin_sm.put_resource_policy(
            SecretId=secrets[short],
            ResourcePolicy=doc(allow([f"{SM}:GetSecretValue", f"{SM}:DescribeSecret"], Principal=b_root)),
        )
    admin_sm.put_resource_policy(
        SecretId=secrets["granted"],
        ResourcePolicy=doc(
            allow(f"{SM}:GetSecretValue", Principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/{granted_user}"})
        ),
    )
    admin_sm.put_resource_policy(
        SecretId=secrets["fenced"],
        ResourcePolicy=doc(
            deny(
                f"{SM}:GetSecretValue",
                Principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/{tag.replace('/', '-')}-reader"},
            )
        ),
    )
    admin_kms.disable_key(KeyId=kms_keys["off"])
    blob = admin_kms.encrypt(KeyId=kms_keys["open"], Plaintext=b"p")["CiphertextBlob"]
    return World(server, tag, account_b, keys, secrets, kms_keys, blob)


OK = "ok"


@dataclass
class Case:
    id: str
    principal: str
    service: str
    operation: str
    params: Callable[[World], dict]
    expect: str  # OK or an AWS error code
    value: str | None = None  # SecretString (GetSecretValue) the caller must see when allowed


def get(short: str, by_arn: bool = False, **extra) -> Callable[[World], dict]:
    return lambda w: {"SecretId": w.secrets[short] if by_arn else w.name(short), **extra}


def arn(short: str) -> Callable[[World], dict]:
    return lambda w: {"SecretId": w.secrets[short]}


def create(short: str, **extra) -> Callable[[World], dict]:
    return lambda w: {"Name": f"{w.name(short)}-{unique('c').split('-')[-1]}", "SecretString": "v", **extra}


GV, DS, PV = "get_secret_value", "describe_secret", "put_secret_value"
DENIED, UNRECOGNIZED = "AccessDeniedException", "UnrecognizedClientException"
BLUE = [{"Key": "team", "Value": "blue"}]
RED = [{"Key": "team", "Value": "red"}]

CASES = [
    # Default deny: a user without policies.
    Case("none-get", "none", SM, GV, get("blue-1"), DENIED),
    Case("none-describe", "none", SM, DS, get("blue-1"), DENIED),
    Case("none-list", "none", SM, "list_secrets", lambda w: {}, DENIED),
    Case("none-create", "none", SM, "create_secret", create("x"), DENIED),
    Case("none-put", "none", SM, PV, get("scratch", SecretString="x"), DENIED),
    Case("none-random-password", "none", SM, "get_random_password", lambda w: {}, DENIED),
    # Exactly the actions allowed.
    Case("reader-get-blue", "reader", SM, GV, get("blue-1"), OK, "blue value"),
    Case("reader-get-red", "reader", SM, GV, get("red-1"), OK, "red value"),
    Case("reader-describe", "reader", SM, DS, get("blue-1"), OK),
    Case("reader-put", "reader", SM, PV, get("scratch", SecretString="x"), DENIED),
    Case("reader-delete", "reader", SM, "delete_secret", get("scratch"), DENIED),
    Case("reader-list", "reader", SM, "list_secrets", lambda w: {}, DENIED),
    Case("reader-tag", "reader", SM, "tag_resource", get("scratch", Tags=BLUE), DENIED),
    Case("reader-put-policy", "reader", SM, "put_resource_policy", get("scratch", ResourcePolicy=doc(allow("secretsmanager:*", Principal={"AWS": ACCOUNT_ID}))), DENIED),
    # Conditions on tags (both condition keys), names, source IP, version stage.
    Case("sm-tag-blue", "blue-tag", SM, GV, get("blue-1"), OK, "blue value"),
    Case("sm-tag-red", "blue-tag", SM, GV, get("red-1"), DENIED),
    Case("aws-tag-blue", "aws-tag", SM, GV, get("blue-1"), OK, "blue value"),
    Case("aws-tag-red", "aws-tag", SM, GV, get("red-1"), DENIED),
    Case("prefix-blue", "prefix", SM, GV, get("blue-1"), OK, "blue value"),
    Case("prefix-red", "prefix", SM, GV, get("red-1"), DENIED),
    Case("prefix-by-arn", "prefix", SM, GV, arn("blue-1"), OK, "blue value"),
    Case("ip-local-allowed", "ip-local", SM, GV, get("blue-1"), OK, "blue value"),
    Case("ip-far-denied", "ip-far", SM, GV, get("blue-1"), DENIED),
    Case("not-ip-explicit-deny", "not-ip", SM, GV, get("blue-1"), DENIED),
    Case("stage-current", "stage", SM, GV, get("blue-1", VersionStage="AWSCURRENT"), OK, "blue value"),
    Case("stage-previous", "stage", SM, GV, get("blue-1", VersionStage="AWSPREVIOUS"), DENIED),
    Case("create-name-match", "create-name", SM, "create_secret", create("team"), OK),
    Case("create-name-other", "create-name", SM, "create_secret", create("other"), DENIED),
    Case("request-tag-blue", "request-tag", SM, "create_secret", create("rt", Tags=BLUE), OK),
    Case("request-tag-red", "request-tag", SM, "create_secret", create("rt", Tags=RED), DENIED),
    Case("request-tag-none", "request-tag", SM, "create_secret", create("rt"), DENIED),
    # Explicit deny wins; NotAction.
    Case("deny-red-blue", "deny-red", SM, GV, get("blue-1"), OK, "blue value"),
    Case("deny-red-red", "deny-red", SM, GV, get("red-1"), DENIED),
    Case("deny-red-describe-red", "deny-red", SM, DS, get("red-1"), OK),
    Case("deny-red-put", "deny-red", SM, PV, get("scratch", SecretString="from deny-red"), OK),
    Case("not-action-describe", "not-action", SM, DS, get("blue-1"), OK),
    Case("not-action-get", "not-action", SM, GV, get("blue-1"), DENIED),
    # Resource policies: a grant to a user without identity policies, an explicit deny.
    Case("granted-get", "granted", SM, GV, get("granted"), OK, "granted value"),
    Case("granted-describe", "granted", SM, DS, get("granted"), DENIED),
    Case("granted-other-secret", "granted", SM, GV, get("blue-1"), DENIED),
    Case("fenced-reader", "reader", SM, GV, get("fenced"), DENIED),
    Case("fenced-admin", "admin", SM, GV, get("fenced"), OK, "fenced value"),
    # KMS: key policies and key states behind secrets.
    Case("kms-denied-guarded", "kms-denied", SM, GV, get("guarded"), DENIED),
    Case("kms-denied-blue", "kms-denied", SM, GV, get("blue-1"), OK, "blue value"),
    Case("kms-reader-guarded", "kms-reader", SM, GV, get("guarded"), OK, "guarded value"),
    Case("reader-guarded-no-kms-decrypt", "reader", SM, GV, get("guarded"), DENIED),
    Case("reader-disabled-key", "reader", SM, GV, get("dark"), "DecryptionFailure"),
    Case("admin-disabled-key", "admin", SM, GV, get("dark"), "DecryptionFailure"),
    Case("admin-put-disabled-key", "admin", SM, PV, get("dark", SecretString="x"), "EncryptionFailure"),
    Case("admin-locked", "admin", SM, GV, get("locked"), OK, "locked value"),
    # Deactivated and deleted access keys.
    Case("inactive-key", "inactive", SM, GV, get("blue-1"), UNRECOGNIZED),
    Case("deleted-key", "deleted", SM, GV, get("blue-1"), UNRECOGNIZED),
    # Cross-account: account B reads account A's secrets by full ARN.
    Case("b-admin-shared", "b-admin", SM, GV, arn("shared"), OK, "shared value"),
    Case("b-admin-describe-shared", "b-admin", SM, DS, arn("shared"), OK),
    Case("b-admin-put-shared", "b-admin", SM, PV, lambda w: {"SecretId": w.secrets["shared"], "SecretString": "x"}, DENIED),
    Case("b-admin-default-key", "b-admin", SM, GV, arn("shared-default"), "InvalidRequestException"),
    Case("b-admin-key-policy", "b-admin", SM, GV, arn("locked"), DENIED),
    Case("b-admin-no-resource-policy", "b-admin", SM, GV, arn("blue-1"), DENIED),
    Case("b-admin-by-name", "b-admin", SM, GV, get("shared"), "ResourceNotFoundException"),
    Case("b-reader-shared", "b-reader", SM, GV, arn("shared"), OK, "shared value"),
    Case("b-none-shared", "b-none", SM, GV, arn("shared"), DENIED),
    Case("b-sm-only-shared", "b-sm-only", SM, GV, arn("shared"), DENIED),
    Case("b-reader-unshared", "b-reader", SM, GV, arn("red-1"), DENIED),
    # The KMS API itself.
    Case("kms-user-encrypt", "kms-user", "kms", "encrypt", lambda w: {"KeyId": w.kms_keys["open"], "Plaintext": b"p"}, OK),
    Case("kms-user-decrypt", "kms-user", "kms", "decrypt", lambda w: {"CiphertextBlob": w.blob}, DENIED),
    Case("kms-user-create-key", "kms-user", "kms", "create_key", lambda w: {}, DENIED),
    Case("none-kms-list-keys", "none", "kms", "list_keys", lambda w: {}, DENIED),
    Case("b-admin-kms-describe-open", "b-admin", "kms", "describe_key", lambda w: {"KeyId": f"arn:aws:kms:{DEFAULT_REGION}:{ACCOUNT_ID}:key/{w.kms_keys['open']}"}, OK),
    Case("b-admin-kms-describe-closed", "b-admin", "kms", "describe_key", lambda w: {"KeyId": f"arn:aws:kms:{DEFAULT_REGION}:{ACCOUNT_ID}:key/{w.kms_keys['closed']}"}, DENIED),
    # IAM and STS.
    Case("none-iam-create-user", "none", "iam", "create_user", lambda w: {"UserName": unique("mxu")}, DENIED),
    Case("iam-creator-create-user", "iam-creator", "iam", "create_user", lambda w: {"UserName": unique("mxu")}, OK),
    Case("iam-creator-list-users", "iam-creator", "iam", "list_users", lambda w: {}, DENIED),
    Case("none-sts-identity", "none", "sts", "get_caller_identity", lambda w: {}, OK),
    Case("inactive-sts-identity", "inactive", "sts", "get_caller_identity", lambda w: {}, "InvalidClientTokenId"),
]


def error_code(err: ClientError) -> str:
    code = err.response["Error"]["Code"]
    # IAM's Query protocol names access denials without the suffix.
    return "AccessDeniedException" if code == "AccessDenied" else code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matrix_through_boto3(world, case):
    client = world.client(case.principal, case.service)
    try:
        response = getattr(client, case.operation)(**case.params(world))
    except ClientError as err:
        assert case.expect != OK, f"{case.id}: expected success, got {err}"
        assert error_code(err) == case.expect, f"{case.id}: {err}"
        if case.expect == DENIED:
            # Secrets Manager's words for a KMS key-policy denial, else IAM's.
            message = err.response["Error"]["Message"]
            assert "is not authorized to perform" in message or message == "Access to KMS is not allowed", err
        return
    assert case.expect == OK, f"{case.id}: expected {case.expect}, got success {response}"
    if case.value is not None:
        assert response["SecretString"] == case.value


def test_matrix_has_at_least_sixty_cases():
    assert len(CASES) + len(CLI_CASES) >= 60


# The AWS CLI, as a user types it, for a few principals of the matrix.
CLI_CASES = [
    ("cli-reader-get", "reader", ["secretsmanager", "get-secret-value", "--secret-id", "{blue-1}"], OK, "blue value"),
    ("cli-none-get", "none", ["secretsmanager", "get-secret-value", "--secret-id", "{blue-1}"], DENIED, None),
    ("cli-tag-red", "blue-tag", ["secretsmanager", "get-secret-value", "--secret-id", "{red-1}"], DENIED, None),
    ("cli-b-admin-shared", "b-admin", ["secretsmanager", "get-secret-value", "--secret-id", "{arn:shared}"], OK, "shared value"),
    ("cli-b-admin-default-key", "b-admin", ["secretsmanager", "get-secret-value", "--secret-id", "{arn:shared-default}"], "InvalidRequestException", None),
    ("cli-inactive", "inactive", ["secretsmanager", "get-secret-value", "--secret-id", "{blue-1}"], UNRECOGNIZED, None),
    ("cli-kms-denied", "kms-denied", ["secretsmanager", "get-secret-value", "--secret-id", "{guarded}"], DENIED, None),
    ("cli-none-iam", "none", ["iam", "list-users"], "AccessDenied", None),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_matrix_through_the_aws_cli(world, aws_cli, tmp_path, case):
    _, principal, args, expect, value = case

    def fill(arg: str) -> str:
        if arg.startswith("{arn:"):
            return world.secrets[arg[5:-1]]
        if arg.startswith("{"):
            return world.name(arg[1:-1])
        return arg

    key_id, secret = world.keys[principal]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=DEFAULT_REGION,
        AWS_MAX_ATTEMPTS="1",
    )
    done = subprocess.run(
        [aws_cli, "--endpoint-url", world.server.endpoint, "--output", "json", *map(fill, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if expect == OK:
        assert done.returncode == 0, done.stderr
        if value is not None:
            assert json.loads(done.stdout)["SecretString"] == value
    else:
        assert done.returncode != 0, done.stdout
        assert f"({expect})" in done.stderr, done.stderr
        assert value is None or value not in done.stderr
