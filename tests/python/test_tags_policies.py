"""TagResource / UntagResource (spec §4.12) and the resource-policy operations (spec §4.13)."""

import json
import time

import pytest

from helpers import NOT_FOUND, body_keys, expect_error, unique


def tags(sm, name):
    return sm.describe_secret(SecretId=name).get("Tags")


# --- Tags ---------------------------------------------------------------------------------


def test_tag_resource_answers_with_an_empty_body(sm, secret, name):
    tagged = sm.tag_resource(SecretId=name, Tags=[{"Key": "env", "Value": "prod"}])
    assert body_keys(tagged) == set()
    assert tags(sm, name) == [{"Key": "env", "Value": "prod"}]


def test_tags_keep_insertion_order_and_an_existing_key_gets_the_new_value(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    sm.tag_resource(SecretId=name, Tags=[{"Key": "c", "Value": "3"}, {"Key": "a", "Value": "changed"}])
    assert tags(sm, name) == [
        {"Key": "a", "Value": "changed"},
        {"Key": "b", "Value": "2"},
        {"Key": "c", "Value": "3"},
    ]


def test_tag_keys_are_case_sensitive(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=[{"Key": "Env", "Value": "1"}, {"Key": "env", "Value": "2"}])
    assert tags(sm, name) == [{"Key": "Env", "Value": "1"}, {"Key": "env", "Value": "2"}]
    sm.untag_resource(SecretId=name, TagKeys=["ENV", "env"])
    assert tags(sm, name) == [{"Key": "Env", "Value": "1"}]


def test_untag_resource_removes_keys_and_ignores_missing_ones(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    untagged = sm.untag_resource(SecretId=name, TagKeys=["a", "never-there"])
    assert body_keys(untagged) == set()
    assert tags(sm, name) == [{"Key": "b", "Value": "2"}]


def test_removing_every_tag_leaves_an_empty_tag_list(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "1"}])
    sm.untag_resource(SecretId=name, TagKeys=["a"])
    assert tags(sm, name) == []


def test_a_tag_value_may_be_empty(sm, secret, name):
    sm.tag_resource(SecretId=name, Tags=[{"Key": "flag", "Value": ""}])
    assert tags(sm, name) == [{"Key": "flag", "Value": ""}]


def test_tags_given_at_creation_can_be_changed(sm, name):
    sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "a", "Value": "1"}])
    sm.tag_resource(SecretId=name, Tags=[{"Key": "b", "Value": "2"}])
    assert tags(sm, name) == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]


def test_tagging_bumps_last_changed_date(sm, secret, name):
    before = sm.describe_secret(SecretId=name)["LastChangedDate"]
    time.sleep(0.02)
    sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "1"}])
    after_tag = sm.describe_secret(SecretId=name)["LastChangedDate"]
    assert after_tag > before
    time.sleep(0.02)
    sm.untag_resource(SecretId=name, TagKeys=["a"])
    assert sm.describe_secret(SecretId=name)["LastChangedDate"] > after_tag


def test_tag_resource_by_arn(sm, secret, name):
    sm.tag_resource(SecretId=secret["ARN"], Tags=[{"Key": "a", "Value": "1"}])
    sm.untag_resource(SecretId=secret["ARN"][:-7], TagKeys=["a"])
    assert tags(sm, name) == []


def test_tag_resource_on_unknown_secret_gets_resource_not_found(sm):
    expect_error(sm.tag_resource, "ResourceNotFoundException", NOT_FOUND, SecretId=unique(), Tags=[{"Key": "a", "Value": "b"}])
    expect_error(sm.untag_resource, "ResourceNotFoundException", NOT_FOUND, SecretId=unique(), TagKeys=["a"])


# --- Resource policies --------------------------------------------------------------------


def policy(principal='{"AWS": "arn:aws:iam::123456789012:root"}', **extra) -> str:
    statement = {
        "Effect": "Allow",
        "Principal": json.loads(principal),
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
    }
    statement.update(extra)
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_put_resource_policy_answers_with_arn_and_name(sm, secret, name):
    put = sm.put_resource_policy(SecretId=name, ResourcePolicy=policy())
    assert body_keys(put) == {"ARN", "Name"}
    assert put["ARN"] == secret["ARN"] and put["Name"] == name


def test_get_resource_policy_returns_an_equivalent_document(sm, secret, name):
    document = policy()
    sm.put_resource_policy(SecretId=name, ResourcePolicy=document)
    got = sm.get_resource_policy(SecretId=name)
    assert body_keys(got) == {"ARN", "Name", "ResourcePolicy"}
    assert got["ARN"] == secret["ARN"] and got["Name"] == name
    assert json.loads(got["ResourcePolicy"]) == json.loads(document)


def test_get_resource_policy_without_a_policy_omits_it(sm, secret, name):
    got = sm.get_resource_policy(SecretId=name)
    assert body_keys(got) == {"ARN", "Name"}


def test_put_resource_policy_replaces_the_previous_one(sm, secret, name):
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy())
    second = policy(principal='{"AWS": "arn:aws:iam::123456789012:role/app"}')
    sm.put_resource_policy(SecretId=name, ResourcePolicy=second)
    assert json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"]) == json.loads(second)


def test_delete_resource_policy_removes_it(sm, secret, name):
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy())
    deleted = sm.delete_resource_policy(SecretId=name)
    assert body_keys(deleted) == {"ARN", "Name"}
    assert deleted["ARN"] == secret["ARN"]
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)


def test_delete_resource_policy_without_a_policy_succeeds(sm, secret, name):
    assert body_keys(sm.delete_resource_policy(SecretId=name)) == {"ARN", "Name"}


def test_a_public_policy_is_accepted_when_block_public_policy_is_not_set(sm, secret, name):
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy(principal='"*"'))
    assert json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"])["Statement"][0]["Principal"] == "*"


def test_block_public_policy_refuses_a_policy_open_to_everyone(sm, secret, name):
    expect_error(
        sm.put_resource_policy,
        "PublicPolicyException",
        "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.",
        SecretId=name,
        ResourcePolicy=policy(principal='"*"'),
        BlockPublicPolicy=True,
    )
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)


def test_block_public_policy_accepts_a_policy_for_one_account(sm, secret, name):
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy(), BlockPublicPolicy=True)
    assert "ResourcePolicy" in sm.get_resource_policy(SecretId=name)


def test_put_resource_policy_with_invalid_json_gets_malformed_policy_document(sm, secret, name):
    # The text after the colon is the server's (policy.rs); AWS documents the code only.
    expect_error(
        sm.put_resource_policy,
        "MalformedPolicyDocumentException",
        "This resource policy contains a syntax error: The policy is not valid JSON.",
        SecretId=name,
        ResourcePolicy="{not json",
    )


def test_put_resource_policy_without_statement_gets_malformed_policy_document(sm, secret, name):
    expect_error(
        sm.put_resource_policy,
        "MalformedPolicyDocumentException",
        "This resource policy contains a syntax error: The policy has no Statement.",
        SecretId=name,
        ResourcePolicy='{"Version": "2012-10-17"}',
    )


def test_resource_policy_operations_on_unknown_secret_get_resource_not_found(sm):
    expect_error(sm.put_resource_policy, "ResourceNotFoundException", NOT_FOUND, SecretId=unique(), ResourcePolicy=policy())
    expect_error(sm.get_resource_policy, "ResourceNotFoundException", NOT_FOUND, SecretId=unique())
    expect_error(sm.delete_resource_policy, "ResourceNotFoundException", NOT_FOUND, SecretId=unique())


def test_validate_resource_policy_passes_a_valid_policy(sm):
    validated = sm.validate_resource_policy(ResourcePolicy=policy())
    assert body_keys(validated) == {"PolicyValidationPassed", "ValidationErrors"}
    assert validated["PolicyValidationPassed"] is True
    assert validated["ValidationErrors"] == []


def test_validate_resource_policy_with_a_secret_id_resolves_the_secret(sm, secret, name):
    validated = sm.validate_resource_policy(SecretId=name, ResourcePolicy=policy())
    assert validated["PolicyValidationPassed"] is True


def test_validate_resource_policy_reports_syntax_errors_without_failing(sm):
    validated = sm.validate_resource_policy(ResourcePolicy="{not json")
    assert validated["PolicyValidationPassed"] is False
    assert validated["ValidationErrors"], validated
    for error in validated["ValidationErrors"]:
        assert set(error) == {"CheckName", "ErrorMessage"}
        assert error["CheckName"] and error["ErrorMessage"]


def test_validate_resource_policy_reports_a_policy_open_to_everyone(sm):
    validated = sm.validate_resource_policy(ResourcePolicy=policy(principal='"*"'))
    assert validated["PolicyValidationPassed"] is False
    assert len(validated["ValidationErrors"]) >= 1


def test_policy_changes_bump_last_changed_date(sm, secret, name):
    before = sm.describe_secret(SecretId=name)["LastChangedDate"]
    time.sleep(0.02)
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy())
    assert sm.describe_secret(SecretId=name)["LastChangedDate"] > before
