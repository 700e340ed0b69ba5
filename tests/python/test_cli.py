"""The AWS CLI, typed as a user types it after pasting the `export ...` line the server
printed: no --endpoint-url, no --region, no keys on the command line."""

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ACCOUNT_ID, arn_pattern, start_server, unique

# AWS CLI v1 exits 255 when the service (or parameter validation) answers with an error.
CLI_ERROR_EXIT = 255


def as_json(done):
    return json.loads(done.stdout)


def cli_error(done, code, operation, message):
    assert done.returncode == CLI_ERROR_EXIT, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.strip("\n") == f"An error occurred ({code}) when calling the {operation} operation: {message}", done.stderr


def test_list_secrets_works_with_no_flags(cli):
    listing = as_json(cli("secretsmanager", "list-secrets"))
    assert isinstance(listing["SecretList"], list)


def test_the_config_file_names_the_region_and_endpoint(server):
    text = server.config_file.read_text()
    assert re.search(r"^region\s*=\s*us-east-1$", text, re.M), text
    assert re.search(rf"^endpoint_url\s*=\s*{re.escape(server.endpoint)}$", text, re.M), text
    credentials = server.credentials_file.read_text()
    assert "[default]" in credentials and "aws_access_key_id" in credentials and "aws_secret_access_key" in credentials


def test_create_get_describe_and_list_a_secret(cli):
    name = unique("cli")
    created = as_json(cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "s3cr3t",
                          "--description", "made with the CLI"))
    assert set(created) == {"ARN", "Name", "VersionId"}
    assert re.match(arn_pattern(name, account=ACCOUNT_ID), created["ARN"])
    value = cli("secretsmanager", "get-secret-value", "--secret-id", name, "--query", "SecretString", "--output", "text")
    assert value.stdout == "s3cr3t\n"
    described = as_json(cli("secretsmanager", "describe-secret", "--secret-id", created["ARN"]))
    assert described["Description"] == "made with the CLI"
    assert described["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    listed = as_json(cli("secretsmanager", "list-secrets", "--filters", f"Key=name,Values={name}"))
    assert [e["Name"] for e in listed["SecretList"]] == [name]


def test_dates_print_as_epoch_seconds_as_on_the_wire(cli):
    name = unique("cli")
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v")
    described = as_json(cli("secretsmanager", "describe-secret", "--secret-id", name))
    # AWS CLI v1 prints timestamps as received (cli_timestamp_format defaults to "none").
    assert isinstance(described["CreatedDate"], float)
    assert abs(described["CreatedDate"] - time.time()) < 120


def test_json_secret_string_from_a_file(cli):
    name = unique("cli")
    document = {"username": "admin", "password": "p@ss w0rd!"}
    (cli.cwd / "creds.json").write_text(json.dumps(document))
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "file://creds.json")
    got = as_json(cli("secretsmanager", "get-secret-value", "--secret-id", name))
    assert json.loads(got["SecretString"]) == document


def test_binary_secret_from_a_file(cli):
    name = unique("cli")
    data = bytes(range(256))
    (cli.cwd / "blob.bin").write_bytes(data)
    cli("secretsmanager", "create-secret", "--name", name, "--secret-binary", "fileb://blob.bin")
    got = as_json(cli("secretsmanager", "get-secret-value", "--secret-id", name))
    assert base64.b64decode(got["SecretBinary"]) == data


def test_put_update_and_list_versions(cli):
    name = unique("cli")
    first = as_json(cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "one"))
    put = as_json(cli("secretsmanager", "put-secret-value", "--secret-id", name, "--secret-string", "two"))
    assert put["VersionStages"] == ["AWSCURRENT"]
    updated = as_json(cli("secretsmanager", "update-secret", "--secret-id", name, "--secret-string", "three"))
    assert set(updated) == {"ARN", "Name", "VersionId"}
    versions = as_json(cli("secretsmanager", "list-secret-version-ids", "--secret-id", name, "--include-deprecated"))
    by_id = {v["VersionId"]: v for v in versions["Versions"]}
    assert set(by_id) == {first["VersionId"], put["VersionId"], updated["VersionId"]}
    assert by_id[updated["VersionId"]]["VersionStages"] == ["AWSCURRENT"]
    assert by_id[put["VersionId"]]["VersionStages"] == ["AWSPREVIOUS"]
    assert "VersionStages" not in by_id[first["VersionId"]]
    previous = cli("secretsmanager", "get-secret-value", "--secret-id", name, "--version-stage", "AWSPREVIOUS",
                   "--query", "SecretString", "--output", "text")
    assert previous.stdout == "two\n"


def test_move_a_staging_label(cli):
    name = unique("cli")
    first = as_json(cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "one"))
    second = as_json(cli("secretsmanager", "put-secret-value", "--secret-id", name, "--secret-string", "two"))
    cli("secretsmanager", "update-secret-version-stage", "--secret-id", name, "--version-stage", "AWSCURRENT",
        "--remove-from-version-id", second["VersionId"], "--move-to-version-id", first["VersionId"])
    value = cli("secretsmanager", "get-secret-value", "--secret-id", name, "--query", "SecretString", "--output", "text")
    assert value.stdout == "one\n"


def test_tag_and_untag(cli):
    name = unique("cli")
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v")
    tagged = cli("secretsmanager", "tag-resource", "--secret-id", name, "--tags", "Key=env,Value=prod", "Key=team,Value=core")
    assert tagged.stdout.strip() == ""
    tags = as_json(cli("secretsmanager", "describe-secret", "--secret-id", name, "--query", "Tags"))
    assert tags == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "core"}]
    cli("secretsmanager", "untag-resource", "--secret-id", name, "--tag-keys", "env", "team")
    assert as_json(cli("secretsmanager", "describe-secret", "--secret-id", name, "--query", "Tags")) == []


def test_delete_restore_and_force_delete(cli):
    name = unique("cli")
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v")
    deleted = as_json(cli("secretsmanager", "delete-secret", "--secret-id", name, "--recovery-window-in-days", "7"))
    assert set(deleted) == {"ARN", "Name", "DeletionDate"}
    done = cli("secretsmanager", "get-secret-value", "--secret-id", name, check=False)
    cli_error(done, "InvalidRequestException", "GetSecretValue",
              "You can't perform this operation on the secret because it was marked for deletion.")
    restored = as_json(cli("secretsmanager", "restore-secret", "--secret-id", name))
    assert restored["Name"] == name
    cli("secretsmanager", "delete-secret", "--secret-id", name, "--force-delete-without-recovery")
    done = cli("secretsmanager", "describe-secret", "--secret-id", name, check=False)
    cli_error(done, "ResourceNotFoundException", "DescribeSecret", "Secrets Manager can't find the specified secret.")


def test_resource_policy_round_trip(cli):
    name = unique("cli")
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                       "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
    }
    (cli.cwd / "policy.json").write_text(json.dumps(policy))
    validated = as_json(cli("secretsmanager", "validate-resource-policy", "--resource-policy", "file://policy.json"))
    assert validated == {"PolicyValidationPassed": True, "ValidationErrors": []}
    put = as_json(cli("secretsmanager", "put-resource-policy", "--secret-id", name,
                      "--resource-policy", "file://policy.json", "--block-public-policy"))
    assert set(put) == {"ARN", "Name"}
    got = as_json(cli("secretsmanager", "get-resource-policy", "--secret-id", name))
    assert json.loads(got["ResourcePolicy"]) == policy
    cli("secretsmanager", "delete-resource-policy", "--secret-id", name)
    assert "ResourcePolicy" not in as_json(cli("secretsmanager", "get-resource-policy", "--secret-id", name))


def test_get_random_password(cli):
    password = cli("secretsmanager", "get-random-password", "--password-length", "20", "--exclude-punctuation",
                   "--query", "RandomPassword", "--output", "text").stdout.rstrip("\n")
    assert len(password) == 20 and password.isalnum()


def test_batch_get_secret_value(cli):
    names = [unique("cli") for _ in range(2)]
    for n in names:
        cli("secretsmanager", "create-secret", "--name", n, "--secret-string", n.upper())
    missing = unique("cli")
    got = as_json(cli("secretsmanager", "batch-get-secret-value", "--secret-id-list", *names, missing))
    assert {e["Name"]: e["SecretString"] for e in got["SecretValues"]} == {n: n.upper() for n in names}
    assert [(e["SecretId"], e["ErrorCode"]) for e in got["Errors"]] == [(missing, "ResourceNotFoundException")]


def test_list_secrets_follows_next_token_across_small_pages(aws_cli, tmp_path):
    # A server of its own, so the count is exact.
    srv = start_server(tmp_path / "own")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(srv.profile_env)
        env["HOME"] = str(tmp_path)
        client = srv.client()
        for i in range(5):
            client.create_secret(Name=f"page-{i}", SecretString="v")
        done = subprocess.run([aws_cli, "secretsmanager", "list-secrets", "--page-size", "2"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert [e["Name"] for e in json.loads(done.stdout)["SecretList"]] == [f"page-{i}" for i in range(5)]
        done = subprocess.run([aws_cli, "secretsmanager", "list-secrets", "--max-items", "3"],
                              env=env, capture_output=True, text=True, timeout=120)
        page = json.loads(done.stdout)
        assert [e["Name"] for e in page["SecretList"]] == ["page-0", "page-1", "page-2"]
        assert page.get("NextToken")
    finally:
        srv.stop()


def test_text_and_table_output(cli):
    name = unique("cli")
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v")
    text = cli("secretsmanager", "list-secrets", "--filters", f"Key=name,Values={name}", "--query", "SecretList[].Name",
               "--output", "text")
    assert text.stdout.strip() == name
    table = cli("secretsmanager", "describe-secret", "--secret-id", name, "--output", "table")
    assert "DescribeSecret" in table.stdout and name in table.stdout


def test_unknown_secret_prints_aws_error_and_fails(cli):
    done = cli("secretsmanager", "get-secret-value", "--secret-id", unique("missing"), check=False)
    cli_error(done, "ResourceNotFoundException", "GetSecretValue", "Secrets Manager can't find the specified secret.")


def test_existing_name_prints_resource_exists(cli):
    name = unique("cli")
    cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v")
    done = cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "v", check=False)
    cli_error(done, "ResourceExistsException", "CreateSecret", f"The operation failed because the secret {name} already exists.")


def test_invalid_name_prints_validation_error(cli):
    done = cli("secretsmanager", "describe-secret", "--secret-id", "bad name", check=False)
    cli_error(done, "ValidationException", "DescribeSecret",
              "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")


def test_another_hosted_region_with_the_region_flag(cli):
    name = unique("cli")
    created = as_json(cli("secretsmanager", "create-secret", "--region", "eu-west-1", "--name", name, "--secret-string", "v"))
    assert created["ARN"].startswith("arn:aws:secretsmanager:eu-west-1:")
    done = cli("secretsmanager", "describe-secret", "--secret-id", name, check=False)
    cli_error(done, "ResourceNotFoundException", "DescribeSecret", "Secrets Manager can't find the specified secret.")
    assert as_json(cli("secretsmanager", "describe-secret", "--region", "eu-west-1", "--secret-id", name))["Name"] == name


def test_region_not_hosted_prints_invalid_signature(cli):
    done = cli("secretsmanager", "list-secrets", "--region", "ap-south-1", check=False)
    cli_error(done, "InvalidSignatureException", "ListSecrets",
              "Credential should be scoped to a valid region, not 'ap-south-1'. ")


def test_wrong_secret_key_prints_invalid_signature(cli, server):
    key_id, _ = server.access_key
    done = cli("secretsmanager", "list-secrets", check=False,
               extra_env={"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert done.returncode == CLI_ERROR_EXIT
    assert done.stderr.lstrip("\n").startswith(
        "An error occurred (InvalidSignatureException) when calling the ListSecrets operation: "
        "The request signature we calculated does not match the signature you provided."
    ), done.stderr


def test_unknown_access_key_prints_unrecognized_client(cli):
    done = cli("secretsmanager", "list-secrets", check=False,
               extra_env={"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": "x"})
    cli_error(done, "UnrecognizedClientException", "ListSecrets", "The security token included in the request is invalid.")


def test_too_long_name_prints_the_coral_message(cli):
    name = "n" * 513
    done = cli("secretsmanager", "create-secret", "--name", name, check=False)
    cli_error(done, "ValidationException", "CreateSecret",
              f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
              "Member must have length less than or equal to 512")


def test_backup_counts_its_secrets_in_english(fresh_server, tmp_path):
    """`coffer backup` says what it saved: "1 secret", "2 secrets" (not "1 secrets")."""
    from helpers import COFFER_BIN

    sm = fresh_server.client()
    outputs = []
    for n in (1, 2):
        sm.create_secret(Name=unique("backup"), SecretString="v")
        output = tmp_path / f"us-east-1-{n}.cbk"
        done = subprocess.run(
            [COFFER_BIN, "backup", "--data-dir", str(fresh_server.data_dir), "--region", "us-east-1",
             "--output", str(output)],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs == [
        f"backed up 1 secret of us-east-1 to {tmp_path / 'us-east-1-1.cbk'}\n",
        f"backed up 2 secrets of us-east-1 to {tmp_path / 'us-east-1-2.cbk'}\n",
    ]


def test_a_backup_of_the_first_file_format_still_restores(tmp_path):
    """A backup made before backups streamed (file format 1: one seal over one JSON body, made
    by fixtures/backup-format-1/make_fixture.py with an older Coffer) restores into a new data
    directory holding its Region's key, and every secret reads back through boto3."""
    import shutil

    from helpers import COFFER_BIN

    fixture = Path(__file__).resolve().parent / "fixtures" / "backup-format-1"
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True, mode=0o700)
    for name in ("us-east-1.key", "deployment.key"):
        shutil.copy(fixture / name, data / "keys" / name)
        (data / "keys" / name).chmod(0o600)
    done = subprocess.run(
        [COFFER_BIN, "restore", "--data-dir", str(data), "--region", "us-east-1",
         "--input", str(fixture / "us-east-1.cbk")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"restored 4 secrets of us-east-1 from {fixture / 'us-east-1.cbk'}\n"

    server = start_server(data)
    try:
        admin = json.loads((fixture / "admin-key.json").read_text())
        sm = server.client(access_key=(admin["AccessKeyId"], admin["SecretAccessKey"]))
        assert sm.get_secret_value(SecretId="old/string")["SecretString"] == "old string value 2"
        previous = sm.get_secret_value(SecretId="old/string", VersionStage="AWSPREVIOUS")
        assert previous["SecretString"] == "old string value"
        described = sm.describe_secret(SecretId="old/string")
        assert described["Description"] == "made by a format-1 Coffer"
        assert described["Tags"] == [{"Key": "team", "Value": "old"}]
        assert sm.get_secret_value(SecretId="old/binary")["SecretBinary"] == b"\x00\x01old\xff"
        assert sm.get_secret_value(SecretId="old/cmk")["SecretString"] == "under a customer key"
        assert "DeletedDate" in sm.describe_secret(SecretId="old/deleted")
    finally:
        server.stop()
