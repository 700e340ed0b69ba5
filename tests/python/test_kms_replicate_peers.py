"""Multi-Region KMS keys across nodes (issue 4 §3): ReplicateKey from us-west-2 to us-east-1,
where each Region is its own `coffer serve --config` process (see cluster.py), through boto3's
`kms` and `secretsmanager` clients.

The replica in the peer's Region is `Creating` in ReplicateKey's answer and becomes `Enabled`
there once the replication worker has delivered it over the sealed transport; then data
encrypted in one Region decrypts in the other, and a secret's replica can use the same key.
"""

from __future__ import annotations

import json
import os
import subprocess

import boto3
import pytest

from cluster import ACCOUNT_ID, ADMIN_KEY, CLIENT_CONFIG, Cluster, metric, wait_for
from helpers import expect_error, unique

WEST, EAST, EU = "us-west-2", "us-east-1", "eu-west-1"
THREE = {WEST: [WEST], EAST: [EAST], EU: [EU]}


@pytest.fixture
def three(tmp_path):
    c = Cluster(tmp_path / "cluster", THREE).start()
    yield c
    c.close()
    print(c.logs())


def kms_of(cluster: Cluster, region: str):
    return boto3.client(
        "kms",
        region_name=region,
        endpoint_url=cluster.node_of(region).url,
        aws_access_key_id=ADMIN_KEY[0],
        aws_secret_access_key=ADMIN_KEY[1],
        config=CLIENT_CONFIG,
    )


def key_arn(key_id: str, region: str) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{key_id}"


def enabled_in(kms, key_id: str, timeout: float = 20.0) -> dict:
    """The replica's KeyMetadata once its Region has it."""

    def check():
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        return meta if meta["KeyState"] == "Enabled" else None

    return wait_for(check, timeout, interval=0.1, what=f"replica key {key_id} is Enabled")


def in_sync(sm, secret_id: str, region: str, timeout: float = 20.0) -> dict:
    def check():
        for entry in sm.describe_secret(SecretId=secret_id).get("ReplicationStatus", []):
            if entry["Region"] == region and entry["Status"] == "InSync":
                return entry
        return None

    return wait_for(check, timeout, what=f"{region} replica of {secret_id} is InSync")


def test_replica_key_in_a_peer_region_is_creating_then_enabled_and_works_both_ways(three):
    west, east = kms_of(three, WEST), kms_of(three, EAST)
    key_id = west.create_key(MultiRegion=True, Description="global")["KeyMetadata"]["KeyId"]
    assert key_id.startswith("mrk-")

    out = west.replicate_key(
        KeyId=key_id,
        ReplicaRegion=EAST,
        Description="east copy",
        Tags=[{"TagKey": "team", "TagValue": "orders"}],
    )
    replica = out["ReplicaKeyMetadata"]
    # As AWS: the replica is being created; same key id, the ARN of its own Region.
    assert (replica["KeyId"], replica["Arn"]) == (key_id, key_arn(key_id, EAST))
    assert (replica["KeyState"], replica["Enabled"]) == ("Creating", False)
    assert replica["Description"] == "east copy"
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": key_arn(key_id, WEST), "Region": WEST}
    assert out["ReplicaTags"] == [{"TagKey": "team", "TagValue": "orders"}]
    assert json.loads(out["ReplicaPolicy"])["Statement"][0]["Action"] == "kms:*"
    # The primary lists the replica at once.
    primary = west.describe_key(KeyId=key_id)["KeyMetadata"]
    assert primary["MultiRegionConfiguration"]["ReplicaKeys"] == [{"Arn": key_arn(key_id, EAST), "Region": EAST}]

    meta = enabled_in(east, key_id)
    assert meta["Arn"] == key_arn(key_id, EAST) and meta["Enabled"] is True
    assert meta["Description"] == "east copy"
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert meta["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": key_arn(key_id, WEST), "Region": WEST}
    assert east.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "orders"}]

    # Same material in both processes: encrypted in one Region, decrypted in the other.
    blob = west.encrypt(KeyId=key_id, Plaintext=b"from the west", EncryptionContext={"app": "orders"})
    opened = east.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"app": "orders"})
    assert opened["Plaintext"] == b"from the west"
    assert opened["KeyId"] == key_arn(key_id, EAST)
    back = east.encrypt(KeyId=key_arn(key_id, EAST), Plaintext=b"from the east")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=back)["Plaintext"] == b"from the east"
    # Each Region's copy has its own state: disabling the replica stops it there only.
    east.disable_key(KeyId=key_id)
    expect_error(east.decrypt, "DisabledException", f"{key_arn(key_id, EAST)} is disabled.", CiphertextBlob=back)
    assert west.decrypt(CiphertextBlob=back)["Plaintext"] == b"from the east"
    east.enable_key(KeyId=key_id)

    expect_error(
        west.replicate_key,
        "AlreadyExistsException",
        f"Key {key_arn(key_id, WEST)} already has a replica in {EAST}.",
        KeyId=key_id,
        ReplicaRegion=EAST,
    )
    # A replica cannot be replicated; the primary can, to a third process.
    expect_error(east.replicate_key, "UnsupportedOperationException", None, KeyId=key_id, ReplicaRegion=EU)
    eu = kms_of(three, EU)
    expect_error(eu.describe_key, "NotFoundException", None, KeyId=key_id)
    assert west.replicate_key(KeyId=key_id, ReplicaRegion=EU)["ReplicaKeyMetadata"]["KeyState"] == "Creating"
    assert enabled_in(eu, key_id)["Description"] == ""  # AWS does not share descriptions
    assert eu.decrypt(CiphertextBlob=back)["Plaintext"] == b"from the east"
    assert [r["Region"] for r in west.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"]] == [EAST, EU]
    # A Region no node serves is refused in the call.
    response = expect_error(
        west.replicate_key, "UnsupportedOperationException", None, KeyId=key_id, ReplicaRegion="ap-south-1"
    )
    assert "ap-south-1" in response["Error"]["Message"]
    # A single-Region key has no replicas.
    single = west.create_key()["KeyMetadata"]["KeyId"]
    expect_error(west.replicate_key, "UnsupportedOperationException", None, KeyId=single, ReplicaRegion=EAST)
    # Coffer does not rotate a key whose replicas live on other nodes (docs/keys.md): refused,
    # nothing changed.
    before = west.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    expect_error(
        west.rotate_key_on_demand,
        "UnsupportedOperationException",
        f"{key_arn(key_id, WEST)} has a replica in {EAST}, a Region of another Coffer node: Coffer rotates multi-Region keys only when all their replicas are in Regions of this node.",
        KeyId=key_id,
    )
    assert west.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == before
    assert east.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == before
    # The primary, having replicas, waits for them before its waiting period starts (as AWS).
    out = west.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingReplicaDeletion" and "DeletionDate" not in out
    assert east.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_secret_replicated_to_a_peer_uses_the_same_multi_region_key(three):
    west, east = kms_of(three, WEST), kms_of(three, EAST)
    key_id = west.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    west.replicate_key(KeyId=key_id, ReplicaRegion=EAST)
    enabled_in(east, key_id)
    sm_west, sm_east = three.client(WEST), three.client(EAST)

    # By the key's ARN in the replica Region ...
    name = unique()
    sm_west.create_secret(Name=name, SecretString="same key on both sides", KmsKeyId=key_id)
    sm_west.replicate_secret_to_regions(
        SecretId=name, AddReplicaRegions=[{"Region": EAST, "KmsKeyId": key_arn(key_id, EAST)}]
    )
    entry = in_sync(sm_west, name, EAST)
    assert entry["KmsKeyId"] == key_arn(key_id, EAST)
    assert sm_east.get_secret_value(SecretId=name)["SecretString"] == "same key on both sides"
    # ... and by its id, at creation.
    other = unique()
    sm_west.create_secret(
        Name=other,
        SecretString="by key id",
        KmsKeyId=key_id,
        AddReplicaRegions=[{"Region": EAST, "KmsKeyId": key_id}],
    )
    assert in_sync(sm_west, other, EAST)["KmsKeyId"] == key_id
    assert sm_east.get_secret_value(SecretId=other)["SecretString"] == "by key id"

    # The replica really is under us-east-1's copy of the key.
    east.disable_key(KeyId=key_id)
    expect_error(sm_east.get_secret_value, "DecryptionFailure", None, SecretId=name)
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "same key on both sides"
    east.enable_key(KeyId=key_id)
    sm_west.put_secret_value(SecretId=name, SecretString="rotated by hand")
    wait_for(
        lambda: sm_east.get_secret_value(SecretId=name)["SecretString"] == "rotated by hand",
        20,
        what="the new value reaches us-east-1",
    )


def test_replica_key_for_a_peer_that_is_down_is_created_when_it_returns(three):
    west, east = kms_of(three, WEST), kms_of(three, EAST)
    key_id = west.create_key(MultiRegion=True, Description="patient")["KeyMetadata"]["KeyId"]
    blob = west.encrypt(KeyId=key_id, Plaintext=b"written while east was down")["CiphertextBlob"]
    three.nodes[EAST].stop()

    out = west.replicate_key(KeyId=key_id, ReplicaRegion=EAST, Description="patient")
    assert out["ReplicaKeyMetadata"]["KeyState"] == "Creating"
    assert west.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"] == [
        {"Arn": key_arn(key_id, EAST), "Region": EAST}
    ]
    # The delivery fails on the network (and is kept for a retry) while us-east-1 is down.
    wait_for(
        lambda: (metric(three.nodes[WEST].metrics(), "coffer_replication_deliveries_total",
                        source=WEST, destination=EAST, outcome="network_error") or 0) >= 1,
        20,
        what="a failed delivery to the stopped node",
    )
    # Asking again while it is pending is the same AlreadyExists as after.
    expect_error(west.replicate_key, "AlreadyExistsException", None, KeyId=key_id, ReplicaRegion=EAST)

    three.nodes[EAST].start()
    # Backoff between attempts is at most 30 s.
    meta = enabled_in(east, key_id, timeout=60)
    assert meta["Description"] == "patient"
    assert east.decrypt(CiphertextBlob=blob)["Plaintext"] == b"written while east was down"
    # West counts the delivery when East's answer is back, which may be just after East shows
    # the key.
    def created():
        return metric(three.nodes[WEST].metrics(), "coffer_replication_deliveries_total",
                      source=WEST, destination=EAST, outcome="key_created")

    wait_for(created, 10, what="the delivery counted")
    assert created() == 1, created()


def test_readme_commands_through_the_aws_cli(three, tmp_path, aws_cli):
    """docs/replication.md's "A multi-Region key in two processes", as a user types it (one AWS CLI
    profile per Region, each with its node's endpoint)."""
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text(
        "".join(
            f"[profile {r}]\nregion = {r}\nendpoint_url = {three.node_of(r).url}\noutput = json\n\n"
            for r in (WEST, EAST)
        )
    )
    credentials.write_text(
        "".join(
            f"[{r}]\naws_access_key_id = {ADMIN_KEY[0]}\naws_secret_access_key = {ADMIN_KEY[1]}\n\n"
            for r in (WEST, EAST)
        )
    )
    env = {
        **os.environ,
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_MAX_ATTEMPTS": "1",
    }

    def aws(*args: str) -> str:
        done = subprocess.run([aws_cli, *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    key = aws("kms", "create-key", "--multi-region", "--query", "KeyMetadata.KeyId", "--output", "text",
              "--profile", WEST)
    assert key.startswith("mrk-")
    state = aws("kms", "replicate-key", "--key-id", key, "--replica-region", EAST, "--profile", WEST,
                "--query", "ReplicaKeyMetadata.KeyState")
    assert json.loads(state) == "Creating"
    wait_for(
        lambda: json.loads(aws("kms", "describe-key", "--key-id", key, "--profile", EAST,
                               "--query", "KeyMetadata.KeyState")) == "Enabled",
        20,
        interval=0.2,
        what="the replica key is Enabled in us-east-1",
    )
    name = unique()
    aws("secretsmanager", "create-secret", "--name", name, "--secret-string", "t0ken", "--kms-key-id", key,
        "--add-replica-regions", f"Region={EAST},KmsKeyId={key}", "--profile", WEST)
    in_sync(three.client(WEST), name, EAST)
    value = aws("secretsmanager", "get-secret-value", "--secret-id", name, "--profile", EAST,
                "--query", "SecretString", "--output", "text")
    assert value == "t0ken"
