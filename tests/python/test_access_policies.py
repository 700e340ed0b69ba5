"""Who may do what (issue 4 §2): identity policies of IAM users, secret resource policies and
cross-account access, enforced in every Secrets Manager operation, through boto3 against a real
server. Users are made with the IAM Query API on the same endpoint; a second account with
`coffer account create`. See docs/access-control.md."""

from __future__ import annotations

import json

import boto3
import pytest

from helpers import ACCOUNT_ID, DEFAULT_REGION, create_account, expect_error, service_client, unique

SM = "secretsmanager"


def iam_client(server, key: tuple[str, str] | None = None):
    return service_client(server, "iam", key)


@pytest.fixture(scope="module")
def iam(server):
    return iam_client(server)


def statement(effect: str, action, resource="*", condition: dict | None = None, **extra) -> dict:
    st = {"Effect": effect, "Action": action, "Resource": resource, **extra}
    if condition:
        st["Condition"] = condition
    return st


def document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def make_user(iam, *statements: dict) -> tuple[str, tuple[str, str]]:
    """A user whose inline policy holds `statements` (none: no policy at all); returns its name
    and its access key."""
    name = unique("u")
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(document(*statements)))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, (key["AccessKeyId"], key["SecretAccessKey"])


def new_user(server, iam, *statements: dict, account_iam=None) -> tuple[str, "boto3.client"]:
    """[make_user], with a Secrets Manager client signed with the user's key."""
    name, key = make_user(account_iam or iam, *statements)
    return name, server.client(DEFAULT_REGION, access_key=key)


def user_arn(name: str, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def no_identity_allow(principal: str, action: str, resource: str) -> str:
    return (
        f"User: {principal} is not authorized to perform: {SM}:{action} on resource: {resource} "
        f"because no identity-based policy allows the {SM}:{action} action"
    )


def explicit_deny(principal: str, action: str, resource: str, where: str) -> str:
    return (
        f"User: {principal} is not authorized to perform: {SM}:{action} on resource: {resource} "
        f"with an explicit deny in {where} policy"
    )


def name_arn(name: str) -> str:
    """The ARN AWS names in a denial for a SecretId given as a name that matches nothing."""
    return f"arn:aws:secretsmanager:{DEFAULT_REGION}:{ACCOUNT_ID}:secret:{name}"


@pytest.fixture
def made(sm):
    """A secret made by the admin: (name, arn)."""
    name = unique("ap")
    created = sm.create_secret(Name=name, SecretString="s3cr3t", Tags=[{"Key": "team", "Value": "blue"}])
    return name, created["ARN"]


# --- Default deny and the message ----------------------------------------------------------


def test_a_user_without_policies_is_denied_everything_with_aws_message(server, iam, made):
    name, arn = made
    user, client = new_user(server, iam)
    expect_error(
        client.get_secret_value, "AccessDeniedException", no_identity_allow(user_arn(user), "GetSecretValue", arn), SecretId=name
    )
    expect_error(
        client.describe_secret, "AccessDeniedException", no_identity_allow(user_arn(user), "DescribeSecret", arn), SecretId=arn
    )
    expect_error(client.list_secrets, "AccessDeniedException", no_identity_allow(user_arn(user), "ListSecrets", "*"))
    expect_error(
        client.get_random_password, "AccessDeniedException", no_identity_allow(user_arn(user), "GetRandomPassword", "*")
    )
    new = unique("ap")
    response = expect_error(client.create_secret, "AccessDeniedException", None, Name=new, SecretString="v")
    assert f"{SM}:CreateSecret on resource: {name_arn(new)}-" in response["Error"]["Message"]


def test_a_denied_caller_does_not_learn_whether_a_secret_exists(server, iam):
    user, client = new_user(server, iam)
    missing = unique("nothing")
    expect_error(
        client.get_secret_value,
        "AccessDeniedException",
        no_identity_allow(user_arn(user), "GetSecretValue", name_arn(missing)),
        SecretId=missing,
    )
    # An allowed caller is told.
    _, reader = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue"))
    expect_error(reader.get_secret_value, "ResourceNotFoundException", None, SecretId=missing)


def test_validation_comes_before_authorisation(server, iam):
    _, client = new_user(server, iam)
    expect_error(client.get_secret_value, "ValidationException", None, SecretId="x" * 2049)


# --- Actions, NotAction, explicit deny -----------------------------------------------------


def test_an_action_allowed_is_the_only_one_allowed(server, iam, made):
    name, arn = made
    user, client = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue"))
    assert client.get_secret_value(SecretId=name)["SecretString"] == "s3cr3t"
    expect_error(
        client.put_secret_value,
        "AccessDeniedException",
        no_identity_allow(user_arn(user), "PutSecretValue", arn),
        SecretId=name,
        SecretString="other",
    )


def test_wildcard_actions(server, iam, made):
    name, arn = made
    user, client = new_user(server, iam, statement("Allow", [f"{SM}:Describe*", f"{SM}:List*"]))
    assert client.describe_secret(SecretId=name)["ARN"] == arn
    assert client.list_secret_version_ids(SecretId=name)["ARN"] == arn
    client.list_secrets(MaxResults=1)
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=name)


def test_explicit_deny_wins_over_allow(server, iam, made):
    name, arn = made
    user, client = new_user(
        server, iam, statement("Allow", f"{SM}:*"), statement("Deny", f"{SM}:GetSecretValue")
    )
    expect_error(
        client.get_secret_value,
        "AccessDeniedException",
        explicit_deny(user_arn(user), "GetSecretValue", arn, "an identity-based"),
        SecretId=name,
    )
    assert client.describe_secret(SecretId=name)["Name"] == name


def test_not_action_allows_everything_else(server, iam, made):
    name, arn = made
    user, client = new_user(server, iam, {"Effect": "Allow", "NotAction": [f"{SM}:DeleteSecret", f"{SM}:Put*"], "Resource": "*"})
    assert client.get_secret_value(SecretId=name)["SecretString"] == "s3cr3t"
    expect_error(
        client.delete_secret, "AccessDeniedException", no_identity_allow(user_arn(user), "DeleteSecret", arn), SecretId=name
    )
    expect_error(client.put_secret_value, "AccessDeniedException", None, SecretId=name, SecretString="x")
    assert client.describe_secret(SecretId=name).get("DeletedDate") is None


def test_resource_arn_patterns(server, iam, sm):
    prefix = unique("team")
    mine = sm.create_secret(Name=f"{prefix}/db", SecretString="a")
    other = sm.create_secret(Name=unique("elsewhere"), SecretString="b")
    _, client = new_user(
        server, iam, statement("Allow", f"{SM}:GetSecretValue", f"arn:aws:secretsmanager:*:*:secret:{prefix}/*")
    )
    assert client.get_secret_value(SecretId=mine["ARN"])["SecretString"] == "a"
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=other["Name"])


def test_not_resource(server, iam, sm):
    prefix = unique("prod")
    protected = sm.create_secret(Name=f"{prefix}/db", SecretString="a")
    free = sm.create_secret(Name=unique("dev"), SecretString="b")
    _, client = new_user(
        server,
        iam,
        {"Effect": "Allow", "Action": f"{SM}:GetSecretValue", "NotResource": f"arn:aws:secretsmanager:*:*:secret:{prefix}/*"},
    )
    assert client.get_secret_value(SecretId=free["Name"])["SecretString"] == "b"
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=protected["Name"])


def test_policy_variables_in_resource(server, iam, sm):
    user = unique("u")
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="own",
        PolicyDocument=json.dumps(
            document(statement("Allow", f"{SM}:*", "arn:aws:secretsmanager:*:*:secret:${aws:username}/*"))
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client = server.client(DEFAULT_REGION, access_key=(key["AccessKeyId"], key["SecretAccessKey"]))
    own = client.create_secret(Name=f"{user}/token", SecretString="mine")
    assert client.get_secret_value(SecretId=own["ARN"])["SecretString"] == "mine"
    expect_error(client.create_secret, "AccessDeniedException", None, Name=f"someone-{user}/token", SecretString="x")


# --- Conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["aws:ResourceTag/team", "secretsmanager:ResourceTag/team"])
def test_tag_conditions(server, iam, sm, key):
    blue = sm.create_secret(Name=unique("blue"), SecretString="b", Tags=[{"Key": "team", "Value": "blue"}])
    red = sm.create_secret(Name=unique("red"), SecretString="r", Tags=[{"Key": "team", "Value": "red"}])
    untagged = sm.create_secret(Name=unique("none"), SecretString="n")
    _, client = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue", condition={"StringEquals": {key: "blue"}}))
    assert client.get_secret_value(SecretId=blue["Name"])["SecretString"] == "b"
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=red["Name"])
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=untagged["Name"])


def test_a_tag_change_changes_access(server, iam, sm):
    secret = sm.create_secret(Name=unique("retag"), SecretString="v", Tags=[{"Key": "env", "Value": "dev"}])
    _, client = new_user(
        server,
        iam,
        statement("Allow", f"{SM}:GetSecretValue"),
        statement("Deny", f"{SM}:*", condition={"StringEquals": {"aws:ResourceTag/env": "prod"}}),
    )
    assert client.get_secret_value(SecretId=secret["Name"])["SecretString"] == "v"
    sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": "env", "Value": "prod"}])
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=secret["Name"])


def test_create_secret_name_condition(server, iam):
    prefix = unique("app")
    _, client = new_user(
        server,
        iam,
        statement("Allow", f"{SM}:CreateSecret", condition={"StringLike": {"secretsmanager:Name": f"{prefix}/*"}}),
    )
    created = client.create_secret(Name=f"{prefix}/db", SecretString="v")
    assert created["Name"] == f"{prefix}/db"
    expect_error(client.create_secret, "AccessDeniedException", None, Name=unique("other"), SecretString="v")


def test_request_tag_conditions_on_create_and_tag(server, iam, sm):
    _, client = new_user(
        server,
        iam,
        statement(
            "Allow",
            [f"{SM}:CreateSecret", f"{SM}:TagResource"],
            condition={
                "StringEquals": {"aws:RequestTag/owner": "me"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["owner", "env"]},
            },
        ),
    )
    made = client.create_secret(Name=unique("rt"), SecretString="v", Tags=[{"Key": "owner", "Value": "me"}])
    expect_error(
        client.create_secret, "AccessDeniedException", None, Name=unique("rt"), SecretString="v", Tags=[{"Key": "owner", "Value": "you"}]
    )
    expect_error(
        client.create_secret,
        "AccessDeniedException",
        None,
        Name=unique("rt"),
        SecretString="v",
        Tags=[{"Key": "owner", "Value": "me"}, {"Key": "cost", "Value": "1"}],
    )
    expect_error(client.create_secret, "AccessDeniedException", None, Name=unique("rt"), SecretString="v")
    client.tag_resource(SecretId=made["ARN"], Tags=[{"Key": "owner", "Value": "me"}, {"Key": "env", "Value": "x"}])
    expect_error(client.tag_resource, "AccessDeniedException", None, SecretId=made["ARN"], Tags=[{"Key": "cost", "Value": "1"}])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=made["ARN"])["Tags"]}
    assert tags == {"owner": "me", "env": "x"}


def test_source_ip_conditions(server, iam, made):
    name, _ = made
    # The suite talks to the server over the loopback interface.
    _, inside = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue", condition={"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}))
    assert inside.get_secret_value(SecretId=name)["SecretString"] == "s3cr3t"
    _, outside = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue", condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))
    expect_error(outside.get_secret_value, "AccessDeniedException", None, SecretId=name)
    _, fenced = new_user(
        server,
        iam,
        statement("Allow", f"{SM}:*"),
        statement("Deny", f"{SM}:*", condition={"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
    )
    expect_error(fenced.get_secret_value, "AccessDeniedException", None, SecretId=name)


def test_secure_transport_is_false_over_plain_http(server, iam, made):
    name, _ = made
    _, client = new_user(
        server,
        iam,
        statement("Allow", f"{SM}:GetSecretValue"),
        statement("Deny", "*", condition={"Bool": {"aws:SecureTransport": "false"}}),
    )
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=name)


def test_version_stage_condition(server, iam, sm, made):
    name, _ = made
    sm.put_secret_value(SecretId=name, SecretString="newer")
    _, client = new_user(
        server,
        iam,
        statement("Allow", f"{SM}:GetSecretValue", condition={"StringEquals": {"secretsmanager:VersionStage": "AWSPREVIOUS"}}),
    )
    assert client.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "s3cr3t"
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=name, VersionStage="AWSCURRENT")
    # No VersionStage in the request: the key is absent and StringEquals does not match.
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=name)


def test_current_time_condition(server, iam, made):
    name, _ = made
    _, past = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue", condition={"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
    expect_error(past.get_secret_value, "AccessDeniedException", None, SecretId=name)
    _, since = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue", condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
    assert since.get_secret_value(SecretId=name)["SecretString"] == "s3cr3t"


# --- Resource policies -----------------------------------------------------------------------


def test_a_resource_policy_grants_another_user(server, iam, sm, made):
    name, arn = made
    reader, reader_client = new_user(server, iam)
    _, other_client = new_user(server, iam)
    expect_error(reader_client.get_secret_value, "AccessDeniedException", None, SecretId=arn)
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=json.dumps(
            document(statement("Allow", f"{SM}:GetSecretValue", Principal={"AWS": user_arn(reader)}))
        ),
    )
    assert reader_client.get_secret_value(SecretId=arn)["SecretString"] == "s3cr3t"
    expect_error(reader_client.describe_secret, "AccessDeniedException", None, SecretId=arn)
    expect_error(other_client.get_secret_value, "AccessDeniedException", None, SecretId=arn)
    sm.delete_resource_policy(SecretId=name)
    expect_error(reader_client.get_secret_value, "AccessDeniedException", None, SecretId=arn)


def test_a_resource_policy_naming_the_account_delegates_to_identity_policies(server, iam, sm, made):
    name, arn = made
    _, client = new_user(server, iam)
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=json.dumps(document(statement("Allow", f"{SM}:GetSecretValue", Principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}))),
    )
    expect_error(client.get_secret_value, "AccessDeniedException", None, SecretId=arn)


def test_a_resource_policy_deny_stops_even_the_admin(server, sm, made):
    name, arn = made
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=json.dumps(document(statement("Deny", f"{SM}:GetSecretValue", Principal="*"))),
    )
    expect_error(
        sm.get_secret_value,
        "AccessDeniedException",
        explicit_deny(user_arn("admin"), "GetSecretValue", arn, "a resource-based"),
        SecretId=name,
    )
    assert sm.describe_secret(SecretId=name)["Name"] == name
    sm.delete_resource_policy(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "s3cr3t"


def test_batch_get_reports_denied_secrets_in_errors(server, iam, sm):
    readable = sm.create_secret(Name=unique("bg"), SecretString="r", Tags=[{"Key": "share", "Value": "yes"}])
    hidden = sm.create_secret(Name=unique("bg"), SecretString="h")
    user, client = new_user(
        server,
        iam,
        statement("Allow", f"{SM}:BatchGetSecretValue"),
        statement("Allow", f"{SM}:GetSecretValue", condition={"StringEquals": {"aws:ResourceTag/share": "yes"}}),
    )
    got = client.batch_get_secret_value(SecretIdList=[readable["ARN"], hidden["ARN"]])
    assert [v["SecretString"] for v in got["SecretValues"]] == ["r"]
    assert got["Errors"] == [
        {
            "SecretId": hidden["ARN"],
            "ErrorCode": "AccessDeniedException",
            "Message": no_identity_allow(user_arn(user), "GetSecretValue", hidden["ARN"]),
        }
    ]
    _, no_batch = new_user(server, iam, statement("Allow", f"{SM}:GetSecretValue"))
    expect_error(no_batch.batch_get_secret_value, "AccessDeniedException", None, SecretIdList=[readable["ARN"]])


# --- Another account -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_account(server):
    """A second account of the same deployment: (account id, its admin's Secrets Manager client)."""
    account, key = create_account(server)
    return account, server.client(DEFAULT_REGION, access_key=key), key


def test_cross_account_needs_the_resource_policy(server, sm, made, other_account):
    name, arn = made
    account, other, _ = other_account
    admin_b = f"arn:aws:iam::{account}:user/admin"
    expect_error(
        other.get_secret_value,
        "AccessDeniedException",
        f"User: {admin_b} is not authorized to perform: {SM}:GetSecretValue on resource: {arn} "
        f"because no resource-based policy allows the {SM}:GetSecretValue action",
        SecretId=arn,
    )
    # By name, the other account's own namespace is searched.
    expect_error(other.get_secret_value, "ResourceNotFoundException", None, SecretId=name)
    # A missing secret of account A looks the same as an existing one.
    missing = arn[: arn.rindex(":") + 1] + unique("none") + "-AbCdEf"
    response = expect_error(other.describe_secret, "AccessDeniedException", None, SecretId=missing)
    assert "because no resource-based policy allows" in response["Error"]["Message"]


def test_cross_account_read_with_a_resource_policy(server, sm, made, other_account):
    name, arn = made
    account, other, _ = other_account
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=json.dumps(
            document(statement("Allow", [f"{SM}:DescribeSecret", f"{SM}:GetSecretValue"], Principal={"AWS": f"arn:aws:iam::{account}:root"}))
        ),
    )
    described = other.describe_secret(SecretId=arn)
    assert described["ARN"] == arn
    # The value is encrypted with the default aws/secretsmanager key, which AWS does not let
    # another account use.
    expect_error(
        other.get_secret_value,
        "InvalidRequestException",
        "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.",
        SecretId=arn,
    )
    # The grant is for those two actions only.
    expect_error(other.put_secret_value, "AccessDeniedException", None, SecretId=arn, SecretString="x")


def test_cross_account_users_need_both_policies(server, sm, made, other_account):
    name, arn = made
    account, _, key = other_account
    iam_b = iam_client(server, key)
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=json.dumps(document(statement("Allow", f"{SM}:DescribeSecret", Principal={"AWS": account}))),
    )
    user, without = new_user(server, None, account_iam=iam_b)
    expect_error(
        without.describe_secret,
        "AccessDeniedException",
        f"User: arn:aws:iam::{account}:user/{user} is not authorized to perform: {SM}:DescribeSecret on resource: {arn} "
        f"because no identity-based policy allows the {SM}:DescribeSecret action",
        SecretId=arn,
    )
    _, with_policy = new_user(server, None, statement("Allow", f"{SM}:DescribeSecret"), account_iam=iam_b)
    assert with_policy.describe_secret(SecretId=arn)["Name"] == name


# --- Policy checks ---------------------------------------------------------------------------


def test_block_public_policy_accepts_a_star_principal_pinned_to_an_account(sm, made):
    name, _ = made
    pinned = document(
        statement("Allow", f"{SM}:GetSecretValue", Principal="*", condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT_ID}})
    )
    sm.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps(pinned), BlockPublicPolicy=True)
    loose = document(
        statement("Allow", f"{SM}:GetSecretValue", Principal="*", condition={"Bool": {"aws:SecureTransport": "true"}})
    )
    expect_error(
        sm.put_resource_policy,
        "PublicPolicyException",
        None,
        SecretId=name,
        ResourcePolicy=json.dumps(loose),
        BlockPublicPolicy=True,
    )


def test_put_resource_policy_names_the_faulty_statement(sm, made):
    name, _ = made
    bad = document(
        statement("Allow", f"{SM}:GetSecretValue", Principal={"AWS": ACCOUNT_ID}),
        {"Sid": "Broken", "Effect": "Allow", "Principal": "*", "Action": "GetSecretValue", "Resource": "*"},
    )
    expect_error(
        sm.put_resource_policy,
        "MalformedPolicyDocumentException",
        'This resource policy contains a syntax error: Statement 2 (Sid "Broken"): Action "GetSecretValue" must be "*" '
        'or prefaced by a service, as in "secretsmanager:GetSecretValue".',
        SecretId=name,
        ResourcePolicy=json.dumps(bad),
    )


def test_validate_resource_policy_findings(sm):
    checks = lambda policy: [e["CheckName"] for e in sm.validate_resource_policy(ResourcePolicy=policy)["ValidationErrors"]]
    assert checks("{\n  \"Statement\": [,]\n}") == ["SYNTAX_CHECK"]
    assert checks(json.dumps(document(statement("Allow", "*", Principal={"AWS": ACCOUNT_ID}, condition={"StringEqualz": {"aws:username": "a"}})))) == [
        "CONDITION_OPERATOR_CHECK"
    ]
    assert checks(json.dumps(document(statement("Allow", "s3:GetObject", Principal={"AWS": ACCOUNT_ID})))) == ["SERVICE_CHECK"]
    assert checks(json.dumps(document(statement("Allow", f"{SM}:*", Principal="*")))) == ["BROAD_ACCESS_CHECK"]
    assert checks(json.dumps(document(statement("Allow", f"{SM}:GetSecretValue", Principal={"AWS": ACCOUNT_ID})))) == []
    message = sm.validate_resource_policy(ResourcePolicy="{\n  \"Statement\": [,]\n}")["ValidationErrors"][0]["ErrorMessage"]
    assert "line 2" in message


def test_a_stored_resource_policy_that_no_longer_parses_fails_closed_until_replaced(tmp_path):
    """A policy stored before the grammar got stricter (here: written into the store file while
    the node was down) may hold Denies; ignoring it would let through what its owner refused.
    Coffer denies every action on the secret, except the resource policy operations, so the
    owner can repair it (docs/access-control.md)."""
    import sqlite3

    from helpers import start_server

    srv = start_server(tmp_path / "data")
    try:
        sm = srv.client()
        name = unique("broken-policy")
        sm.create_secret(Name=name, SecretString="guarded")
        deny_reads = document(statement("Deny", "secretsmanager:GetSecretValue", Principal="*"))
        sm.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps(deny_reads))
    finally:
        srv.stop()

    # The same Deny, under a condition operator Coffer does not know.
    broken = document(statement("Deny", "secretsmanager:GetSecretValue", Principal="*",
                                condition={"NoSuchOperator": {"aws:SourceIp": "0.0.0.0/0"}}))
    db = sqlite3.connect(tmp_path / "data" / "regions" / f"{DEFAULT_REGION}.db")
    with db:
        changed = db.execute("UPDATE secrets SET resource_policy = ? WHERE name = ?", (json.dumps(broken), name))
        assert changed.rowcount == 1
    db.close()

    srv = start_server(tmp_path / "data")
    try:
        sm = srv.client()
        for call, args in [
            (sm.get_secret_value, {}),
            (sm.describe_secret, {}),
            (sm.put_secret_value, {"SecretString": "x"}),
        ]:
            with pytest.raises(sm.exceptions.ClientError) as denied:
                call(SecretId=name, **args)
            assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
            assert "with an explicit deny in a resource-based policy" in denied.value.response["Error"]["Message"]
        # The owner reads and deletes the broken policy; then the secret answers again.
        assert json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"]) == broken
        sm.delete_resource_policy(SecretId=name)
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "guarded"
    finally:
        srv.stop()
