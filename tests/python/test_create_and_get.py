"""CreateSecret, GetSecretValue and DescribeSecret (spec §2, §4.1–§4.3)."""

import base64
import datetime as dt
import re

import pytest

from helpers import (
    ACCOUNT_ID,
    MISSING_TOKEN,
    NOT_FOUND,
    REGIONS,
    arn_pattern,
    assert_raw_error,
    body_keys,
    expect_error,
    midnight_utc_today,
    raw_post,
    token,
    unique,
)


# --- CreateSecret -------------------------------------------------------------------------


def test_create_secret_returns_arn_name_and_version_id(sm, name):
    t = token()
    created = sm.create_secret(Name=name, SecretString="s3cr3t", ClientRequestToken=t)
    assert body_keys(created) == {"ARN", "Name", "VersionId"}
    assert created["Name"] == name
    assert created["VersionId"] == t
    assert re.match(arn_pattern(name), created["ARN"]), created["ARN"]


def test_create_secret_without_a_value_returns_no_version_id(sm, name):
    created = sm.create_secret(Name=name)
    assert body_keys(created) == {"ARN", "Name"}


def test_every_secret_gets_its_own_random_arn_suffix(sm):
    suffixes = {sm.create_secret(Name=unique())["ARN"][-6:] for _ in range(5)}
    assert len(suffixes) == 5


def test_recreating_a_name_after_force_delete_gives_a_different_arn(sm, name):
    first = sm.create_secret(Name=name, SecretString="one")
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    second = sm.create_secret(Name=name, SecretString="two")
    assert second["ARN"] != first["ARN"]
    assert re.match(arn_pattern(name), second["ARN"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "two"


def test_create_secret_with_an_existing_name_gets_resource_exists(sm, secret, name):
    expect_error(
        sm.create_secret,
        "ResourceExistsException",
        f"The operation failed because the secret {name} already exists.",
        Name=name,
        SecretString="other",
    )


def test_create_secret_replayed_with_same_token_and_value_answers_like_the_first_call(sm, name):
    t = token()
    first = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=t)
    again = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=t)
    assert {k: again[k] for k in ("ARN", "Name", "VersionId")} == {
        k: first[k] for k in ("ARN", "Name", "VersionId")
    }
    versions = sm.list_secret_version_ids(SecretId=name)["Versions"]
    assert [v["VersionId"] for v in versions] == [t]


def test_create_secret_replayed_with_same_token_but_other_value_gets_token_in_use(sm, name):
    t = token()
    first = sm.create_secret(Name=name, SecretString="one", ClientRequestToken=t)
    expect_error(
        sm.create_secret,
        "ResourceExistsException",
        f"You can't use ClientRequestToken {t} because that value is already in use "
        f"for a version of secret {first['ARN']}.",
        Name=name,
        SecretString="two",
        ClientRequestToken=t,
    )


def test_create_secret_raw_request_with_value_but_no_token_gets_token_error(server, name):
    response = raw_post(server, "CreateSecret", {"Name": name, "SecretString": "x"})
    assert_raw_error(response, "InvalidRequestException", MISSING_TOKEN)


def test_create_secret_raw_request_without_value_and_token_creates_the_secret(server, sm, name):
    response = raw_post(server, "CreateSecret", {"Name": name})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"ARN", "Name"}
    assert sm.describe_secret(SecretId=name)["Name"] == name


def test_create_secret_with_both_string_and_binary_gets_invalid_parameter(sm, name):
    expect_error(
        sm.create_secret,
        "InvalidParameterException",
        "You can't specify both a binary secret value and a string secret value in the same secret.",
        Name=name,
        SecretString="text",
        SecretBinary=b"bytes",
    )
    expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)


def test_create_secret_keeps_description_and_tags(sm, name):
    sm.create_secret(
        Name=name,
        SecretString="v",
        Description="database password",
        Tags=[{"Key": "env", "Value": "prod"}, {"Key": "Env", "Value": ""}],
    )
    described = sm.describe_secret(SecretId=name)
    assert described["Description"] == "database password"
    assert described["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "Env", "Value": ""}]


@pytest.mark.parametrize("suffix", ["Valid/_+=.@-Name", "a", "with.dots_and+plus=eq@at"])
def test_names_with_every_allowed_punctuation_work(sm, suffix):
    name = f"{unique()}/{suffix}"
    sm.create_secret(Name=name, SecretString="v")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_a_name_of_512_characters_is_accepted(sm):
    name = unique() + "x" * (512 - len(unique()))
    assert len(name) == 512
    created = sm.create_secret(Name=name, SecretString="v")
    assert created["Name"] == name


# --- GetSecretValue -----------------------------------------------------------------------


def test_get_secret_value_returns_the_current_string_and_its_metadata(sm, name):
    t = token()
    created = sm.create_secret(Name=name, SecretString='{"user":"admin"}', ClientRequestToken=t)
    got = sm.get_secret_value(SecretId=name)
    assert body_keys(got) == {"ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"}
    assert got["ARN"] == created["ARN"]
    assert got["Name"] == name
    assert got["VersionId"] == t
    assert got["SecretString"] == '{"user":"admin"}'
    assert got["VersionStages"] == ["AWSCURRENT"]
    assert isinstance(got["CreatedDate"], dt.datetime)
    assert abs(got["CreatedDate"] - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)


def test_binary_secret_comes_back_as_the_same_bytes(sm, name):
    data = bytes(range(256)) * 3
    sm.create_secret(Name=name, SecretBinary=data)
    got = sm.get_secret_value(SecretId=name)
    assert got["SecretBinary"] == data
    assert "SecretString" not in got


def test_binary_secret_is_base64_and_dates_are_numbers_on_the_wire(server, sm, name):
    sm.create_secret(Name=name, SecretBinary=b"footest")
    response = raw_post(server, "GetSecretValue", {"SecretId": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["SecretBinary"] == "Zm9vdGVzdA=="
    assert "SecretString" not in body
    assert isinstance(body["CreatedDate"], (int, float)) and not isinstance(body["CreatedDate"], bool)


def test_unicode_secret_string_round_trips(sm, name):
    value = "pässwörd ✓ 密码 🔑"
    sm.create_secret(Name=name, SecretString=value)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


def test_largest_secret_string_round_trips(sm, name):
    value = "x" * 65536
    sm.create_secret(Name=name, SecretString=value)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


def test_largest_secret_binary_round_trips(sm, name):
    value = bytes(range(256)) * 256
    assert len(value) == 65536
    sm.create_secret(Name=name, SecretBinary=value)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == value


def test_get_secret_value_of_unknown_secret_gets_resource_not_found(sm):
    expect_error(sm.get_secret_value, "ResourceNotFoundException", NOT_FOUND, SecretId=unique())


def test_get_secret_value_of_secret_without_value_gets_staging_label_error(sm, name):
    sm.create_secret(Name=name)
    expect_error(
        sm.get_secret_value,
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
        SecretId=name,
    )


@pytest.mark.parametrize("stage", ["AWSPENDING", "AWSPREVIOUS"])
def test_get_secret_value_with_a_stage_no_version_has_gets_staging_label_error(sm, secret, name, stage):
    expect_error(
        sm.get_secret_value,
        "ResourceNotFoundException",
        f"Secrets Manager can't find the specified secret value for staging label: {stage}",
        SecretId=name,
        VersionStage=stage,
    )


def test_get_secret_value_with_unknown_version_id_gets_version_error(sm, secret, name):
    missing = token()
    expect_error(
        sm.get_secret_value,
        "ResourceNotFoundException",
        f"Secrets Manager can't find the specified secret value for VersionId: {missing}",
        SecretId=name,
        VersionId=missing,
    )


def test_get_secret_value_with_stage_not_on_the_given_version_gets_invalid_request(sm, secret, name):
    expect_error(
        sm.get_secret_value,
        "InvalidRequestException",
        "You provided a VersionStage that is not associated to the provided VersionId.",
        SecretId=name,
        VersionId=secret["VersionId"],
        VersionStage="AWSPREVIOUS",
    )


def test_get_secret_value_by_version_id_and_matching_stage(sm, secret, name):
    got = sm.get_secret_value(SecretId=name, VersionId=secret["VersionId"], VersionStage="AWSCURRENT")
    assert got["SecretString"] == "first value"


def test_get_secret_value_of_an_older_version_by_id_and_by_awsprevious(sm, secret, name):
    sm.put_secret_value(SecretId=name, SecretString="second value")
    by_id = sm.get_secret_value(SecretId=name, VersionId=secret["VersionId"])
    assert by_id["SecretString"] == "first value"
    assert by_id["VersionStages"] == ["AWSPREVIOUS"]
    by_stage = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert by_stage["VersionId"] == secret["VersionId"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "second value"


def test_every_response_carries_a_request_id(sm, secret, name):
    got = sm.get_secret_value(SecretId=name)
    assert re.fullmatch(r"[0-9a-f-]{36}", got["ResponseMetadata"]["RequestId"])


# --- DescribeSecret -----------------------------------------------------------------------


def test_describe_secret_after_create_and_one_read_shows_exactly_the_recorded_fields(sm, name):
    created = sm.create_secret(Name=name, SecretString="v", Description="a description")
    sm.get_secret_value(SecretId=name)
    described = sm.describe_secret(SecretId=name)
    assert body_keys(described) == {
        "ARN",
        "CreatedDate",
        "Description",
        "LastAccessedDate",
        "LastChangedDate",
        "Name",
        "VersionIdsToStages",
    }
    assert described["ARN"] == created["ARN"]
    assert described["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}


def test_describe_secret_omits_an_empty_description(sm, name):
    sm.create_secret(Name=name, SecretString="v", Description="")
    assert "Description" not in sm.describe_secret(SecretId=name)


def test_describe_secret_without_value_has_no_version_map(sm, name):
    sm.create_secret(Name=name)
    described = sm.describe_secret(SecretId=name)
    assert body_keys(described) == {"ARN", "Name", "CreatedDate", "LastChangedDate"}


def test_describe_secret_shows_no_kms_key_rotation_or_replication_for_a_plain_secret(sm, secret, name):
    described = sm.describe_secret(SecretId=name)
    for absent in (
        "KmsKeyId",
        "RotationEnabled",
        "RotationLambdaARN",
        "RotationRules",
        "LastRotatedDate",
        "NextRotationDate",
        "DeletedDate",
        "PrimaryRegion",
        "ReplicationStatus",
        "OwningService",
        "Tags",
        "LastAccessedDate",
    ):
        assert absent not in described, absent


def test_last_accessed_date_is_midnight_utc_of_the_day_of_the_read(sm, secret, name):
    sm.get_secret_value(SecretId=name)
    first = sm.describe_secret(SecretId=name)["LastAccessedDate"]
    sm.get_secret_value(SecretId=name)
    second = sm.describe_secret(SecretId=name)["LastAccessedDate"]
    assert first == second == midnight_utc_today()


def test_last_accessed_date_is_a_whole_day_number_on_the_wire(server, sm, secret, name):
    sm.get_secret_value(SecretId=name)
    body = raw_post(server, "DescribeSecret", {"SecretId": name}).json()
    assert body["LastAccessedDate"] == midnight_utc_today().timestamp()
    for key in ("CreatedDate", "LastChangedDate"):
        assert isinstance(body[key], (int, float)), key


def test_describe_secret_of_unknown_secret_gets_resource_not_found(sm):
    expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=unique())


def test_created_and_last_changed_dates_are_set_at_creation(sm, name):
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    sm.create_secret(Name=name, SecretString="v")
    described = sm.describe_secret(SecretId=name)
    assert before <= described["CreatedDate"] <= described["LastChangedDate"]
    assert described["LastChangedDate"] - before < dt.timedelta(minutes=1)


# --- Regions ------------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_every_hosted_region_serves_secrets_with_its_own_arns(server, region):
    client = server.client(region)
    name = unique()
    created = client.create_secret(Name=name, SecretString=region)
    assert re.match(arn_pattern(name, region=region, account=ACCOUNT_ID), created["ARN"])
    assert client.get_secret_value(SecretId=created["ARN"])["SecretString"] == region


def test_regions_are_separate_namespaces(server):
    west = server.client("us-west-2")
    east = server.client("us-east-1")
    name = unique()
    created = west.create_secret(Name=name, SecretString="west")
    expect_error(east.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
    # The same name can exist in another Region independently.
    east.create_secret(Name=name, SecretString="east")
    assert west.get_secret_value(SecretId=name)["SecretString"] == "west"
    assert east.get_secret_value(SecretId=name)["SecretString"] == "east"
    # An ARN of another Region names a secret this Region does not hold.
    expect_error(east.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=created["ARN"])


def test_secret_binary_given_as_base64_text_by_a_raw_client_is_decoded(server, sm, name):
    response = raw_post(
        server,
        "CreateSecret",
        {"Name": name, "SecretBinary": base64.b64encode(b"\x00\xffraw").decode(), "ClientRequestToken": token()},
    )
    assert response.status_code == 200, response.text
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == b"\x00\xffraw"
