"""SecretId resolution (spec §2.1): name, full ARN, partial ARN, and name validation on every
operation that takes a name."""

import json

import pytest

from helpers import INVALID_NAME, NOT_FOUND, expect_error, token, unique

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
            }
        ],
    }
)


def test_secret_id_can_be_the_name_the_full_arn_or_the_partial_arn(sm, secret, name):
    arn = secret["ARN"]
    for secret_id in (name, arn, arn[:-7]):
        got = sm.get_secret_value(SecretId=secret_id)
        assert got["ARN"] == arn, secret_id
        assert got["SecretString"] == "first value"


@pytest.mark.parametrize(
    "suffix",
    [
        "Valid/_+=.@-Name",  # [S]
        "Valid/_+=.@-Name-a1b2",  # [S] 4 characters after the last hyphen
        "Valid/_+=.@-Name-a1b2c3-",  # [S] ends in a hyphen
        "s-c64bdc03",  # [S] 8 characters after the last hyphen
    ],
)
def test_partial_arn_finds_the_secret(sm, suffix):
    name = f"{unique()}/{suffix}"
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    partial = arn[:-7]
    assert partial.endswith(name)
    described = sm.describe_secret(SecretId=partial)
    assert described["ARN"] == arn
    assert sm.get_secret_value(SecretId=partial)["SecretString"] == "v"


def test_partial_arn_of_a_name_that_ends_like_a_suffix_is_taken_as_a_full_arn_and_not_found(sm):
    # [S] name `Invalid/_+=.@-Name-a1b2c3`, looked up by ARN[:-7].
    name = f"{unique()}/Invalid/_+=.@-Name-a1b2c3"
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=arn[:-7])
    expect_error(sm.get_secret_value, "ResourceNotFoundException", NOT_FOUND, SecretId=arn[:-7])
    # The full ARN and the name still work.
    assert sm.describe_secret(SecretId=arn)["Name"] == name
    assert sm.describe_secret(SecretId=name)["ARN"] == arn


def test_full_arn_with_a_wrong_suffix_is_not_found(sm, secret):
    arn = secret["ARN"]
    wrong = arn[:-6] + ("AAAAAA" if arn[-6:] != "AAAAAA" else "BBBBBB")
    expect_error(sm.get_secret_value, "ResourceNotFoundException", NOT_FOUND, SecretId=wrong)


def test_names_are_case_sensitive(sm):
    name = unique("CaseSensitive")
    sm.create_secret(Name=name, SecretString="v")
    expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name.lower())


def test_arn_of_another_account_is_a_cross_account_request(sm, secret):
    # A full ARN of another account names that account's secret; without a resource policy
    # there granting access the request is denied, whether or not the secret exists, so the
    # caller learns nothing about the other account (docs/access-control.md).
    other = secret["ARN"].replace(":123456789012:", ":210987654321:")
    expect_error(
        sm.describe_secret,
        "AccessDeniedException",
        f"User: arn:aws:iam::123456789012:user/admin is not authorized to perform: secretsmanager:DescribeSecret on resource: {other} because no resource-based policy allows the secretsmanager:DescribeSecret action",
        SecretId=other,
    )


def test_exclamation_mark_is_accepted_in_lookups(sm):
    # AWS-managed secrets are named like `rds!cluster-...` [D]: a lookup is not a bad name.
    expect_error(
        sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=f"rds!cluster-{unique()}"
    )


INVALID_NAMES = ["Inv Name", " Inv Name", " Inv*Name? ", " Inv *?!]Name\\-"]


def _operations(sm):
    """Every operation that validates a secret name [S], with otherwise valid arguments."""
    return {
        "CreateSecret": lambda n: sm.create_secret(Name=n, SecretString="v"),
        "DeleteSecret": lambda n: sm.delete_secret(SecretId=n),
        "DeleteSecret(force)": lambda n: sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True),
        "DescribeSecret": lambda n: sm.describe_secret(SecretId=n),
        "GetSecretValue": lambda n: sm.get_secret_value(SecretId=n),
        "ListSecretVersionIds": lambda n: sm.list_secret_version_ids(SecretId=n),
        "PutSecretValue": lambda n: sm.put_secret_value(SecretId=n, SecretString="v", ClientRequestToken=token()),
        "TagResource": lambda n: sm.tag_resource(SecretId=n, Tags=[{"Key": "k", "Value": "v"}]),
        "UntagResource": lambda n: sm.untag_resource(SecretId=n, TagKeys=["k"]),
        "UpdateSecret": lambda n: sm.update_secret(SecretId=n, Description="d"),
        "ValidateResourcePolicy": lambda n: sm.validate_resource_policy(SecretId=n, ResourcePolicy=POLICY),
    }


OPERATION_NAMES = [
    "CreateSecret",
    "DeleteSecret",
    "DeleteSecret(force)",
    "DescribeSecret",
    "GetSecretValue",
    "ListSecretVersionIds",
    "PutSecretValue",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
    "ValidateResourcePolicy",
]


@pytest.mark.parametrize("invalid", INVALID_NAMES)
@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_invalid_secret_name_gets_validation_error(sm, operation, invalid):
    call = _operations(sm)[operation]
    expect_error(lambda: call(invalid), "ValidationException", INVALID_NAME)


@pytest.mark.parametrize("operation", ["GetResourcePolicy", "PutResourcePolicy", "DeleteResourcePolicy",
                                       "RestoreSecret", "UpdateSecretVersionStage"])
def test_invalid_secret_name_is_refused_by_the_other_secret_operations_too(sm, operation):
    calls = {
        "GetResourcePolicy": lambda n: sm.get_resource_policy(SecretId=n),
        "PutResourcePolicy": lambda n: sm.put_resource_policy(SecretId=n, ResourcePolicy=POLICY),
        "DeleteResourcePolicy": lambda n: sm.delete_resource_policy(SecretId=n),
        "RestoreSecret": lambda n: sm.restore_secret(SecretId=n),
        "UpdateSecretVersionStage": lambda n: sm.update_secret_version_stage(
            SecretId=n, VersionStage="X", MoveToVersionId=token()
        ),
    }
    expect_error(lambda: calls[operation]("Inv Name"), "ValidationException", INVALID_NAME)
