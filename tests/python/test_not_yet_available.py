"""Rotation has not landed: RotateSecret and CancelRotateSecret must fail plainly (400,
InvalidRequestException saying what is missing), never look like success and never 500.
This module is to be replaced when rotation lands. (Replication has landed: see
test_replication.py.)"""

import pytest

from helpers import expect_error, unique

ROTATION = (
    "Coffer does not rotate secrets yet: RotateSecret and CancelRotateSecret are not available in this version."
)


def calls(sm, name):
    return {
        "RotateSecret": lambda: sm.rotate_secret(
            SecretId=name,
            RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:rotate",
            RotationRules={"AutomaticallyAfterDays": 1},
        ),
        "RotateSecret(no arguments)": lambda: sm.rotate_secret(SecretId=name),
        "RotateSecret(schedule, not immediately)": lambda: sm.rotate_secret(
            SecretId=name,
            RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:rotate",
            RotationRules={"ScheduleExpression": "rate(10 days)"},
            RotateImmediately=False,
        ),
        "CancelRotateSecret": lambda: sm.cancel_rotate_secret(SecretId=name),
    }


@pytest.mark.parametrize(
    "operation",
    ["RotateSecret", "RotateSecret(no arguments)", "RotateSecret(schedule, not immediately)", "CancelRotateSecret"],
)
def test_rotation_operation_not_available_yet_fails_clearly_and_changes_nothing(sm, secret, name, operation):
    expect_error(calls(sm, name)[operation], "InvalidRequestException", ROTATION)
    described = sm.describe_secret(SecretId=name)
    for absent in ("RotationEnabled", "RotationLambdaARN", "RotationRules", "NextRotationDate", "LastRotatedDate"):
        assert absent not in described, absent
    assert described["VersionIdsToStages"] == {secret["VersionId"]: ["AWSCURRENT"]}


def test_rotation_operations_fail_the_same_way_for_an_unknown_secret(sm):
    expect_error(sm.cancel_rotate_secret, "InvalidRequestException", ROTATION, SecretId=unique())
    expect_error(sm.rotate_secret, "InvalidRequestException", ROTATION, SecretId=unique())
