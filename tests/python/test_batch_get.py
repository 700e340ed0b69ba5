"""BatchGetSecretValue (spec §4.4)."""

import pytest

from helpers import MARKED_FOR_DELETION, NOT_FOUND, body_keys, expect_error, unique


def test_batch_get_by_id_list_returns_each_value_and_an_empty_error_list(sm):
    created = [sm.create_secret(Name=unique(), SecretString=f"value {i}") for i in range(3)]
    got = sm.batch_get_secret_value(SecretIdList=[c["Name"] for c in created])
    assert body_keys(got) == {"SecretValues", "Errors"}
    assert got["Errors"] == []
    by_name = {entry["Name"]: entry for entry in got["SecretValues"]}
    assert set(by_name) == {c["Name"] for c in created}
    for i, c in enumerate(created):
        entry = by_name[c["Name"]]
        assert set(entry) == {"ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"}
        assert entry["ARN"] == c["ARN"]
        assert entry["VersionId"] == c["VersionId"]
        assert entry["SecretString"] == f"value {i}"
        assert entry["VersionStages"] == ["AWSCURRENT"]


def test_batch_get_accepts_names_full_and_partial_arns(sm):
    a = sm.create_secret(Name=unique(), SecretString="a")
    b = sm.create_secret(Name=unique(), SecretString="b")
    c = sm.create_secret(Name=unique(), SecretBinary=b"c")
    got = sm.batch_get_secret_value(SecretIdList=[a["Name"], b["ARN"], c["ARN"][:-7]])
    assert got["Errors"] == []
    values = {e["ARN"]: e.get("SecretString", e.get("SecretBinary")) for e in got["SecretValues"]}
    assert values == {a["ARN"]: "a", b["ARN"]: "b", c["ARN"]: b"c"}


def test_batch_get_reports_failures_per_secret_and_still_succeeds(sm):
    ok = sm.create_secret(Name=unique(), SecretString="ok")
    empty = sm.create_secret(Name=unique())
    deleted = sm.create_secret(Name=unique(), SecretString="x")
    sm.delete_secret(SecretId=deleted["Name"])
    missing = unique()
    got = sm.batch_get_secret_value(SecretIdList=[ok["Name"], missing, empty["Name"], deleted["ARN"]])
    assert [e["Name"] for e in got["SecretValues"]] == [ok["Name"]]
    errors = {e["SecretId"]: e for e in got["Errors"]}
    assert errors == {
        missing: {"SecretId": missing, "ErrorCode": "ResourceNotFoundException", "Message": NOT_FOUND},
        empty["Name"]: {
            "SecretId": empty["Name"],
            "ErrorCode": "ResourceNotFoundException",
            "Message": "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
        },
        deleted["ARN"]: {
            "SecretId": deleted["ARN"],
            "ErrorCode": "InvalidRequestException",
            "Message": MARKED_FOR_DELETION,
        },
    }


def test_batch_get_by_filters_returns_the_matching_secrets(sm):
    prefix = unique("batch")
    created = {sm.create_secret(Name=f"{prefix}/{i}", SecretString=str(i))["Name"] for i in range(3)}
    sm.create_secret(Name=unique("other"), SecretString="no")
    got = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": [prefix]}])
    assert got["Errors"] == []
    assert {e["Name"] for e in got["SecretValues"]} == created


def test_batch_get_by_filters_leaves_out_secrets_scheduled_for_deletion(sm):
    prefix = unique("batch")
    sm.create_secret(Name=f"{prefix}/alive", SecretString="v")
    sm.create_secret(Name=f"{prefix}/doomed", SecretString="v")
    sm.delete_secret(SecretId=f"{prefix}/doomed")
    got = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": [prefix]}])
    assert [e["Name"] for e in got["SecretValues"]] == [f"{prefix}/alive"]


def test_batch_get_by_filters_pages_with_max_results(sm):
    prefix = unique("batch")
    created = [sm.create_secret(Name=f"{prefix}/{i}", SecretString=str(i))["Name"] for i in range(5)]
    seen, kwargs = [], {"Filters": [{"Key": "name", "Values": [prefix]}], "MaxResults": 2}
    pages = 0
    while True:
        page = sm.batch_get_secret_value(**kwargs)
        pages += 1
        assert len(page["SecretValues"]) <= 2
        seen += [e["Name"] for e in page["SecretValues"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert pages == 3
    assert sorted(seen) == sorted(created)


# [E] moto's wordings: AWS's texts for these argument errors are not recorded (spec §4.4).
BOTH_OR_NEITHER = "Either 'SecretIdList' or 'Filters' must be provided, but not both."


def test_batch_get_with_both_id_list_and_filters_gets_invalid_parameter(sm):
    expect_error(
        sm.batch_get_secret_value,
        "InvalidParameterException",
        BOTH_OR_NEITHER,
        SecretIdList=[unique()],
        Filters=[{"Key": "name", "Values": ["x"]}],
    )


def test_batch_get_with_neither_id_list_nor_filters_gets_invalid_parameter(sm):
    expect_error(sm.batch_get_secret_value, "InvalidParameterException", BOTH_OR_NEITHER)


def test_batch_get_with_max_results_but_no_filters_gets_invalid_parameter(sm):
    expect_error(
        sm.batch_get_secret_value,
        "InvalidParameterException",
        "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.",
        SecretIdList=[unique()],
        MaxResults=5,
    )


@pytest.mark.parametrize("count", [20])
def test_batch_get_takes_up_to_twenty_ids(sm, count):
    ids = [sm.create_secret(Name=unique(), SecretString="v")["Name"] for _ in range(count)]
    got = sm.batch_get_secret_value(SecretIdList=ids)
    assert len(got["SecretValues"]) == count and got["Errors"] == []


def test_batch_get_records_the_read_as_an_access(sm, name):
    sm.create_secret(Name=name, SecretString="v")
    sm.batch_get_secret_value(SecretIdList=[name])
    assert "LastAccessedDate" in sm.describe_secret(SecretId=name)
