"""Every input constraint of spec §3, reported as AWS does: ValidationException with the Coral
message `N validation error(s) detected: Value '<v>' at '<path>' failed to satisfy constraint:
...` (spec §1.3). botocore checks `min` itself, so those go over raw signed HTTP."""

import json

import pytest

from helpers import assert_raw_error, expect_error, expect_error_matching, raw_post, token, unique

LE = "Member must have length less than or equal to {}"
GE = "Member must have length greater than or equal to {}"
VLE = "Member must have value less than or equal to {}"
VGE = "Member must have value greater than or equal to {}"


def coral(value, path, constraint):
    shown = "Value at" if value is None else f"Value '{value}' at"
    return f"1 validation error detected: {shown} '{path}' failed to satisfy constraint: {constraint}"


def coral_list(items, path, constraint):
    """Coral echoes a list of strings as Java prints it: `[a, b, c]`."""
    return coral("[" + ", ".join(items) + "]", path, constraint)


# --- Maximums (botocore does not check them; the server must) ----------------------------


def test_name_longer_than_512_characters(sm):
    name = "n" * 513
    expect_error(sm.create_secret, "ValidationException", coral(name, "name", LE.format(512)), Name=name)


def test_secret_id_longer_than_2048_characters(sm):
    secret_id = "s" * 2049
    expect_error(
        sm.describe_secret, "ValidationException", coral(secret_id, "secretId", LE.format(2048)), SecretId=secret_id
    )


def test_client_request_token_longer_than_64_characters(sm):
    t = "t" * 65
    expect_error(
        sm.create_secret,
        "ValidationException",
        coral(t, "clientRequestToken", LE.format(64)),
        Name=unique(),
        SecretString="v",
        ClientRequestToken=t,
    )


def test_client_request_token_of_32_and_64_characters_is_accepted(sm):
    for length in (32, 64):
        t = "x" * length
        assert sm.create_secret(Name=unique(), SecretString="v", ClientRequestToken=t)["VersionId"] == t


def test_version_id_longer_than_64_characters(sm, secret, name):
    v = "v" * 65
    expect_error(
        sm.get_secret_value, "ValidationException", coral(v, "versionId", LE.format(64)), SecretId=name, VersionId=v
    )


def test_version_stage_longer_than_256_characters(sm, secret, name):
    stage = "S" * 257
    expect_error(
        sm.get_secret_value,
        "ValidationException",
        coral(stage, "versionStage", LE.format(256)),
        SecretId=name,
        VersionStage=stage,
    )


@pytest.mark.parametrize("member, path", [("RemoveFromVersionId", "removeFromVersionId"), ("MoveToVersionId", "moveToVersionId")])
def test_update_secret_version_stage_version_ids_longer_than_64_characters(sm, secret, name, member, path):
    v = "v" * 65
    expect_error(
        sm.update_secret_version_stage,
        "ValidationException",
        coral(v, path, LE.format(64)),
        SecretId=name,
        VersionStage="X",
        **{member: v},
    )


def test_update_secret_version_stage_label_longer_than_256_characters(sm, secret, name):
    stage = "S" * 257
    expect_error(
        sm.update_secret_version_stage,
        "ValidationException",
        coral(stage, "versionStage", LE.format(256)),
        SecretId=name,
        VersionStage=stage,
        MoveToVersionId=secret["VersionId"],
    )


def test_more_than_twenty_version_stages(sm, secret, name):
    labels = [f"L{i}" for i in range(21)]
    expect_error(
        sm.put_secret_value,
        "ValidationException",
        coral_list(labels, "versionStages", LE.format(20)),
        SecretId=name,
        SecretString="v",
        VersionStages=labels,
    )


def test_version_stage_in_a_list_longer_than_256_characters(sm, secret, name):
    stage = "S" * 257
    expect_error(
        sm.put_secret_value,
        "ValidationException",
        coral(stage, "versionStages.2.member", LE.format(256)),
        SecretId=name,
        SecretString="v",
        VersionStages=["ok", stage],
    )


def test_secret_string_longer_than_65536_characters_is_refused_without_echoing_it(sm):
    value = "x" * 65537
    response = expect_error(
        sm.create_secret,
        "ValidationException",
        coral(None, "secretString", LE.format(65536)),
        Name=unique(),
        SecretString=value,
    )
    assert "xxxx" not in response["Error"]["Message"]


def test_secret_string_over_the_limit_on_put_secret_value(sm, secret, name):
    expect_error(
        sm.put_secret_value,
        "ValidationException",
        coral(None, "secretString", LE.format(65536)),
        SecretId=name,
        SecretString="y" * 65537,
    )


def test_secret_binary_longer_than_65536_bytes_is_refused_without_echoing_it(sm):
    expect_error(
        sm.create_secret,
        "ValidationException",
        coral(None, "secretBinary", LE.format(65536)),
        Name=unique(),
        SecretBinary=b"\x00" * 65537,
    )


def test_description_longer_than_2048_characters(sm):
    description = "d" * 2049
    expect_error(
        sm.create_secret,
        "ValidationException",
        coral(description, "description", LE.format(2048)),
        Name=unique(),
        Description=description,
    )


def test_description_over_the_limit_on_update_secret(sm, secret, name):
    description = "d" * 2049
    expect_error(
        sm.update_secret,
        "ValidationException",
        coral(description, "description", LE.format(2048)),
        SecretId=name,
        Description=description,
    )


def test_description_of_2048_characters_is_accepted(sm, name):
    sm.create_secret(Name=name, Description="d" * 2048)
    assert len(sm.describe_secret(SecretId=name)["Description"]) == 2048


def test_kms_key_id_longer_than_2048_characters(sm):
    key = "k" * 2049
    expect_error(
        sm.create_secret, "ValidationException", coral(key, "kmsKeyId", LE.format(2048)), Name=unique(), KmsKeyId=key
    )


def test_tag_key_longer_than_128_characters(sm, secret, name):
    key = "k" * 129
    expect_error(
        sm.tag_resource,
        "ValidationException",
        coral(key, "tags.1.member.key", LE.format(128)),
        SecretId=name,
        Tags=[{"Key": key, "Value": "v"}],
    )


def test_tag_value_longer_than_256_characters(sm, secret, name):
    value = "v" * 257
    expect_error(
        sm.tag_resource,
        "ValidationException",
        coral(value, "tags.2.member.value", LE.format(256)),
        SecretId=name,
        Tags=[{"Key": "ok", "Value": "ok"}, {"Key": "k", "Value": value}],
    )


def test_tag_limits_apply_at_creation_too(sm):
    key = "k" * 129
    expect_error(
        sm.create_secret,
        "ValidationException",
        coral(key, "tags.1.member.key", LE.format(128)),
        Name=unique(),
        Tags=[{"Key": key, "Value": "v"}],
    )


def test_untag_key_longer_than_128_characters(sm, secret, name):
    key = "k" * 129
    expect_error(
        sm.untag_resource,
        "ValidationException",
        coral(key, "tagKeys.1.member", LE.format(128)),
        SecretId=name,
        TagKeys=[key],
    )


def test_tag_key_of_128_and_value_of_256_characters_are_accepted(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=[{"Key": "k" * 128, "Value": "v" * 256}])
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "k" * 128, "Value": "v" * 256}]


def test_resource_policy_longer_than_20480_characters(sm, secret, name):
    document = json.dumps({"Version": "2012-10-17", "Statement": [], "pad": "p" * 20480})
    expect_error(
        sm.put_resource_policy,
        "ValidationException",
        coral(document, "resourcePolicy", LE.format(20480)),
        SecretId=name,
        ResourcePolicy=document,
    )


def test_password_length_above_4096(sm):
    expect_error(
        sm.get_random_password,
        "ValidationException",
        coral(4097, "passwordLength", VLE.format(4096)),
        PasswordLength=4097,
    )


def test_exclude_characters_longer_than_4096(sm):
    chars = "a" * 4097
    expect_error(
        sm.get_random_password,
        "ValidationException",
        coral(chars, "excludeCharacters", LE.format(4096)),
        ExcludeCharacters=chars,
    )


def test_more_than_ten_filters(sm):
    filters = [{"Key": "name", "Values": [f"f{i}"]} for i in range(11)]
    # The rendering of a list of structures is not recorded; the path and constraint are.
    expect_error_matching(
        sm.list_secrets,
        "ValidationException",
        r"1 validation error detected: Value (?:'.*' )?at 'filters' failed to satisfy constraint: "
        r"Member must have length less than or equal to 10",
        Filters=filters,
    )


def test_more_than_ten_values_in_a_filter(sm):
    values = [f"v{i}" for i in range(11)]
    expect_error(
        sm.list_secrets,
        "ValidationException",
        coral_list(values, "filters.1.member.values", LE.format(10)),
        Filters=[{"Key": "name", "Values": values}],
    )


def test_filter_value_longer_than_512_characters(sm):
    value = "v" * 513
    expect_error(
        sm.list_secrets,
        "ValidationException",
        coral(value, "filters.1.member.values.1.member", LE.format(512)),
        Filters=[{"Key": "name", "Values": [value]}],
    )


@pytest.mark.parametrize("value", ["a*b", "semi;colon", "ques?tion", "x!*"])
def test_filter_value_outside_the_allowed_characters(sm, value):
    expect_error(
        sm.list_secrets,
        "ValidationException",
        coral(
            value,
            "filters.2.member.values.1.member",
            r"Member must satisfy regular expression pattern: ^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$",
        ),
        Filters=[{"Key": "name", "Values": ["ok"]}, {"Key": "description", "Values": [value]}],
    )


@pytest.mark.parametrize("value", ["with space", "a:b", "x_y@z/+=.-", "!neg", "a!b"])
def test_filter_values_with_allowed_characters_are_accepted(sm, value):
    assert "SecretList" in sm.list_secrets(Filters=[{"Key": "name", "Values": [value]}])


def test_list_secrets_max_results_above_100(sm):
    expect_error(sm.list_secrets, "ValidationException", coral(101, "maxResults", VLE.format(100)), MaxResults=101)


def test_list_secret_version_ids_max_results_above_100(sm, secret, name):
    expect_error(
        sm.list_secret_version_ids,
        "ValidationException",
        coral(101, "maxResults", VLE.format(100)),
        SecretId=name,
        MaxResults=101,
    )


def test_batch_get_max_results_above_20(sm):
    expect_error(
        sm.batch_get_secret_value,
        "ValidationException",
        coral(21, "maxResults", VLE.format(20)),
        Filters=[{"Key": "name", "Values": ["x"]}],
        MaxResults=21,
    )


def test_next_token_longer_than_4096_characters(sm):
    t = "t" * 4097
    expect_error(sm.list_secrets, "ValidationException", coral(t, "nextToken", LE.format(4096)), NextToken=t)


def test_sort_order_outside_asc_and_desc(sm):
    expect_error(
        sm.list_secrets,
        "ValidationException",
        coral("up", "sortOrder", "Member must satisfy enum value set: [asc, desc]"),
        SortOrder="up",
    )


def test_more_than_twenty_secret_ids_in_a_batch(sm):
    ids = [f"id{i}" for i in range(21)]
    expect_error(
        sm.batch_get_secret_value,
        "ValidationException",
        coral_list(ids, "secretIdList", LE.format(20)),
        SecretIdList=ids,
    )


def test_secret_id_in_a_batch_longer_than_2048_characters(sm):
    long_id = "s" * 2049
    expect_error(
        sm.batch_get_secret_value,
        "ValidationException",
        coral(long_id, "secretIdList.2.member", LE.format(2048)),
        SecretIdList=["ok", long_id],
    )


def test_type_longer_than_256_characters(sm):
    kind = "t" * 257
    expect_error(sm.create_secret, "ValidationException", coral(kind, "type", LE.format(256)), Name=unique(), Type=kind)


def test_several_violations_are_counted_and_joined(sm):
    name, description = "n" * 513, "d" * 2049
    response = expect_error(sm.create_secret, "ValidationException", None, Name=name, Description=description)
    message = response["Error"]["Message"]
    prefix = "2 validation errors detected: "
    assert message.startswith(prefix), message
    parts = set(message[len(prefix):].split("; "))
    assert parts == {
        f"Value '{name}' at 'name' failed to satisfy constraint: {LE.format(512)}",
        f"Value '{description}' at 'description' failed to satisfy constraint: {LE.format(2048)}",
    }


# --- Minimums and missing members (raw HTTP: botocore would refuse to send them) ---------

RAW_MINIMUMS = [
    ("CreateSecret", {"Name": ""}, coral("", "name", GE.format(1))),
    ("DescribeSecret", {"SecretId": ""}, coral("", "secretId", GE.format(1))),
    (
        "CreateSecret",
        {"Name": "min-token", "SecretString": "v", "ClientRequestToken": "t" * 31},
        coral("t" * 31, "clientRequestToken", GE.format(32)),
    ),
    (
        "PutSecretValue",
        {"SecretId": "min-token", "SecretString": "v", "ClientRequestToken": "t" * 31},
        coral("t" * 31, "clientRequestToken", GE.format(32)),
    ),
    ("GetSecretValue", {"SecretId": "x", "VersionId": "v" * 31}, coral("v" * 31, "versionId", GE.format(32))),
    ("GetSecretValue", {"SecretId": "x", "VersionStage": ""}, coral("", "versionStage", GE.format(1))),
    (
        "CreateSecret",
        {"Name": "min-string", "SecretString": "", "ClientRequestToken": "c" * 36},
        coral(None, "secretString", GE.format(1)),
    ),
    (
        "CreateSecret",
        {"Name": "min-binary", "SecretBinary": "", "ClientRequestToken": "c" * 36},
        coral(None, "secretBinary", GE.format(1)),
    ),
    (
        "PutSecretValue",
        {"SecretId": "x", "SecretString": "v", "ClientRequestToken": "c" * 36, "VersionStages": []},
        coral_list([], "versionStages", GE.format(1)),
    ),
    (
        "TagResource",
        {"SecretId": "x", "Tags": [{"Key": "", "Value": "v"}]},
        coral("", "tags.1.member.key", GE.format(1)),
    ),
    ("UntagResource", {"SecretId": "x", "TagKeys": [""]}, coral("", "tagKeys.1.member", GE.format(1))),
    ("PutResourcePolicy", {"SecretId": "x", "ResourcePolicy": ""}, coral("", "resourcePolicy", GE.format(1))),
    ("GetRandomPassword", {"PasswordLength": 0}, coral(0, "passwordLength", VGE.format(1))),
    ("ListSecrets", {"MaxResults": 0}, coral(0, "maxResults", VGE.format(1))),
    ("ListSecrets", {"NextToken": ""}, coral("", "nextToken", GE.format(1))),
    ("ListSecrets", {"Filters": [{"Key": "name", "Values": []}]}, coral_list([], "filters.1.member.values", GE.format(1))),
    ("BatchGetSecretValue", {"SecretIdList": []}, coral_list([], "secretIdList", GE.format(1))),
    ("ListSecretVersionIds", {"SecretId": "x", "MaxResults": 0}, coral(0, "maxResults", VGE.format(1))),
]


@pytest.mark.parametrize("operation, body, message", RAW_MINIMUMS, ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(RAW_MINIMUMS)])
def test_values_below_the_minimum_get_validation_error(server, operation, body, message):
    assert_raw_error(raw_post(server, operation, body), "ValidationException", message)


RAW_MISSING = [
    ("CreateSecret", {}, "name"),
    ("DescribeSecret", {}, "secretId"),
    ("GetSecretValue", {"VersionStage": "AWSCURRENT"}, "secretId"),
    ("PutSecretValue", {"SecretString": "v", "ClientRequestToken": "c" * 36}, "secretId"),
    ("UpdateSecret", {"Description": "d"}, "secretId"),
    ("DeleteSecret", {}, "secretId"),
    ("RestoreSecret", {}, "secretId"),
    ("ListSecretVersionIds", {}, "secretId"),
    ("TagResource", {"SecretId": "x"}, "tags"),
    ("UntagResource", {"SecretId": "x"}, "tagKeys"),
    ("UpdateSecretVersionStage", {"SecretId": "x"}, "versionStage"),
    ("PutResourcePolicy", {"SecretId": "x"}, "resourcePolicy"),
    ("GetResourcePolicy", {}, "secretId"),
    ("DeleteResourcePolicy", {}, "secretId"),
    ("ValidateResourcePolicy", {}, "resourcePolicy"),
]


@pytest.mark.parametrize("operation, body, path", RAW_MISSING, ids=[f"{o}-{p}" for o, _, p in RAW_MISSING])
def test_missing_required_member_gets_must_not_be_null(server, operation, body, path):
    assert_raw_error(
        raw_post(server, operation, body),
        "ValidationException",
        f"1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null",
    )


def test_validation_comes_before_the_secret_lookup(sm):
    # A too-long VersionId on a secret that does not exist: the shape is checked first.
    v = "v" * 65
    expect_error(
        sm.get_secret_value, "ValidationException", coral(v, "versionId", LE.format(64)), SecretId=unique(), VersionId=v
    )


def test_a_refused_create_leaves_nothing_behind(sm):
    name = unique()
    expect_error(sm.create_secret, "ValidationException", None, Name=name, Description="d" * 2049)
    assert sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"] == []
    sm.create_secret(Name=name, SecretString="v", ClientRequestToken=token())
