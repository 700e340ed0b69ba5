"""The AWS JSON 1.1 wire protocol seen by a raw (signed) HTTP client: response and error
shapes (spec §1.2, §1.3) and bad input (spec §1.7) — always an AWS-style 4xx, never a 500."""

import json

import botocore.session
import pytest
import requests

from helpers import (
    JSON_CONTENT_TYPE,
    NOT_FOUND,
    assert_raw_error,
    raw_post,
    token,
    unique,
)

OPERATIONS = [
    "BatchGetSecretValue",
    "CancelRotateSecret",
    "CreateSecret",
    "DeleteResourcePolicy",
    "DeleteSecret",
    "DescribeSecret",
    "GetRandomPassword",
    "GetResourcePolicy",
    "GetSecretValue",
    "ListSecretVersionIds",
    "ListSecrets",
    "PutResourcePolicy",
    "PutSecretValue",
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "RestoreSecret",
    "RotateSecret",
    "StopReplicationToReplica",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "ValidateResourcePolicy",
]


def walk(value):
    """Every value nested in a JSON document."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


# --- Successful responses -----------------------------------------------------------------


def test_success_has_json_content_type_request_id_and_date(server, sm, secret, name):
    response = raw_post(server, "DescribeSecret", {"SecretId": name})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_CONTENT_TYPE
    assert response.headers.get("x-amzn-RequestId")
    assert response.headers.get("Date")


def test_request_ids_differ_between_requests(server):
    ids = {raw_post(server, "ListSecrets", {}).headers["x-amzn-RequestId"] for _ in range(3)}
    assert len(ids) == 3


def test_responses_never_contain_null_and_timestamps_are_numbers(server, sm, name):
    sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "k", "Value": "v"}])
    sm.get_secret_value(SecretId=name)
    for operation, body in [
        ("DescribeSecret", {"SecretId": name}),
        ("GetSecretValue", {"SecretId": name}),
        ("ListSecretVersionIds", {"SecretId": name, "IncludeDeprecated": True}),
        ("ListSecrets", {"Filters": [{"Key": "name", "Values": [name]}]}),
        ("GetResourcePolicy", {"SecretId": name}),
        ("BatchGetSecretValue", {"SecretIdList": [name]}),
    ]:
        response = raw_post(server, operation, body)
        assert response.status_code == 200, (operation, response.text)
        document = response.json()
        assert None not in list(walk(document)), (operation, document)
        for value in walk(document):
            if isinstance(value, dict):
                for key, v in value.items():
                    if key.endswith("Date"):
                        assert isinstance(v, (int, float)) and not isinstance(v, bool), (operation, key, v)


def test_tag_resource_answers_200_with_an_empty_json_object_or_nothing(server, sm, secret, name):
    response = raw_post(server, "TagResource", {"SecretId": name, "Tags": [{"Key": "a", "Value": "b"}]})
    assert response.status_code == 200
    assert response.text.strip() in ("", "{}")


def test_an_empty_body_is_read_as_an_empty_object(server):
    response = raw_post(server, "ListSecrets", b"")
    assert response.status_code == 200, response.text
    assert "SecretList" in response.json()


def test_unknown_members_are_ignored(server, sm, secret, name):
    response = raw_post(server, "DescribeSecret", {"SecretId": name, "NotAMember": [1, 2], "secretid": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["Name"] == name


def test_a_raw_client_can_create_and_read_with_its_own_token(server, name):
    t = token()
    created = raw_post(server, "CreateSecret", {"Name": name, "SecretString": "raw", "ClientRequestToken": t})
    assert created.status_code == 200, created.text
    assert created.json()["VersionId"] == t
    got = raw_post(server, "GetSecretValue", {"SecretId": name}).json()
    assert got["SecretString"] == "raw" and got["VersionId"] == t


# --- Error responses ----------------------------------------------------------------------


def test_error_has_type_message_error_type_header_request_id_and_status_400(server):
    response = raw_post(server, "DescribeSecret", {"SecretId": unique()})
    body = assert_raw_error(response, "ResourceNotFoundException", NOT_FOUND)
    assert set(body) == {"__type", "Message"}


def test_resource_not_found_is_400_not_404(sm):
    with pytest.raises(sm.exceptions.ResourceNotFoundException) as info:
        sm.get_secret_value(SecretId=unique())
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_modeled_errors_map_to_boto3_exception_classes(sm, secret, name):
    with pytest.raises(sm.exceptions.ResourceExistsException):
        sm.create_secret(Name=name)
    with pytest.raises(sm.exceptions.InvalidParameterException):
        sm.delete_secret(SecretId=name, RecoveryWindowInDays=1)
    sm.delete_secret(SecretId=name)
    with pytest.raises(sm.exceptions.InvalidRequestException):
        sm.get_secret_value(SecretId=name)


# --- Bad input: routing and serialization (spec §1.7 [E]) --------------------------------


def test_unknown_operation_gets_unknown_operation_exception(server):
    assert_raw_error(
        raw_post(server, "FooBar", {}),
        "UnknownOperationException",
        "Operation FooBar is not supported by Secrets Manager.",
    )


def test_missing_x_amz_target_gets_unknown_operation_exception(server):
    assert_raw_error(
        raw_post(server, None, {}),
        "UnknownOperationException",
        "The X-Amz-Target header must name a Secrets Manager operation, as in "
        "'secretsmanager.GetSecretValue'; got ''.",
    )


def test_target_of_another_service_gets_unknown_operation_exception(server):
    assert_raw_error(
        raw_post(server, None, {}, extra_headers={"X-Amz-Target": "DynamoDB_20120810.ListTables"}),
        "UnknownOperationException",
        "The X-Amz-Target header must name a Secrets Manager operation, as in "
        "'secretsmanager.GetSecretValue'; got 'DynamoDB_20120810.ListTables'.",
    )


def test_kms_target_must_be_signed_for_kms(server):
    # The KMS API (TrentService) is served on the same endpoint, under signing name `kms`.
    assert_raw_error(
        raw_post(server, None, {}, extra_headers={"X-Amz-Target": "TrentService.ListKeys"}),
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'kms'. ",
    )
    listed = raw_post(server, None, {}, service="kms", extra_headers={"X-Amz-Target": "TrentService.ListKeys"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["Truncated"] is False


def test_malformed_json_gets_serialization_exception(server):
    assert_raw_error(
        raw_post(server, "DescribeSecret", "{not json"),
        "SerializationException",
        "Unable to parse request: the body is not valid JSON (line 1, column 2).",
    )


def test_member_of_the_wrong_type_gets_serialization_exception(server):
    assert_raw_error(
        raw_post(server, "DescribeSecret", '{"SecretId": 123}'),
        "SerializationException",
        "Unable to parse request: a member has the wrong type or an invalid value (line 1, column 16).",
    )


def test_number_given_as_text_gets_serialization_exception(server):
    assert_raw_error(
        raw_post(server, "ListSecrets", '{"MaxResults":"ten"}'),
        "SerializationException",
        "Unable to parse request: a member has the wrong type or an invalid value (line 1, column 19).",
    )


def test_secret_binary_that_is_not_base64_gets_serialization_exception(server, name):
    response = raw_post(
        server, "CreateSecret", {"Name": name, "SecretBinary": "!!not base64!!", "ClientRequestToken": token()}
    )
    body = assert_raw_error(response, "SerializationException", None)
    assert "!!not base64!!" not in body["Message"]


def test_serialization_errors_never_echo_a_secret_value(server, name):
    response = raw_post(server, "CreateSecret", '{"Name": "%s", "SecretString": "hunter2-secret", "Tags": 5}' % name)
    body = assert_raw_error(response, "SerializationException", None)
    assert "hunter2" not in body["Message"]


NOT_AN_OBJECT = ["null", "[]", '"text"', "42", "{", "}", '{"SecretId": "x",}', "\xff\xfe garbage"]

# Values of the wrong JSON type for each kind of member in the botocore model.
WRONG_TYPES = {
    "string": [123, [], {}, True],
    "integer": ["10", 1.5, [], 99999999999999999999999],
    "long": ["10", 1.5, {}, 99999999999999999999999],
    "boolean": ["yes", 1, []],
    "list": ["x", {}, 5],
    "structure": ["x", [], 5],
    "map": ["x", [], 5],
    "blob": [12, [], "!!not base64!!"],
    "timestamp": [[], {}],
}


def wrong_member_bodies(operation):
    """One body per member of the operation and wrong value: `{"<Member>": <wrong value>}`."""
    model = botocore.session.get_session().get_service_model("secretsmanager")
    shape = model.operation_model(operation).input_shape
    for member, member_shape in (shape.members.items() if shape else []):
        for value in WRONG_TYPES[member_shape.type_name]:
            yield json.dumps({member: value})
        if member_shape.type_name == "list":
            element = member_shape.member.type_name
            yield json.dumps({member: [WRONG_TYPES[element][0]]})


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_body_that_is_not_a_json_object_gets_a_4xx_aws_error(server, operation):
    for body in NOT_AN_OBJECT:
        response = raw_post(server, operation, body.encode("latin-1"))
        assert 400 <= response.status_code < 500, (operation, body, response.status_code, response.text)
        document = response.json()
        assert document["__type"] == "SerializationException", (operation, body, document)
        assert response.headers.get("x-amzn-ErrorType") == "SerializationException"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_members_of_the_wrong_type_get_a_4xx_aws_error_never_a_500(server, operation):
    bodies = list(wrong_member_bodies(operation))
    assert bodies, operation
    for body in bodies:
        response = raw_post(server, operation, body)
        assert 400 <= response.status_code < 500, (operation, body, response.status_code, response.text)
        document = response.json()
        assert document.get("__type") and document.get("Message"), (operation, body, document)
        assert response.headers.get("x-amzn-ErrorType") == document["__type"]


def test_a_body_over_the_size_limit_gets_a_4xx_error(server):
    response = raw_post(server, "CreateSecret", b'{"Name": "' + b"x" * (600 * 1024) + b'"}')
    assert 400 <= response.status_code < 500, response.status_code
    assert response.json()["__type"] == "SerializationException"


def test_health_answers_200_json(server):
    response = requests.get(server.endpoint + "/health", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("method, path", [("GET", "/"), ("PUT", "/"), ("POST", "/other"), ("GET", "/nope")])
def test_other_methods_and_paths_get_a_4xx(server, method, path):
    response = requests.request(method, server.endpoint + path, data=b"{}", timeout=10)
    assert 400 <= response.status_code < 500, (method, path, response.status_code)


def test_the_server_keeps_serving_after_bad_input(server, sm):
    for body in NOT_AN_OBJECT + list(wrong_member_bodies("CreateSecret")):
        raw_post(server, "CreateSecret", body.encode("utf-8", "surrogateescape"))
    assert "SecretList" in sm.list_secrets(MaxResults=1)
