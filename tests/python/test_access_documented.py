"""Authorization exactly as AWS documents it (issue 21), through boto3 and the AWS CLI:

- CreateSecret with tags also needs secretsmanager:TagResource (API Reference, CreateSecret,
  "Required permissions").
- A tag change (TagResource, UntagResource, CreateSecret's Tags) that would cost the caller a
  permission on the secret is blocked with AccessDeniedException (API Reference, TagResource /
  UntagResource / CreateSecret).
- NotPrincipal in a Deny naming a user and its account root denies every other principal
  (IAM User Guide, "AWS JSON policy elements: NotPrincipal").
- Allow/deny pairs for the condition keys and operators docs/access-control.md lists.

Coffer's choices where AWS's documentation is silent are in docs/access-control.md."""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError

from helpers import ACCOUNT_ID, DEFAULT_REGION, expect_error, expect_error_matching, service_client, unique
from test_access_policies import (
    SM,
    document,
    explicit_deny,
    iam,  # noqa: F401 (fixture)
    make_user,
    no_identity_allow,
    statement,
    user_arn,
)

DENIED = "AccessDeniedException"
ROOT = f"arn:aws:iam::{ACCOUNT_ID}:root"
# CLI v1 exits 255 when the service answers with an error.
CLI_ERROR_EXIT = 255


def new_arn_pattern(name: str) -> str:
    """The ARN CreateSecret would give `name` (its six random characters unknown)."""
    return re.escape(f"arn:aws:secretsmanager:{DEFAULT_REGION}:{ACCOUNT_ID}:secret:{name}-") + "[A-Za-z0-9]{6}"


def as_user(key: tuple[str, str]) -> dict:
    """The environment that makes the AWS CLI sign with `key` (the profile still names the
    Region and endpoint)."""
    return {"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1]}


def cli_denied(done, operation: str, message: str) -> None:
    """The AWS CLI's report of an AccessDeniedException with `message` (a regex)."""
    assert done.returncode == CLI_ERROR_EXIT, (done.returncode, done.stdout, done.stderr)
    prefix = re.escape(f"An error occurred ({DENIED}) when calling the {operation} operation: ")
    assert re.fullmatch(prefix + message, done.stderr.strip("\n")), done.stderr


def tags_of(sm, secret_id: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=secret_id).get("Tags", [])}


def missing(sm, name: str) -> bool:
    try:
        sm.describe_secret(SecretId=name)
    except ClientError as err:
        return err.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


# --- CreateSecret with Tags needs secretsmanager:TagResource ---------------------------------


def test_create_secret_with_tags_needs_tag_resource_boto3(server, iam, sm):
    user, key = make_user(iam, statement("Allow", f"{SM}:CreateSecret"))
    client = server.client(DEFAULT_REGION, access_key=key)
    name = unique("ct")
    expect_error_matching(
        client.create_secret,
        DENIED,
        re.escape(f"User: {user_arn(user)} is not authorized to perform: {SM}:TagResource on resource: ")
        + new_arn_pattern(name)
        + re.escape(f" because no identity-based policy allows the {SM}:TagResource action"),
        Name=name,
        SecretString="v",
        Tags=[{"Key": "team", "Value": "blue"}],
    )
    assert missing(sm, name)
    # Without tags CreateSecret alone suffices; with TagResource too, tags are fine.
    assert client.create_secret(Name=name, SecretString="v")["Name"] == name
    _, both = make_user(iam, statement("Allow", [f"{SM}:CreateSecret", f"{SM}:TagResource"]))
    tagged = unique("ct")
    server.client(DEFAULT_REGION, access_key=both).create_secret(
        Name=tagged, SecretString="v", Tags=[{"Key": "team", "Value": "blue"}]
    )
    assert tags_of(sm, tagged) == {"team": "blue"}


def test_create_secret_with_tags_needs_tag_resource_cli(iam, sm, cli):
    user, key = make_user(iam, statement("Allow", f"{SM}:CreateSecret"))
    name = unique("ct")
    done = cli(
        "secretsmanager", "create-secret", "--name", name, "--secret-string", "v",
        "--tags", "Key=team,Value=blue", check=False, extra_env=as_user(key),
    )
    cli_denied(
        done,
        "CreateSecret",
        re.escape(f"User: {user_arn(user)} is not authorized to perform: {SM}:TagResource on resource: ")
        + new_arn_pattern(name)
        + re.escape(f" because no identity-based policy allows the {SM}:TagResource action"),
    )
    assert missing(sm, name)
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v", extra_env=as_user(key))


# --- A tag change that would cost the caller its own permissions is blocked ------------------


BLUE_ONLY = statement("Allow", f"{SM}:*", condition={"StringEquals": {"aws:ResourceTag/team": "blue"}})


def test_retagging_away_ones_own_access_is_blocked_boto3(server, iam, sm):
    arn = sm.create_secret(Name=unique("lk"), SecretString="v", Tags=[{"Key": "team", "Value": "blue"}])["ARN"]
    user, key = make_user(iam, BLUE_ONLY)
    client = server.client(DEFAULT_REGION, access_key=key)
    expect_error(
        client.tag_resource,
        DENIED,
        no_identity_allow(user_arn(user), "TagResource", arn),
        SecretId=arn,
        Tags=[{"Key": "team", "Value": "red"}],
    )
    expect_error(
        client.untag_resource, DENIED, no_identity_allow(user_arn(user), "UntagResource", arn), SecretId=arn, TagKeys=["team"]
    )
    assert tags_of(sm, arn) == {"team": "blue"}
    # A change that keeps the caller's access goes through.
    client.tag_resource(SecretId=arn, Tags=[{"Key": "owner", "Value": "me"}, {"Key": "team", "Value": "blue"}])
    client.untag_resource(SecretId=arn, TagKeys=["owner"])
    assert tags_of(sm, arn) == {"team": "blue"}
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "v"
    # The administrator's access does not depend on tags.
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "team", "Value": "red"}])
    assert tags_of(sm, arn) == {"team": "red"}


def test_losing_any_one_permission_blocks_the_change_and_names_it(server, iam, sm):
    # Tagging is allowed everywhere; only reading depends on the tag. The lost permission is
    # the one the error names.
    arn = sm.create_secret(Name=unique("lk"), SecretString="v", Tags=[{"Key": "team", "Value": "blue"}])["ARN"]
    user, key = make_user(
        iam,
        statement("Allow", [f"{SM}:TagResource", f"{SM}:UntagResource"]),
        statement("Allow", f"{SM}:GetSecretValue", condition={"StringEquals": {"aws:ResourceTag/team": "blue"}}),
    )
    client = server.client(DEFAULT_REGION, access_key=key)
    expect_error(
        client.tag_resource,
        DENIED,
        no_identity_allow(user_arn(user), "GetSecretValue", arn),
        SecretId=arn,
        Tags=[{"Key": "team", "Value": "red"}],
    )
    # A Deny that a new tag would switch on counts as well.
    fenced = sm.create_secret(Name=unique("lk"), SecretString="v")["ARN"]
    fenced_user, fenced_key = make_user(
        iam,
        statement("Allow", f"{SM}:*"),
        statement("Deny", f"{SM}:GetSecretValue", condition={"StringEquals": {"aws:ResourceTag/env": "prod"}}),
    )
    expect_error(
        server.client(DEFAULT_REGION, access_key=fenced_key).tag_resource,
        DENIED,
        explicit_deny(user_arn(fenced_user), "GetSecretValue", fenced, "an identity-based"),
        SecretId=fenced,
        Tags=[{"Key": "env", "Value": "prod"}],
    )
    assert tags_of(sm, fenced) == {}


def test_create_secret_tags_that_would_lock_the_creator_out_are_blocked(server, iam, sm):
    user, key = make_user(
        iam,
        statement("Allow", f"{SM}:*"),
        statement("Deny", f"{SM}:*", condition={"StringEquals": {"aws:ResourceTag/env": "prod"}}),
    )
    client = server.client(DEFAULT_REGION, access_key=key)
    name = unique("lk")
    expect_error_matching(
        client.create_secret,
        DENIED,
        re.escape(f"User: {user_arn(user)} is not authorized to perform: {SM}:TagResource on resource: ")
        + new_arn_pattern(name)
        + re.escape(" with an explicit deny in an identity-based policy"),
        Name=name,
        SecretString="v",
        Tags=[{"Key": "env", "Value": "prod"}],
    )
    assert missing(sm, name)
    client.create_secret(Name=name, SecretString="v", Tags=[{"Key": "env", "Value": "dev"}])
    assert client.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_retagging_away_ones_own_access_is_blocked_cli(iam, sm, cli):
    arn = sm.create_secret(Name=unique("lk"), SecretString="v", Tags=[{"Key": "team", "Value": "blue"}])["ARN"]
    user, key = make_user(iam, BLUE_ONLY)
    done = cli(
        "secretsmanager", "tag-resource", "--secret-id", arn, "--tags", "Key=team,Value=red",
        check=False, extra_env=as_user(key),
    )
    cli_denied(done, "TagResource", re.escape(no_identity_allow(user_arn(user), "TagResource", arn)))
    done = cli(
        "secretsmanager", "untag-resource", "--secret-id", arn, "--tag-keys", "team",
        check=False, extra_env=as_user(key),
    )
    cli_denied(done, "UntagResource", re.escape(no_identity_allow(user_arn(user), "UntagResource", arn)))
    assert tags_of(sm, arn) == {"team": "blue"}
    cli("secretsmanager", "tag-resource", "--secret-id", arn, "--tags", "Key=owner,Value=me", extra_env=as_user(key))
    assert tags_of(sm, arn) == {"team": "blue", "owner": "me"}


def test_create_secret_tags_that_would_lock_the_creator_out_are_blocked_cli(iam, sm, cli):
    user, key = make_user(
        iam,
        statement("Allow", f"{SM}:*"),
        statement("Deny", f"{SM}:*", condition={"StringEquals": {"aws:ResourceTag/env": "prod"}}),
    )
    name = unique("lk")
    done = cli(
        "secretsmanager", "create-secret", "--name", name, "--secret-string", "v",
        "--tags", "Key=env,Value=prod", check=False, extra_env=as_user(key),
    )
    cli_denied(
        done,
        "CreateSecret",
        re.escape(f"User: {user_arn(user)} is not authorized to perform: {SM}:TagResource on resource: ")
        + new_arn_pattern(name)
        + re.escape(" with an explicit deny in an identity-based policy"),
    )
    assert missing(sm, name)


# --- NotPrincipal in a Deny ------------------------------------------------------------------


@pytest.fixture
def bob_only(server, iam, sm):
    """A secret whose policy denies reading to everyone but Bob (AWS's documented form: Bob's
    ARN and his account's root). Returns (arn, bob's key, alice's name and key)."""
    reader = statement("Allow", f"{SM}:GetSecretValue")
    bob, bob_key = make_user(iam, reader)
    alice, alice_key = make_user(iam, reader)
    arn = sm.create_secret(Name=unique("np"), SecretString="for bob")["ARN"]
    sm.put_resource_policy(
        SecretId=arn,
        ResourcePolicy=json.dumps(
            document(
                {
                    "Effect": "Deny",
                    "NotPrincipal": {"AWS": [user_arn(bob), ROOT]},
                    "Action": f"{SM}:GetSecretValue",
                    "Resource": "*",
                }
            )
        ),
    )
    return arn, bob_key, alice, alice_key


def test_not_principal_deny_spares_only_the_named_user_boto3(server, sm, bob_only):
    arn, bob_key, alice, alice_key = bob_only
    assert server.client(DEFAULT_REGION, access_key=bob_key).get_secret_value(SecretId=arn)["SecretString"] == "for bob"
    expect_error(
        server.client(DEFAULT_REGION, access_key=alice_key).get_secret_value,
        DENIED,
        explicit_deny(user_arn(alice), "GetSecretValue", arn, "a resource-based"),
        SecretId=arn,
    )
    expect_error(
        sm.get_secret_value, DENIED, explicit_deny(user_arn("admin"), "GetSecretValue", arn, "a resource-based"), SecretId=arn
    )


def test_not_principal_deny_spares_only_the_named_user_cli(sm, cli, bob_only):
    arn, bob_key, alice, alice_key = bob_only
    value = cli("secretsmanager", "get-secret-value", "--secret-id", arn, "--query", "SecretString",
                "--output", "text", extra_env=as_user(bob_key))
    assert value.stdout == "for bob\n"
    done = cli("secretsmanager", "get-secret-value", "--secret-id", arn, check=False, extra_env=as_user(alice_key))
    cli_denied(done, "GetSecretValue", re.escape(explicit_deny(user_arn(alice), "GetSecretValue", arn, "a resource-based")))
    done = cli("secretsmanager", "get-secret-value", "--secret-id", arn, check=False)
    cli_denied(done, "GetSecretValue", re.escape(explicit_deny(user_arn("admin"), "GetSecretValue", arn, "a resource-based")))


def test_not_principal_without_the_account_denies_the_named_user_too(server, iam, sm):
    # AWS: "you must also specify the account ARN of the not-denied principal. Otherwise, the
    # policy might deny access to the entire account containing the principal."
    bob, bob_key = make_user(iam, statement("Allow", f"{SM}:GetSecretValue"))
    arn = sm.create_secret(Name=unique("np"), SecretString="v")["ARN"]
    sm.put_resource_policy(
        SecretId=arn,
        ResourcePolicy=json.dumps(
            document({"Effect": "Deny", "NotPrincipal": {"AWS": user_arn(bob)}, "Action": f"{SM}:GetSecretValue", "Resource": "*"})
        ),
    )
    expect_error(
        server.client(DEFAULT_REGION, access_key=bob_key).get_secret_value,
        DENIED,
        explicit_deny(user_arn(bob), "GetSecretValue", arn, "a resource-based"),
        SecretId=arn,
    )


# --- Condition keys and operators: one allowed and one denied request each -------------------


def allowed_under(server, iam, condition: dict, action: str = f"{SM}:GetSecretValue", *extra: dict):
    """A Secrets Manager client of a user allowed `action` under `condition` (and `extra`
    statements)."""
    _, key = make_user(iam, statement("Allow", action, condition=condition), *extra)
    return server.client(DEFAULT_REGION, access_key=key)


def tagged(sm, key: str, value: str) -> str:
    """A new secret tagged key=value, with the value "v"; its ARN."""
    return sm.create_secret(Name=unique("ck"), SecretString="v", Tags=[{"Key": key, "Value": value}])["ARN"]


def test_requested_region(server, iam, sm):
    here = sm.create_secret(Name=unique("rr"), SecretString="v")["ARN"]
    there = server.client("us-east-2").create_secret(Name=unique("rr"), SecretString="v")["ARN"]
    _, key = make_user(iam, statement("Allow", f"{SM}:GetSecretValue", condition={"StringEquals": {"aws:RequestedRegion": DEFAULT_REGION}}))
    assert server.client(DEFAULT_REGION, access_key=key).get_secret_value(SecretId=here)["SecretString"] == "v"
    expect_error(server.client("us-east-2", access_key=key).get_secret_value, DENIED, None, SecretId=there)


def test_principal_type(server, iam, sm):
    arn = sm.create_secret(Name=unique("pt"), SecretString="v")["ARN"]
    as_user_type = allowed_under(server, iam, {"StringEquals": {"aws:PrincipalType": "User"}})
    assert as_user_type.get_secret_value(SecretId=arn)["SecretString"] == "v"
    as_account_type = allowed_under(server, iam, {"StringEquals": {"aws:PrincipalType": "Account"}})
    expect_error(as_account_type.get_secret_value, DENIED, None, SecretId=arn)


@pytest.mark.parametrize(
    "allowed, denied",
    [
        ({"NumericGreaterThan": {"aws:EpochTime": "1577836800"}}, {"NumericLessThan": {"aws:EpochTime": "1577836800"}}),
        ({"DateGreaterThan": {"aws:EpochTime": "2020-01-01T00:00:00Z"}}, {"DateLessThan": {"aws:EpochTime": "2020-01-01T00:00:00Z"}}),
    ],
    ids=["numeric", "date"],
)
def test_epoch_time(server, iam, sm, allowed, denied):
    arn = sm.create_secret(Name=unique("et"), SecretString="v")["ARN"]
    assert allowed_under(server, iam, allowed).get_secret_value(SecretId=arn)["SecretString"] == "v"
    expect_error(allowed_under(server, iam, denied).get_secret_value, DENIED, None, SecretId=arn)


@pytest.mark.parametrize(
    "operator, limit, allowed, denied",
    [
        ("NumericEquals", 7, 7, 8),
        ("NumericNotEquals", 7, 8, 7),
        ("NumericLessThan", 10, 7, 10),
        ("NumericLessThanEquals", 10, 10, 11),
        ("NumericGreaterThan", 10, 11, 10),
        ("NumericGreaterThanEquals", 10, 10, 9),
    ],
)
def test_numeric_operators_on_recovery_window(server, iam, sm, operator, limit, allowed, denied):
    arn = sm.create_secret(Name=unique("nw"), SecretString="v")["ARN"]
    client = allowed_under(server, iam, {operator: {"secretsmanager:RecoveryWindowInDays": str(limit)}}, f"{SM}:DeleteSecret")
    expect_error(client.delete_secret, DENIED, None, SecretId=arn, RecoveryWindowInDays=denied)
    deleted = client.delete_secret(SecretId=arn, RecoveryWindowInDays=allowed)
    assert deleted["ARN"] == arn


def test_a_numeric_condition_on_an_absent_recovery_window_does_not_hold(server, iam, sm):
    arn = sm.create_secret(Name=unique("nw"), SecretString="v")["ARN"]
    client = allowed_under(server, iam, {"NumericLessThanEquals": {"secretsmanager:RecoveryWindowInDays": "30"}}, f"{SM}:DeleteSecret")
    expect_error(client.delete_secret, DENIED, None, SecretId=arn)
    lenient = allowed_under(server, iam, {"NumericLessThanEqualsIfExists": {"secretsmanager:RecoveryWindowInDays": "30"}}, f"{SM}:DeleteSecret")
    assert lenient.delete_secret(SecretId=arn)["ARN"] == arn


@pytest.mark.parametrize(
    "operator, key, policy_value, allowed_tag, denied_tag",
    [
        ("StringEqualsIgnoreCase", "team", "BLUE", "blue", "red"),
        ("StringNotEqualsIgnoreCase", "team", "BLUE", "red", "Blue"),
        # The same instant written two ways; another day.
        ("DateEquals", "expires", "2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("DateNotEquals", "expires", "2026-01-01T01:00:00+01:00", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
        # base64 of "blue": the tag's bytes, compared byte for byte.
        ("BinaryEquals", "team", "Ymx1ZQ==", "blue", "red"),
    ],
)
def test_operators_on_resource_tags(server, iam, sm, operator, key, policy_value, allowed_tag, denied_tag):
    client = allowed_under(server, iam, {operator: {f"aws:ResourceTag/{key}": policy_value}})
    assert client.get_secret_value(SecretId=tagged(sm, key, allowed_tag))["SecretString"] == "v"
    expect_error(client.get_secret_value, DENIED, None, SecretId=tagged(sm, key, denied_tag))


def test_arn_not_equals_and_arn_not_like(server, iam, sm):
    prefix = unique("an")
    hidden = sm.create_secret(Name=f"{prefix}-hidden", SecretString="h")["ARN"]
    shown = sm.create_secret(Name=f"{prefix}-shown", SecretString="s")["ARN"]
    not_equals = allowed_under(server, iam, {"ArnNotEquals": {"secretsmanager:SecretId": hidden}})
    assert not_equals.get_secret_value(SecretId=shown)["SecretString"] == "s"
    expect_error(not_equals.get_secret_value, DENIED, None, SecretId=hidden)
    not_like = allowed_under(
        server, iam, {"ArnNotLike": {"secretsmanager:SecretId": f"arn:aws:secretsmanager:*:*:secret:{prefix}-hid*"}}
    )
    assert not_like.get_secret_value(SecretId=shown)["SecretString"] == "s"
    expect_error(not_like.get_secret_value, DENIED, None, SecretId=hidden)


@pytest.mark.parametrize(
    "operator, policy_value, allowed, denied",
    [
        # ${*} and ${?} are a literal * and ?, not wildcards.
        ("StringLike", "cost${*}", "cost*", "costly"),
        ("StringLike", "one${?}", "one?", "ones"),
        # ${$} is a literal $: "${$}{aws:username}" is the text "${aws:username}", not the name.
        ("StringEquals", "${$}{aws:username}", "${aws:username}", None),
    ],
    ids=["star", "question-mark", "dollar"],
)
def test_escapes_in_condition_values(server, iam, operator, policy_value, allowed, denied):
    user, key = make_user(
        iam, statement("Allow", f"{SM}:CreateSecret", condition={operator: {"secretsmanager:Description": policy_value}})
    )
    client = server.client(DEFAULT_REGION, access_key=key)
    client.create_secret(Name=unique("esc"), Description=allowed)
    expect_error(client.create_secret, DENIED, None, Name=unique("esc"), Description=denied or user)


def test_description_on_create_and_update(server, iam, sm):
    condition = {"StringEquals": {"secretsmanager:Description": "approved"}}
    client = allowed_under(server, iam, condition, [f"{SM}:CreateSecret", f"{SM}:UpdateSecret"])
    arn = client.create_secret(Name=unique("ds"), Description="approved")["ARN"]
    expect_error(client.create_secret, DENIED, None, Name=unique("ds"), Description="other")
    client.update_secret(SecretId=arn, Description="approved")
    expect_error(client.update_secret, DENIED, None, SecretId=arn, Description="other")
    assert sm.describe_secret(SecretId=arn)["Description"] == "approved"


def test_kms_key_id_on_create_and_update(server, iam, sm):
    kms = service_client(server, "kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    condition = {"StringEquals": {"secretsmanager:KmsKeyId": key_arn}}
    client = allowed_under(server, iam, condition, [f"{SM}:CreateSecret", f"{SM}:UpdateSecret"], statement("Allow", "kms:*"))
    arn = client.create_secret(Name=unique("kk"), SecretString="v", KmsKeyId=key_arn)["ARN"]
    expect_error(client.create_secret, DENIED, None, Name=unique("kk"), SecretString="v", KmsKeyId="alias/aws/secretsmanager")
    client.update_secret(SecretId=arn, KmsKeyId=key_arn)
    expect_error(client.update_secret, DENIED, None, SecretId=arn, KmsKeyId="alias/aws/secretsmanager")
    assert sm.describe_secret(SecretId=arn)["KmsKeyId"] == key_arn


def test_add_replica_regions_on_create_and_replicate(server, iam, sm):
    condition = {"ForAllValues:StringEquals": {"secretsmanager:AddReplicaRegions": ["us-east-2"]}}
    client = allowed_under(server, iam, condition, [f"{SM}:CreateSecret", f"{SM}:ReplicateSecretToRegions"])
    created = client.create_secret(Name=unique("ar"), SecretString="v", AddReplicaRegions=[{"Region": "us-east-2"}])
    assert [r["Region"] for r in created["ReplicationStatus"]] == ["us-east-2"]
    expect_error(
        client.create_secret, DENIED, None, Name=unique("ar"), SecretString="v",
        AddReplicaRegions=[{"Region": "us-east-2"}, {"Region": "eu-west-1"}],
    )
    arn = sm.create_secret(Name=unique("ar"), SecretString="v")["ARN"]
    expect_error(client.replicate_secret_to_regions, DENIED, None, SecretId=arn, AddReplicaRegions=[{"Region": "eu-west-1"}])
    replicated = client.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": "us-east-2"}])
    assert [r["Region"] for r in replicated["ReplicationStatus"]] == ["us-east-2"]


def test_rotation_lambda_arn(server, iam):
    functions = f"arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}:function"
    client = allowed_under(server, iam, {"ArnLike": {"secretsmanager:RotationLambdaARN": f"{functions}:approved-*"}}, f"{SM}:RotateSecret")
    # The secret does not exist: only an allowed caller learns that.
    missing_name = unique("rl")
    expect_error(
        client.rotate_secret, "ResourceNotFoundException", None, SecretId=missing_name, RotationLambdaARN=f"{functions}:approved-rotator"
    )
    expect_error(client.rotate_secret, DENIED, None, SecretId=missing_name, RotationLambdaARN=f"{functions}:other")
    expect_error(client.rotate_secret, DENIED, None, SecretId=missing_name)


def test_block_public_policy(server, iam, sm):
    arn = sm.create_secret(Name=unique("bp"), SecretString="v")["ARN"]
    client = allowed_under(server, iam, {"Bool": {"secretsmanager:BlockPublicPolicy": "true"}}, f"{SM}:PutResourcePolicy")
    policy = json.dumps(document(statement("Allow", f"{SM}:GetSecretValue", Principal={"AWS": ACCOUNT_ID})))
    expect_error(client.put_resource_policy, DENIED, None, SecretId=arn, ResourcePolicy=policy, BlockPublicPolicy=False)
    expect_error(client.put_resource_policy, DENIED, None, SecretId=arn, ResourcePolicy=policy)
    client.put_resource_policy(SecretId=arn, ResourcePolicy=policy, BlockPublicPolicy=True)
    assert json.loads(sm.get_resource_policy(SecretId=arn)["ResourcePolicy"]) == json.loads(policy)
