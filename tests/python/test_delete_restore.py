"""DeleteSecret and RestoreSecret, and what a secret scheduled for deletion refuses
(spec §4 common rules, §4.10, §4.11)."""

import datetime as dt
import json

import pytest

from helpers import (
    MARKED_FOR_DELETION,
    NOT_FOUND,
    body_keys,
    expect_error,
    token,
    unique,
)

DAY = dt.timedelta(days=1)
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


def now():
    return dt.datetime.now(dt.timezone.utc)


def close_to(actual: dt.datetime, expected: dt.datetime, slack=dt.timedelta(minutes=1)) -> bool:
    return abs(actual - expected) < slack


def test_delete_secret_schedules_deletion_thirty_days_out_by_default(sm, secret, name):
    deleted = sm.delete_secret(SecretId=name)
    assert body_keys(deleted) == {"ARN", "Name", "DeletionDate"}
    assert deleted["ARN"] == secret["ARN"] and deleted["Name"] == name
    assert close_to(deleted["DeletionDate"], now() + 30 * DAY)


@pytest.mark.parametrize("days", [7, 15, 30])
def test_delete_secret_honours_a_recovery_window_of_seven_to_thirty_days(sm, secret, name, days):
    deleted = sm.delete_secret(SecretId=name, RecoveryWindowInDays=days)
    assert close_to(deleted["DeletionDate"], now() + days * DAY)


@pytest.mark.parametrize("days", [0, 6, 31, 365])
def test_delete_secret_with_a_window_outside_seven_to_thirty_days_is_refused(sm, secret, name, days):
    # [E] moto's wording.
    expect_error(
        sm.delete_secret,
        "InvalidParameterException",
        "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
        SecretId=name,
        RecoveryWindowInDays=days,
    )
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)


def test_delete_secret_with_both_a_window_and_force_is_refused(sm, secret, name):
    # [E] moto's wording.
    expect_error(
        sm.delete_secret,
        "InvalidParameterException",
        "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        SecretId=name,
        RecoveryWindowInDays=7,
        ForceDeleteWithoutRecovery=True,
    )
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first value"


def test_delete_secret_with_force_false_and_a_window_is_accepted(sm, secret, name):
    deleted = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=False)
    assert close_to(deleted["DeletionDate"], now() + 7 * DAY)


def test_describe_secret_works_on_a_secret_scheduled_for_deletion_and_shows_deleted_date(sm, secret, name):
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    described = sm.describe_secret(SecretId=name)
    assert described["ARN"] == secret["ARN"]
    assert close_to(described["DeletedDate"], now()) or close_to(described["DeletedDate"], now() + 7 * DAY)
    assert described["VersionIdsToStages"] == {secret["VersionId"]: ["AWSCURRENT"]}


def test_get_secret_value_on_deleted_secret_gets_marked_for_deletion_error(sm, secret, name):
    sm.delete_secret(SecretId=name)
    expect_error(sm.get_secret_value, "InvalidRequestException", MARKED_FOR_DELETION, SecretId=name)


def _refused_while_deleted(sm, name, version_id):
    return {
        "GetSecretValue": lambda: sm.get_secret_value(SecretId=name),
        "PutSecretValue": lambda: sm.put_secret_value(SecretId=name, SecretString="v2"),
        "UpdateSecret(value)": lambda: sm.update_secret(SecretId=name, SecretString="v2"),
        "UpdateSecret(description)": lambda: sm.update_secret(SecretId=name, Description="d"),
        "UpdateSecretVersionStage": lambda: sm.update_secret_version_stage(
            SecretId=name, VersionStage="BLUE", MoveToVersionId=version_id
        ),
        "TagResource": lambda: sm.tag_resource(SecretId=name, Tags=[{"Key": "k", "Value": "v"}]),
        "UntagResource": lambda: sm.untag_resource(SecretId=name, TagKeys=["k"]),
        "PutResourcePolicy": lambda: sm.put_resource_policy(SecretId=name, ResourcePolicy=POLICY),
        "GetResourcePolicy": lambda: sm.get_resource_policy(SecretId=name),
        "DeleteResourcePolicy": lambda: sm.delete_resource_policy(SecretId=name),
        "ListSecretVersionIds": lambda: sm.list_secret_version_ids(SecretId=name),
    }


@pytest.mark.parametrize(
    "operation",
    [
        "GetSecretValue",
        "PutSecretValue",
        "UpdateSecret(value)",
        "UpdateSecret(description)",
        "UpdateSecretVersionStage",
        "TagResource",
        "UntagResource",
        "PutResourcePolicy",
        "GetResourcePolicy",
        "DeleteResourcePolicy",
        "ListSecretVersionIds",
    ],
)
def test_a_secret_scheduled_for_deletion_refuses_the_operation(sm, secret, name, operation):
    sm.delete_secret(SecretId=name)
    call = _refused_while_deleted(sm, name, secret["VersionId"])[operation]
    expect_error(call, "InvalidRequestException", MARKED_FOR_DELETION)


def test_creating_a_secret_whose_name_is_scheduled_for_deletion_is_refused(sm, secret, name):
    sm.delete_secret(SecretId=name)
    expect_error(
        sm.create_secret,
        "InvalidRequestException",
        "You can't create this secret because a secret with this name is already scheduled for deletion.",
        Name=name,
        SecretString="again",
    )


def test_restore_secret_cancels_the_deletion(sm, secret, name):
    sm.delete_secret(SecretId=name)
    restored = sm.restore_secret(SecretId=name)
    assert body_keys(restored) == {"ARN", "Name"}
    assert restored["ARN"] == secret["ARN"] and restored["Name"] == name
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first value"
    sm.put_secret_value(SecretId=name, SecretString="after restore")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "after restore"


def test_restore_secret_by_arn(sm, secret, name):
    sm.delete_secret(SecretId=secret["ARN"])
    assert sm.restore_secret(SecretId=secret["ARN"])["ARN"] == secret["ARN"]


def test_restore_secret_on_a_secret_not_scheduled_for_deletion_is_a_no_op(sm, secret, name):
    # [E] unverified on AWS; the server documents the choice (restore_secret.rs).
    restored = sm.restore_secret(SecretId=name)
    assert body_keys(restored) == {"ARN", "Name"}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first value"


def test_restore_secret_of_unknown_secret_gets_resource_not_found(sm):
    expect_error(sm.restore_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=unique())


def test_force_delete_removes_the_secret_at_once_and_frees_its_name(sm, secret, name):
    deleted = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert body_keys(deleted) == {"ARN", "Name", "DeletionDate"}
    assert deleted["ARN"] == secret["ARN"]
    assert close_to(deleted["DeletionDate"], now())
    expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
    expect_error(sm.restore_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
    again = sm.create_secret(Name=name, SecretString="new")
    assert again["ARN"] != secret["ARN"]


def test_force_delete_of_a_secret_scheduled_for_deletion_succeeds(sm, secret, name):
    sm.delete_secret(SecretId=name)
    deleted = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert deleted["ARN"] == secret["ARN"]
    expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)


def test_force_delete_of_an_unknown_secret_succeeds_and_echoes_the_id(sm):
    missing = unique()
    deleted = sm.delete_secret(SecretId=missing, ForceDeleteWithoutRecovery=True)
    assert body_keys(deleted) == {"ARN", "Name", "DeletionDate"}
    assert deleted["Name"] == missing
    assert deleted["ARN"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
    assert close_to(deleted["DeletionDate"], now())


def test_delete_of_an_unknown_secret_without_force_gets_resource_not_found(sm):
    expect_error(sm.delete_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=unique())


def test_second_scheduled_delete_is_refused(sm, secret, name):
    sm.delete_secret(SecretId=name)
    # [E] the server answers with the marked-for-deletion text (delete_secret.rs).
    expect_error(sm.delete_secret, "InvalidRequestException", MARKED_FOR_DELETION, SecretId=name)


def test_secret_scheduled_for_deletion_leaves_list_secrets_and_comes_back_on_restore(sm, secret, name):
    def listed(**kwargs):
        return [e["Name"] for e in sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}], **kwargs)["SecretList"]]

    assert listed() == [name]
    sm.delete_secret(SecretId=name)
    assert listed() == []
    assert listed(IncludePlannedDeletion=True) == [name]
    sm.restore_secret(SecretId=name)
    assert listed() == [name]


def test_deleted_secret_name_stays_taken_until_the_purge(sm, secret, name):
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    expect_error(
        sm.create_secret,
        "InvalidRequestException",
        "You can't create this secret because a secret with this name is already scheduled for deletion.",
        Name=name,
        ClientRequestToken=token(),
    )
