"""The key service (issue 4 §3, spec §7): the KMS API through boto3's `kms` client and the AWS
CLI, and what keys do to the secrets encrypted under them — key states, key policies, a new
KmsKeyId on UpdateSecret, multi-Region keys, and replicas under the destination Region's key."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import time

import pytest

from helpers import (
    ACCOUNT_ID,
    COFFER_BIN,
    DEFAULT_REGION,
    REGIONS,
    create_account,
    expect_error,
    expect_error_matching,
    raw_post,
    service_client,
    start_server,
    unique,
)

EAST, WEST, EAST2 = "us-east-1", "us-west-2", "us-east-2"
ROOT = f"arn:aws:iam::{ACCOUNT_ID}:root"
KMS_DENIED = "Access to KMS is not allowed"


def kms_client(server, region: str = DEFAULT_REGION):
    return service_client(server, "kms", region=region)


@pytest.fixture(scope="module")
def kms(server):
    return kms_client(server)


@pytest.fixture(scope="module")
def kms_unchecked(server):
    """A kms client that sends what botocore would refuse to (AWS's own validation answers)."""
    import boto3
    from botocore.config import Config

    from helpers import CLIENT_CONFIG

    return boto3.client(
        "kms",
        region_name=DEFAULT_REGION,
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key[0],
        aws_secret_access_key=server.access_key[1],
        config=CLIENT_CONFIG.merge(Config(parameter_validation=False)),
    )


def key_arn(key_id: str, region: str = EAST) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{key_id}"


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW_ROOT = {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


def deny_everyone(*actions: str) -> dict:
    return {"Sid": "deny", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": list(actions), "Resource": "*"}


def new_key(kms, **params) -> dict:
    return kms.create_key(Description=params.pop("Description", "test key"), **params)["KeyMetadata"]


# ---------------------------------------------------------------------------------------------
# Keys, aliases, tags


def test_create_key_describes_a_symmetric_customer_key(kms):
    before = time.time()
    meta = new_key(kms, Description="orders", Tags=[{"TagKey": "team", "TagValue": "pay"}])
    assert meta["KeyId"] and len(meta["KeyId"]) == 36
    assert meta["Arn"] == key_arn(meta["KeyId"])
    assert meta["AWSAccountId"] == ACCOUNT_ID
    assert meta["Description"] == "orders"
    assert (meta["Enabled"], meta["KeyState"]) == (True, "Enabled")
    assert (meta["KeyUsage"], meta["KeySpec"], meta["KeyManager"]) == ("ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "CUSTOMER")
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["MultiRegion"] is False
    assert before - 2 <= meta["CreationDate"].timestamp() <= time.time() + 2
    for key_id in (meta["KeyId"], meta["Arn"]):
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"] == meta
    listed = kms.list_keys(Limit=1000)["Keys"]
    assert {"KeyId": meta["KeyId"], "KeyArn": meta["Arn"]} in listed
    assert kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "pay"}]


def test_create_key_refuses_what_coffer_does_not_make(kms):
    expect_error(kms.create_key, "ValidationException", None, KeySpec="RSA_2048")
    expect_error(kms.create_key, "ValidationException", None, KeyUsage="SIGN_VERIFY")
    expect_error(kms.create_key, "MalformedPolicyDocumentException", None, Policy="{not json")


def test_list_keys_pages_with_marker(kms):
    for _ in range(3):
        new_key(kms)
    everything = kms.list_keys(Limit=1000)["Keys"]
    first = kms.list_keys(Limit=2)
    assert first["Truncated"] is True and len(first["Keys"]) == 2
    rest = kms.list_keys(Limit=1000, Marker=first["NextMarker"])
    assert rest["Truncated"] is False and "NextMarker" not in rest
    assert first["Keys"] + rest["Keys"] == everything
    expect_error(kms.list_keys, "InvalidMarkerException", None, Marker="nonsense")


def test_unknown_keys_and_aliases_are_not_found(kms):
    missing = "11111111-2222-3333-4444-555555555555"
    expect_error(kms.describe_key, "NotFoundException", f"Key '{key_arn(missing)}' does not exist", KeyId=missing)
    expect_error(
        kms.describe_key,
        "NotFoundException",
        f"Alias arn:aws:kms:{EAST}:{ACCOUNT_ID}:alias/none-such is not found.",
        KeyId="alias/none-such",
    )
    expect_error(kms.enable_key, "NotFoundException", None, KeyId=missing)


def test_aliases_are_created_listed_repointed_and_deleted(kms):
    one, two = new_key(kms), new_key(kms)
    alias = f"alias/{unique('app')}"
    alias_arn = f"arn:aws:kms:{EAST}:{ACCOUNT_ID}:{alias}"
    kms.create_alias(AliasName=alias, TargetKeyId=one["KeyId"])
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == one["KeyId"]
    assert kms.describe_key(KeyId=alias_arn)["KeyMetadata"]["KeyId"] == one["KeyId"]
    listed = [a for a in kms.list_aliases(Limit=1000)["Aliases"] if a["AliasName"] == alias]
    assert len(listed) == 1
    assert (listed[0]["AliasArn"], listed[0]["TargetKeyId"]) == (alias_arn, one["KeyId"])
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=one["KeyId"])["Aliases"]] == [alias]
    expect_error(
        kms.create_alias,
        "AlreadyExistsException",
        f"An alias with the name {alias_arn} already exists",
        AliasName=alias,
        TargetKeyId=two["KeyId"],
    )

    kms.update_alias(AliasName=alias, TargetKeyId=two["Arn"])
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == two["KeyId"]
    assert kms.list_aliases(KeyId=one["KeyId"])["Aliases"] == []

    kms.delete_alias(AliasName=alias)
    expect_error(kms.describe_key, "NotFoundException", f"Alias {alias_arn} is not found.", KeyId=alias)
    expect_error(kms.delete_alias, "NotFoundException", f"Alias {alias_arn} is not found.", AliasName=alias)
    # The key is not affected by losing its alias.
    assert kms.describe_key(KeyId=two["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_alias_names_are_checked(kms):
    key = new_key(kms)
    expect_error(kms.create_alias, "InvalidAliasNameException", None, AliasName="alias/aws/mine", TargetKeyId=key["KeyId"])
    expect_error(kms.create_alias, "ValidationException", None, AliasName="alias/sp ace", TargetKeyId=key["KeyId"])
    expect_error(kms.delete_alias, "InvalidAliasNameException", None, AliasName="alias/aws/secretsmanager")


def test_tags_are_added_replaced_and_removed(kms):
    key = new_key(kms)["KeyId"]
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}])
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "a", "TagValue": "changed"}])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [
        {"TagKey": "a", "TagValue": "changed"},
        {"TagKey": "b", "TagValue": "2"},
    ]
    kms.untag_resource(KeyId=key, TagKeys=["a", "not-there"])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    expect_error(kms.tag_resource, "TagException", None, KeyId=key, Tags=[{"TagKey": "aws:x", "TagValue": "1"}])


# ---------------------------------------------------------------------------------------------
# Cryptography


def test_encrypt_decrypt_round_trip_with_encryption_context(kms):
    key = new_key(kms)
    context = {"purpose": "test", "tenant": "a"}
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"attack at dawn", EncryptionContext=context)
    assert out["KeyId"] == key["Arn"] and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    assert b"attack at dawn" not in blob
    back = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert (back["Plaintext"], back["KeyId"]) == (b"attack at dawn", key["Arn"])
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=key["Arn"])["Plaintext"] == b"attack at dawn"

    expect_error(kms.decrypt, "InvalidCiphertextException", None, CiphertextBlob=blob, EncryptionContext={"purpose": "other"})
    expect_error(kms.decrypt, "InvalidCiphertextException", None, CiphertextBlob=blob)
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    expect_error(kms.decrypt, "InvalidCiphertextException", None, CiphertextBlob=bytes(tampered), EncryptionContext=context)
    expect_error(kms.decrypt, "InvalidCiphertextException", None, CiphertextBlob=b"not a blob at all")
    other = new_key(kms)
    expect_error(kms.decrypt, "IncorrectKeyException", None, CiphertextBlob=blob, EncryptionContext=context, KeyId=other["KeyId"])
    expect_error(kms.encrypt, "ValidationException", None, KeyId=key["KeyId"], Plaintext=b"x" * 4097)


def test_generate_data_key_and_without_plaintext(kms):
    key = new_key(kms)
    out = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"k": "v"})
    assert len(out["Plaintext"]) == 32 and out["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"] == out["Plaintext"]
    assert len(kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128")["Plaintext"]) == 16
    assert len(kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=64)["Plaintext"]) == 64
    bare = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256")
    assert "Plaintext" not in bare
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 32
    expect_error(kms.generate_data_key, "ValidationException", None, KeyId=key["KeyId"])


def test_disable_and_enable_key(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["Enabled"], meta["KeyState"]) == (False, "Disabled")
    disabled = f"{key['Arn']} is disabled."
    expect_error(kms.encrypt, "DisabledException", disabled, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error(kms.decrypt, "DisabledException", disabled, CiphertextBlob=blob)
    expect_error(kms.generate_data_key, "DisabledException", disabled, KeyId=key["KeyId"], KeySpec="AES_256")
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_schedule_and_cancel_key_deletion(kms):
    key = new_key(kms)
    for days in (6, 31):
        expect_error(kms.schedule_key_deletion, "ValidationException", None, KeyId=key["KeyId"], PendingWindowInDays=days)
    out = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert (out["KeyId"], out["KeyState"], out["PendingWindowInDays"]) == (key["Arn"], "PendingDeletion", 7)
    expected = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)
    assert abs((out["DeletionDate"] - expected).total_seconds()) < 60
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and meta["Enabled"] is False
    assert meta["DeletionDate"] == out["DeletionDate"]
    pending = f"{key['Arn']} is pending deletion."
    expect_error(kms.encrypt, "KMSInvalidStateException", pending, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error(kms.enable_key, "KMSInvalidStateException", pending, KeyId=key["KeyId"])
    expect_error(kms.schedule_key_deletion, "KMSInvalidStateException", pending, KeyId=key["KeyId"])
    alias = f"alias/{unique('doomed')}"
    expect_error(kms.create_alias, "KMSInvalidStateException", pending, AliasName=alias, TargetKeyId=key["KeyId"])

    assert kms.cancel_key_deletion(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Disabled" and "DeletionDate" not in meta
    expect_error(
        kms.cancel_key_deletion, "KMSInvalidStateException", f"{key['Arn']} is not pending deletion.", KeyId=key["KeyId"]
    )
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"] == key["Arn"]


def test_key_policy_default_put_and_enforced(kms):
    key = new_key(kms)
    default = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert default["Statement"] == [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    ]
    expect_error(kms.put_key_policy, "MalformedPolicyDocumentException", None, KeyId=key["KeyId"], PolicyName="default", Policy="{")
    expect_error(kms.get_key_policy, "ValidationException", None, KeyId=key["KeyId"], PolicyName="other")

    denying = policy(ALLOW_ROOT, deny_everyone("kms:Encrypt"))
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=denying)
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"])["Policy"]) == json.loads(denying)
    expect_error_matching(
        kms.encrypt,
        "AccessDeniedException",
        rf"User: arn:aws:iam::{ACCOUNT_ID}:\S+ is not authorized to perform: kms:Encrypt on resource: {key['Arn']} .*",
        KeyId=key["KeyId"],
        Plaintext=b"x",
    )
    # Other actions are still allowed by the root statement.
    kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(ALLOW_ROOT))
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")


def test_aws_managed_secretsmanager_key(kms):
    meta = kms.describe_key(KeyId="alias/aws/secretsmanager")["KeyMetadata"]
    assert meta["KeyManager"] == "AWS" and meta["KeyState"] == "Enabled"
    aliases = kms.list_aliases(KeyId=meta["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/aws/secretsmanager"]
    # Its policy allows use only through Secrets Manager and metadata reads by the account.
    expect_error(kms.encrypt, "AccessDeniedException", None, KeyId="alias/aws/secretsmanager", Plaintext=b"x")
    expect_error(kms.disable_key, "AccessDeniedException", None, KeyId=meta["KeyId"])
    expect_error(kms.schedule_key_deletion, "AccessDeniedException", None, KeyId=meta["KeyId"])
    assert "kms:ViaService" in kms.get_key_policy(KeyId=meta["KeyId"])["Policy"]


def test_kms_through_the_aws_cli(cli, tmp_path):
    created = json.loads(cli("kms", "create-key", "--description", "from the cli").stdout)["KeyMetadata"]
    alias = f"alias/{unique('cli')}"
    cli("kms", "create-alias", "--alias-name", alias, "--target-key-id", created["KeyId"])
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x00\x01 cli bytes")
    blob_b64 = cli(
        "kms", "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plain}", "--query", "CiphertextBlob", "--output", "text"
    ).stdout.strip()
    blob = tmp_path / "blob.bin"
    blob.write_bytes(base64.b64decode(blob_b64))
    back = cli(
        "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--query", "Plaintext", "--output", "text"
    ).stdout.strip()
    assert base64.b64decode(back) == b"\x00\x01 cli bytes"
    listed = json.loads(cli("kms", "list-aliases", "--key-id", created["KeyId"]).stdout)["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]
    failed = cli("kms", "describe-key", "--key-id", "alias/nope-nope", check=False)
    assert failed.returncode != 0 and "NotFoundException" in failed.stderr


# ---------------------------------------------------------------------------------------------
# Secrets under keys


def test_secret_under_a_customer_key(kms, sm):
    key = new_key(kms)
    alias = f"alias/{unique('sec')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    name = unique()
    sm.create_secret(Name=name, SecretString="under my key", KmsKeyId=alias)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "under my key"
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == alias
    # Also by key id and key ARN.
    for key_id in (key["KeyId"], key["Arn"]):
        other = unique()
        sm.create_secret(Name=other, SecretString="v", KmsKeyId=key_id)
        assert sm.get_secret_value(SecretId=other)["SecretString"] == "v"


def test_disabled_or_pending_deletion_key_stops_the_secret(kms, sm):
    key = new_key(kms)
    name = unique()
    sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    expect_error(
        sm.get_secret_value,
        "DecryptionFailure",
        f"Secrets Manager can't decrypt the protected secret text using the provided KMS key: {key['Arn']} is disabled.",
        SecretId=name,
    )
    expect_error(
        sm.put_secret_value,
        "EncryptionFailure",
        f"Secrets Manager can't encrypt the secret value: {key['Arn']} is disabled.",
        SecretId=name,
        SecretString="v2",
    )
    expect_error(sm.create_secret, "EncryptionFailure", None, Name=unique(), SecretString="x", KmsKeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v1"

    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error(
        sm.get_secret_value,
        "DecryptionFailure",
        f"Secrets Manager can't decrypt the protected secret text using the provided KMS key: {key['Arn']} is pending deletion.",
        SecretId=name,
    )
    expect_error(
        sm.put_secret_value,
        "EncryptionFailure",
        f"Secrets Manager can't encrypt the secret value: {key['Arn']} is pending deletion.",
        SecretId=name,
        SecretString="v2",
    )
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    sm.put_secret_value(SecretId=name, SecretString="v2")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v2"


def test_key_policy_denials_for_secret_reads_and_writes(kms, sm):
    key = new_key(kms)
    name = unique()
    sm.create_secret(Name=name, SecretString="guarded", KmsKeyId=key["KeyId"])

    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(ALLOW_ROOT, deny_everyone("kms:Decrypt")))
    expect_error(sm.get_secret_value, "AccessDeniedException", KMS_DENIED, SecretId=name)
    # Writing needs kms:GenerateDataKey only, which is still allowed.
    sm.put_secret_value(SecretId=name, SecretString="written blind")

    kms.put_key_policy(
        KeyId=key["KeyId"], PolicyName="default", Policy=policy(ALLOW_ROOT, deny_everyone("kms:GenerateDataKey"))
    )
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "written blind"
    expect_error(sm.put_secret_value, "AccessDeniedException", KMS_DENIED, SecretId=name, SecretString="nope")
    expect_error(sm.create_secret, "AccessDeniedException", KMS_DENIED, Name=unique(), SecretString="x", KmsKeyId=key["KeyId"])

    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(ALLOW_ROOT))
    sm.put_secret_value(SecretId=name, SecretString="allowed again")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "allowed again"


def test_update_secret_with_a_new_key_reencrypts_the_staged_versions(kms, sm):
    name = unique()
    sm.create_secret(Name=name, SecretString="one")
    sm.put_secret_value(SecretId=name, SecretString="two")
    key = new_key(kms)
    sm.update_secret(SecretId=name, KmsKeyId=key["KeyId"])
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == key["KeyId"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "two"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "one"
    # Both staged versions now depend on the new key alone.
    kms.disable_key(KeyId=key["KeyId"])
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        expect_error(sm.get_secret_value, "DecryptionFailure", None, SecretId=name, VersionStage=stage)
    kms.enable_key(KeyId=key["KeyId"])
    # Back to the default key with KmsKeyId="": the new key is no longer needed.
    sm.update_secret(SecretId=name, KmsKeyId="")
    kms.disable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "two"
    assert "KmsKeyId" not in sm.describe_secret(SecretId=name)


def test_update_secret_needs_decrypt_on_the_old_key(kms, sm):
    old = new_key(kms)
    name = unique()
    sm.create_secret(Name=name, SecretString="s", KmsKeyId=old["KeyId"])
    kms.disable_key(KeyId=old["KeyId"])
    new = new_key(kms)
    expect_error(sm.update_secret, "DecryptionFailure", None, SecretId=name, KmsKeyId=new["KeyId"])
    kms.enable_key(KeyId=old["KeyId"])
    sm.update_secret(SecretId=name, KmsKeyId=new["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "s"


# ---------------------------------------------------------------------------------------------
# Multi-Region keys and replicas


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:  # noqa: BLE001 - not there yet
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def settled(sm, secret_id, region):
    def check():
        for entry in sm.describe_secret(SecretId=secret_id).get("ReplicationStatus", []):
            if entry["Region"] == region and entry["Status"] != "InProgress":
                return entry
        return None

    return wait_for(check)


def test_multi_region_key_replicates_with_the_same_id_and_material(server, kms):
    west = kms_client(server, WEST)
    primary = new_key(kms, MultiRegion=True, Description="global")
    key_id = primary["KeyId"]
    assert key_id.startswith("mrk-") and len(key_id) == 36 and primary["MultiRegion"] is True
    assert primary["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": {"Arn": key_arn(key_id, EAST), "Region": EAST},
        "ReplicaKeys": [],
    }
    out = kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    replica = out["ReplicaKeyMetadata"]
    assert (replica["KeyId"], replica["Arn"]) == (key_id, key_arn(key_id, WEST))
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": key_arn(key_id, EAST), "Region": EAST}
    assert west.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"] == key_arn(key_id, WEST)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"] == [
        {"Arn": key_arn(key_id, WEST), "Region": WEST}
    ]
    # Same material: encrypted in one Region, decrypted in the other.
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"everywhere", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"everywhere"
    back = west.encrypt(KeyId=key_id, Plaintext=b"back east")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=back)["Plaintext"] == b"back east"

    expect_error(kms.replicate_key, "AlreadyExistsException", None, KeyId=key_id, ReplicaRegion=WEST)
    expect_error(west.replicate_key, "UnsupportedOperationException", None, KeyId=key_id, ReplicaRegion=EAST2)
    single = new_key(kms)
    expect_error(kms.replicate_key, "UnsupportedOperationException", None, KeyId=single["KeyId"], ReplicaRegion=WEST)
    expect_error(kms.replicate_key, "UnsupportedOperationException", None, KeyId=key_id, ReplicaRegion="ap-south-1")


def test_secret_replica_uses_the_same_multi_region_key(server, kms, sm):
    key_id = new_key(kms, MultiRegion=True)["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    name = unique()
    sm.create_secret(
        Name=name,
        SecretString="same key on both sides",
        KmsKeyId=key_id,
        AddReplicaRegions=[{"Region": WEST, "KmsKeyId": key_id}],
    )
    entry = settled(sm, name, WEST)
    assert entry["Status"] == "InSync", entry
    assert entry["KmsKeyId"] == key_id
    west_sm = server.client(WEST)
    assert west_sm.get_secret_value(SecretId=name)["SecretString"] == "same key on both sides"
    # The replica really is under the West copy of the key.
    west = kms_client(server, WEST)
    west.disable_key(KeyId=key_id)
    expect_error(west_sm.get_secret_value, "DecryptionFailure", None, SecretId=name)
    west.enable_key(KeyId=key_id)
    assert west_sm.get_secret_value(SecretId=name)["SecretString"] == "same key on both sides"


def test_replica_fails_on_the_destination_key_policy_and_retry_succeeds(server, kms, sm):
    east2 = kms_client(server, EAST2)
    dest = new_key(east2, Policy=policy(ALLOW_ROOT, deny_everyone("kms:GenerateDataKey")))
    name = unique()
    sm.create_secret(Name=name, SecretString="to be replicated")
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": EAST2, "KmsKeyId": dest["KeyId"]}])
    entry = settled(sm, name, EAST2)
    assert entry["Status"] == "Failed", entry
    assert "kms:GenerateDataKey" in entry["StatusMessage"], entry
    assert dest["Arn"] in entry["StatusMessage"], entry

    east2.put_key_policy(KeyId=dest["KeyId"], PolicyName="default", Policy=policy(ALLOW_ROOT))
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": EAST2, "KmsKeyId": dest["KeyId"]}])
    entry = settled(sm, name, EAST2)
    assert entry["Status"] == "InSync", entry
    assert server.client(EAST2).get_secret_value(SecretId=name)["SecretString"] == "to be replicated"


def test_replica_fails_when_the_primarys_key_denies_decrypt_and_retry_succeeds(server, kms, sm):
    # The source-side mirror of the destination check: the worker (the account root) must be
    # able to read the values at the primary; a denial is a Failed replica naming kms:Decrypt,
    # not an endless internal retry.
    key = new_key(kms, Policy=policy(ALLOW_ROOT, deny_everyone("kms:Decrypt")))
    name = unique()
    sm.create_secret(Name=name, SecretString="unreadable here", KmsKeyId=key["KeyId"])
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": EAST2}])
    entry = settled(sm, name, EAST2)
    assert entry["Status"] == "Failed", entry
    assert entry["StatusMessage"].startswith("Replication failed: Access to KMS is not allowed: "), entry
    assert f"kms:Decrypt on resource: {key['Arn']}" in entry["StatusMessage"], entry
    expect_error(server.client(EAST2).get_secret_value, "ResourceNotFoundException", None, SecretId=name)

    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(ALLOW_ROOT))
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": EAST2}])
    entry = settled(sm, name, EAST2)
    assert entry["Status"] == "InSync", entry
    assert server.client(EAST2).get_secret_value(SecretId=name)["SecretString"] == "unreadable here"


def test_replica_fails_on_a_disabled_destination_key(server, kms, sm):
    east2 = kms_client(server, EAST2)
    dest = new_key(east2)
    east2.disable_key(KeyId=dest["KeyId"])
    name = unique()
    sm.create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": EAST2, "KmsKeyId": dest["KeyId"]}])
    entry = settled(sm, name, EAST2)
    assert entry["Status"] == "Failed", entry
    assert f"{dest['Arn']} is disabled." in entry["StatusMessage"], entry


# ---------------------------------------------------------------------------------------------
# Root keys (issue 4 §4): from the environment, and rotation while the server runs


def rotate_root_key(data_dir, *extra: str) -> str:
    done = subprocess.run(
        [COFFER_BIN, "rotate-root-key", "--data-dir", str(data_dir), "--region", EAST, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_root_key_rotation_while_the_server_runs(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        kms, sm = kms_client(srv), srv.client(EAST)
        key = new_key(kms)
        sm.create_secret(Name="under-customer-key", SecretString="c", KmsKeyId=key["KeyId"])
        sm.create_secret(Name="under-default-key", SecretString="d")
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"kept")["CiphertextBlob"]
        key_file = data / "keys" / f"{EAST}.key"
        before = key_file.read_text()

        out = rotate_root_key(data)
        assert "re-wrapped 2 KMS keys" in out, out
        after = key_file.read_text()
        assert after != before and len(after.strip()) == 64
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        retired = list((data / "keys").glob(f"{EAST}.key.old-*"))
        assert [p.read_text() for p in retired] == [before]

        time.sleep(1.2)  # the server's cached key state expires
        assert sm.get_secret_value(SecretId="under-customer-key")["SecretString"] == "c"
        assert sm.get_secret_value(SecretId="under-default-key")["SecretString"] == "d"
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"
        later = new_key(kms)
        sm.create_secret(Name="after-rotation", SecretString="a", KmsKeyId=later["KeyId"])
    finally:
        srv.stop()

    # Everything is under the new key now: the old one can go.
    assert "re-wrapped 0 KMS keys" in rotate_root_key(data, "--rewrap-only")
    for p in retired:
        p.unlink()
    srv = start_server(data)
    try:
        sm = srv.client(EAST)
        for name, value in (("under-customer-key", "c"), ("under-default-key", "d"), ("after-rotation", "a")):
            assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    finally:
        srv.stop()


def test_root_key_from_the_environment(tmp_path, monkeypatch):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        srv.client(EAST).create_secret(Name="env", SecretString="from env")
    finally:
        srv.stop()
    key_file = data / "keys" / f"{EAST}.key"
    hex_key = key_file.read_text().strip()
    key_file.rename(tmp_path / "kept-elsewhere.key")

    # A wrong key is refused at start, naming the variable's Region and changing nothing.
    wrong = subprocess.run(
        [COFFER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--regions", ",".join(REGIONS)],
        env={**os.environ, "COFFER_ROOT_KEY_US_EAST_1": "ab" * 32},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode != 0 and "does not open the KMS keys stored for Region us-east-1" in wrong.stderr, wrong.stderr

    monkeypatch.setenv("COFFER_ROOT_KEY_US_EAST_1", hex_key)
    srv = start_server(data)
    try:
        assert srv.client(EAST).get_secret_value(SecretId="env")["SecretString"] == "from env"
        assert not key_file.exists(), "no key file is written when the key comes from the environment"
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Other principals: IAM users of the account, and another account


def iam_client(server):
    return service_client(server, "iam")


def test_an_iam_user_needs_kms_permissions_for_a_customer_key(server, kms, sm):
    iam = iam_client(server)
    user = unique("kmsuser")
    iam.create_user(UserName=user)
    only_sm = policy({"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"})
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=only_sm)
    access = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = server.client(EAST, access_key=(access["AccessKeyId"], access["SecretAccessKey"]))
    time.sleep(0.2)

    key = new_key(kms)
    under_key, under_default = unique(), unique()
    sm.create_secret(Name=under_key, SecretString="k", KmsKeyId=key["KeyId"])
    sm.create_secret(Name=under_default, SecretString="d")
    # aws/secretsmanager lets every principal of the account use it through Secrets Manager.
    assert as_user.get_secret_value(SecretId=under_default)["SecretString"] == "d"
    # A customer key's default policy delegates to IAM: the user's policy has no kms:Decrypt.
    expect_error(as_user.get_secret_value, "AccessDeniedException", KMS_DENIED, SecretId=under_key)
    expect_error(as_user.put_secret_value, "AccessDeniedException", KMS_DENIED, SecretId=under_key, SecretString="x")

    with_decrypt = policy(
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key["Arn"]},
    )
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=with_decrypt)
    time.sleep(0.2)
    assert as_user.get_secret_value(SecretId=under_key)["SecretString"] == "k"
    expect_error(as_user.put_secret_value, "AccessDeniedException", KMS_DENIED, SecretId=under_key, SecretString="x")


@pytest.fixture(scope="module")
def account_b(server):
    account, key = create_account(server)
    return account, server.client(EAST, access_key=key)


def test_another_account_reads_a_secret_under_a_customer_key_its_policy_allows(kms, sm, account_b):
    account, other = account_b
    other_root = f"arn:aws:iam::{account}:root"
    key = new_key(kms)
    name = unique()
    arn = sm.create_secret(Name=name, SecretString="shared", KmsKeyId=key["Arn"])["ARN"]
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=policy(
            {"Effect": "Allow", "Principal": {"AWS": other_root}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
        ),
    )
    # The key's default policy knows only its own account.
    expect_error(other.get_secret_value, "AccessDeniedException", KMS_DENIED, SecretId=arn)
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=policy(
            ALLOW_ROOT,
            {"Effect": "Allow", "Principal": {"AWS": other_root}, "Action": "kms:Decrypt", "Resource": "*"},
        ),
    )
    assert other.get_secret_value(SecretId=arn)["SecretString"] == "shared"


# ---------------------------------------------------------------------------------------------
# AWS's answers, as recorded on AWS (LocalStack's tests/aws/services/kms snapshots)


def test_kms_errors_carry_their_text_in_the_lowercase_message_member(kms):
    missing = "11111111-2222-3333-4444-555555555555"
    response = expect_error(kms.describe_key, "NotFoundException", None, KeyId=missing)
    # boto3 fills the modelled `message` member only from a `message` key of the body.
    assert response["message"] == f"Key '{key_arn(missing)}' does not exist"


def test_kms_errors_are_sent_with_a_lowercase_message_key(server):
    answer = raw_post(
        server,
        None,
        {"KeyId": "11111111-2222-3333-4444-555555555555"},
        extra_headers={"X-Amz-Target": "TrentService.DescribeKey"},
        service="kms",
    )
    assert answer.status_code == 400
    assert set(answer.json()) == {"__type", "message"}


def is_material_id(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def test_create_and_describe_key_show_the_current_key_material_id(kms):
    meta = new_key(kms)
    assert is_material_id(meta["CurrentKeyMaterialId"])
    assert kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == meta["CurrentKeyMaterialId"]
    assert is_material_id(kms.describe_key(KeyId="alias/aws/secretsmanager")["KeyMetadata"]["CurrentKeyMaterialId"])


def test_decrypt_answers_the_key_material_id_it_used(kms):
    meta = new_key(kms)
    blob = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyMaterialId"] == meta["CurrentKeyMaterialId"]


def test_an_alias_name_without_the_alias_prefix_is_a_validation_error(kms):
    key = new_key(kms)
    expect_error(
        kms.create_alias,
        "ValidationException",
        'Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html',
        AliasName="no-prefix",
        TargetKeyId=key["KeyId"],
    )


def test_tags_beginning_with_aws_in_any_case_are_reserved(kms):
    reserved = "Tags beginning with aws: are reserved"
    for key in ("aws:key1", "AWS:key1", "Aws:x"):
        response = expect_error(kms.create_key, "TagException", reserved, Tags=[{"TagKey": key, "TagValue": "v"}])
        assert response["message"] == reserved
    key_id = new_key(kms)["KeyId"]
    expect_error(kms.tag_resource, "TagException", reserved, KeyId=key_id, Tags=[{"TagKey": "AWS:key1", "TagValue": "v"}])


def test_more_than_fifty_tags_are_too_many(kms):
    tags = [{"TagKey": f"key{i}", "TagValue": f"value{i}"} for i in range(51)]
    expect_error(kms.create_key, "TagException", "Too many tags", Tags=tags)
    key_id = new_key(kms, Tags=tags[:50])["KeyId"]
    expect_error(kms.tag_resource, "TagException", "Too many tags", KeyId=key_id, Tags=[{"TagKey": "one-more", "TagValue": "v"}])


def test_duplicate_tag_keys_are_refused(kms):
    key_id = new_key(kms)["KeyId"]
    tags = [{"TagKey": "tag1", "TagValue": "value1"}, {"TagKey": "tag1", "TagValue": "another-value1"}]
    expect_error(kms.tag_resource, "TagException", "Duplicate tag keys", KeyId=key_id, Tags=tags)
    expect_error(kms.create_key, "TagException", "Duplicate tag keys", Tags=tags)


def test_overlong_tag_keys_and_values_are_validation_errors_naming_the_tag(kms):
    long_key, long_value = "a" * 129, "v" * 257
    expect_error(
        kms.create_key,
        "ValidationException",
        f"1 validation error detected: Value '{long_key}' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128",
        Tags=[{"TagKey": long_key, "TagValue": "value1"}],
    )
    expect_error(
        kms.create_key,
        "ValidationException",
        f"1 validation error detected: Value '{long_value}' at 'tags.2.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256",
        Tags=[{"TagKey": "fine", "TagValue": "x"}, {"TagKey": "tag", "TagValue": long_value}],
    )


def test_identifiers_that_are_not_key_ids_are_invalid_key_ids(kms):
    for bad in ("fake-key-id", "mrk-fake-key-id", "134f2428cec14b25a1ae9048164dba47"):
        expect_error(kms.describe_key, "NotFoundException", f"Invalid keyId '{bad}'", KeyId=bad)
    # Well-formed ids of keys that do not exist are another answer.
    mrk = "mrk-d3b95762d3b95762d3b95762d3b95762"
    expect_error(kms.describe_key, "NotFoundException", f"Key '{key_arn(mrk)}' does not exist", KeyId=mrk)


def test_an_arn_of_another_region_is_an_invalid_arn_naming_that_region(kms):
    key = new_key(kms)
    expect_error(kms.describe_key, "NotFoundException", f"Invalid arn {WEST}", KeyId=key_arn(key["KeyId"], WEST))


def test_encrypting_more_than_4096_bytes_names_the_upper_bound(kms):
    key_id = new_key(kms)["KeyId"]
    expect_error(
        kms.encrypt,
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096",
        KeyId=key_id,
        Plaintext=b"x" * 4097,
    )


def test_enable_key_takes_a_key_id_or_arn_not_an_alias(kms):
    key = new_key(kms)
    alias = f"alias/{unique('named')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    expect_error(kms.enable_key, "NotFoundException", f"Invalid keyId '{alias}'", KeyId=alias)
    alias_arn = f"arn:aws:kms:{EAST}:{ACCOUNT_ID}:{alias}"
    expect_error(kms.enable_key, "NotFoundException", f"Invalid keyId '{alias_arn}'", KeyId=alias_arn)
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key["Arn"])
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyState"] == "Enabled"


def test_replicate_key_answers_the_replica_creating_without_the_primarys_description(server, kms):
    west = kms_client(server, WEST)
    key_id = new_key(kms, MultiRegion=True, Description="test replicated key")["KeyId"]
    out = kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    replica = out["ReplicaKeyMetadata"]
    assert (replica["KeyState"], replica["Enabled"], replica["Description"]) == ("Creating", False, "")
    assert "ReplicaTags" not in out and "CurrentKeyMaterialId" not in replica
    assert json.loads(out["ReplicaPolicy"])["Id"] == "key-default-1"
    described = wait_for(lambda: (m := west.describe_key(KeyId=key_id)["KeyMetadata"])["KeyState"] == "Enabled" and m)
    assert described["Description"] == ""
    # Same material on both sides: the same material id.
    assert described["CurrentKeyMaterialId"] == kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    tagged = new_key(kms, MultiRegion=True)["KeyId"]
    out = kms.replicate_key(KeyId=tagged, ReplicaRegion=WEST, Description="west copy", Tags=[{"TagKey": "t", "TagValue": "v"}])
    assert out["ReplicaTags"] == [{"TagKey": "t", "TagValue": "v"}]
    assert out["ReplicaKeyMetadata"]["Description"] == "west copy"


def test_a_replica_key_is_not_a_multi_region_primary_key(server, kms):
    west = kms_client(server, WEST)
    key_id = new_key(kms, MultiRegion=True)["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    expect_error(
        west.replicate_key,
        "UnsupportedOperationException",
        f"{key_arn(key_id, WEST)} is not a multi-region primary key.",
        KeyId=key_id,
        ReplicaRegion=EAST2,
    )


def test_deleting_a_primary_with_replicas_waits_for_them_in_pending_replica_deletion(server, kms):
    key_id = new_key(kms, MultiRegion=True)["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    out = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert (out["KeyId"], out["KeyState"], out["PendingWindowInDays"]) == (key_arn(key_id), "PendingReplicaDeletion", 7)
    assert "DeletionDate" not in out
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingReplicaDeletion", False) and "DeletionDate" not in meta
    expect_error(kms.encrypt, "KMSInvalidStateException", f"{key_arn(key_id)} is pending deletion.", KeyId=key_id, Plaintext=b"x")
    # The replica is untouched and usable.
    west = kms_client(server, WEST)
    assert west.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    west.encrypt(KeyId=key_id, Plaintext=b"still fine")
    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == key_arn(key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


# ---------------------------------------------------------------------------------------------
# Key rotation, descriptions, random bytes


def test_key_rotation_is_off_until_enabled_with_a_period(kms, kms_unchecked):
    key = new_key(kms)
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert (status["KeyId"], status["KeyRotationEnabled"]) == (key["Arn"], False)
    assert "RotationPeriodInDays" not in status and "NextRotationDate" not in status
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key["Arn"])
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 90)
    expected = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90)
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 60
    kms.enable_key_rotation(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["RotationPeriodInDays"] == 365
    kms.disable_key_rotation(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    for days, bound in ((89, "greater than or equal to 90"), (2561, "less than or equal to 2560")):
        expect_error(
            kms_unchecked.enable_key_rotation,
            "ValidationException",
            f"1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value {bound}",
            KeyId=key["KeyId"],
            RotationPeriodInDays=days,
        )
    kms.disable_key(KeyId=key["KeyId"])
    expect_error(kms.enable_key_rotation, "DisabledException", f"{key['Arn']} is disabled.", KeyId=key["KeyId"])
    # The aws/secretsmanager key rotates every year, always.
    managed = kms.get_key_rotation_status(KeyId=kms.describe_key(KeyId="alias/aws/secretsmanager")["KeyMetadata"]["KeyId"])
    assert (managed["KeyRotationEnabled"], managed["RotationPeriodInDays"]) == (True, 365)


def test_rotating_a_key_on_demand_changes_its_material_and_old_ciphertexts_still_decrypt(kms, sm):
    key = new_key(kms)
    before = key["CurrentKeyMaterialId"]
    old_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before", EncryptionContext={"k": "v"})["CiphertextBlob"]
    name = unique()
    sm.create_secret(Name=name, SecretString="sealed before the rotation", KmsKeyId=key["KeyId"])

    assert kms.rotate_key_on_demand(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    after = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert is_material_id(after) and after != before
    old = kms.decrypt(CiphertextBlob=old_blob, EncryptionContext={"k": "v"})
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"before", before)
    new_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == after
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "sealed before the rotation"
    sm.put_secret_value(SecretId=name, SecretString="sealed after")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "sealed after"
    # An altered blob is still refused.
    expect_error(kms.decrypt, "InvalidCiphertextException", "", CiphertextBlob=old_blob + b"bad_data", EncryptionContext={"k": "v"})

    rotations = kms.list_key_rotations(KeyId=key["KeyId"])
    assert rotations["Truncated"] is False
    [rotation] = rotations["Rotations"]
    assert (rotation["KeyId"], rotation["KeyMaterialId"], rotation["RotationType"]) == (key["Arn"], after, "ON_DEMAND")
    assert abs(rotation["RotationDate"].timestamp() - time.time()) < 60
    # On-demand rotation leaves the automatic setting as it was.
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False


def test_on_demand_rotations_are_limited_to_ten_per_key(kms):
    key = new_key(kms)
    for _ in range(10):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    expect_error(
        kms.rotate_key_on_demand,
        "LimitExceededException",
        "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: "
        + key["Arn"],
        KeyId=key["KeyId"],
    )
    first = kms.list_key_rotations(KeyId=key["KeyId"], Limit=4)
    assert len(first["Rotations"]) == 4 and first["Truncated"] is True
    rest = kms.list_key_rotations(KeyId=key["KeyId"], Marker=first["NextMarker"])
    assert len(rest["Rotations"]) == 6 and rest["Truncated"] is False
    ids = [r["KeyMaterialId"] for r in first["Rotations"] + rest["Rotations"]]
    assert len(set(ids)) == 10 and ids[-1] == kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]


def test_rotate_key_on_demand_refuses_disabled_and_unknown_keys(kms):
    key = new_key(kms)
    kms.disable_key(KeyId=key["KeyId"])
    expect_error(kms.rotate_key_on_demand, "DisabledException", f"{key['Arn']} is disabled.", KeyId=key["KeyId"])
    missing = "11111111-2222-3333-4444-555555555555"
    expect_error(kms.rotate_key_on_demand, "NotFoundException", f"Key '{key_arn(missing)}' does not exist", KeyId=missing)


def test_rotating_a_multi_region_primary_rotates_its_replica_too(server, kms):
    west = kms_client(server, WEST)
    key_id = new_key(kms, MultiRegion=True)["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    old = kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key_id)
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert west.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == current
    new = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=new)["Plaintext"] == b"new"
    assert west.decrypt(CiphertextBlob=old)["Plaintext"] == b"old"
    expect_error(
        west.rotate_key_on_demand,
        "UnsupportedOperationException",
        f"{key_arn(key_id, WEST)} is a multi-Region replica key: rotate its primary key.",
        KeyId=key_id,
    )


def test_update_key_description_replaces_it(kms):
    key = new_key(kms, Description="old_description")
    kms.update_key_description(KeyId=key["KeyId"], Description="new_description")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "new_description"
    kms.update_key_description(KeyId=key["Arn"], Description="")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == ""
    expect_error(kms.update_key_description, "ValidationException", None, KeyId=key["KeyId"], Description="d" * 8193)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error(
        kms.update_key_description, "KMSInvalidStateException", f"{key['Arn']} is pending deletion.", KeyId=key["KeyId"], Description="x"
    )


def test_generate_random_gives_the_bytes_asked_for(kms, kms_unchecked):
    for n in (1, 12, 1024):
        assert len(kms.generate_random(NumberOfBytes=n)["Plaintext"]) == n
    assert kms.generate_random(NumberOfBytes=32)["Plaintext"] != kms.generate_random(NumberOfBytes=32)["Plaintext"]
    expect_error(kms.generate_random, "ValidationException", "NumberOfBytes is required.")
    for n, bound in ((0, "greater than or equal to 1"), (1025, "less than or equal to 1024")):
        expect_error(
            kms_unchecked.generate_random,
            "ValidationException",
            f"1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value {bound}",
            NumberOfBytes=n,
        )


def test_rotation_description_and_random_through_the_aws_cli(cli):
    key = json.loads(cli("kms", "create-key", "--description", "cli rotation").stdout)["KeyMetadata"]
    cli("kms", "enable-key-rotation", "--key-id", key["KeyId"], "--rotation-period-in-days", "180")
    status = json.loads(cli("kms", "get-key-rotation-status", "--key-id", key["KeyId"]).stdout)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 180)
    cli("kms", "disable-key-rotation", "--key-id", key["KeyId"])
    assert json.loads(cli("kms", "get-key-rotation-status", "--key-id", key["KeyId"]).stdout)["KeyRotationEnabled"] is False
    rotated = json.loads(cli("kms", "rotate-key-on-demand", "--key-id", key["KeyId"]).stdout)
    assert rotated == {"KeyId": key["Arn"]}
    listed = json.loads(cli("kms", "list-key-rotations", "--key-id", key["KeyId"]).stdout)["Rotations"]
    assert [r["RotationType"] for r in listed] == ["ON_DEMAND"]
    described = json.loads(cli("kms", "describe-key", "--key-id", key["KeyId"]).stdout)["KeyMetadata"]
    assert described["CurrentKeyMaterialId"] == listed[0]["KeyMaterialId"] != key["CurrentKeyMaterialId"]
    cli("kms", "update-key-description", "--key-id", key["KeyId"], "--description", "renamed")
    assert json.loads(cli("kms", "describe-key", "--key-id", key["KeyId"]).stdout)["KeyMetadata"]["Description"] == "renamed"
    random = cli("kms", "generate-random", "--number-of-bytes", "48", "--query", "Plaintext", "--output", "text").stdout.strip()
    assert len(base64.b64decode(random)) == 48
    failed = cli("kms", "enable-key", "--key-id", "alias/whatever", check=False)
    assert failed.returncode != 0 and "Invalid keyId 'alias/whatever'" in failed.stderr


def test_operations_coffer_does_not_implement_answer_a_clear_error(kms):
    key_id = new_key(kms)["KeyId"]
    for call, params, op in (
        (kms.create_grant, {"KeyId": key_id, "GranteePrincipal": ROOT, "Operations": ["Decrypt"]}, "CreateGrant"),
        (kms.get_public_key, {"KeyId": key_id}, "GetPublicKey"),
        (kms.list_key_policies, {"KeyId": key_id}, "ListKeyPolicies"),
    ):
        expect_error(call, "UnknownOperationException", f"Operation {op} is not supported by Coffer's KMS.", **params)
