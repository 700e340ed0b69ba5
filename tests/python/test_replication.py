"""Multi-Region replication (spec §5, and the replica rules of §4 and §4.10): replicas that
follow their primary, are read-only, can be removed or promoted, and the errors around them."""

import json
import re
import time

import pytest

from helpers import MARKED_FOR_DELETION, NOT_FOUND, body_keys, expect_error, midnight_utc_today, start_server, unique

PRIMARY, REPLICA, OTHER = "us-east-1", "us-west-2", "eu-west-1"
REPLICA_READ_ONLY = "Operation not permitted on a replica secret. Call must be made in primary secret's region."
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


def wait_for(check, timeout=15.0, interval=0.05):
    """Polls until `check()` returns something truthy (replication is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:  # noqa: BLE001 - not there yet
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check.__doc__ or check}")
        time.sleep(interval)


def settled(client, secret_id, region):
    """The primary's ReplicationStatus entry for `region` once it left InProgress."""

    def check():
        for entry in client.describe_secret(SecretId=secret_id).get("ReplicationStatus", []):
            if entry["Region"] == region and entry["Status"] != "InProgress":
                return entry
        return None

    return wait_for(check)


def in_sync(client, secret_id, region):
    entry = settled(client, secret_id, region)
    assert entry["Status"] == "InSync", entry
    return entry


@pytest.fixture
def east(server):
    return server.client(PRIMARY)


@pytest.fixture
def west(server):
    return server.client(REPLICA)


@pytest.fixture
def europe(server):
    return server.client(OTHER)


@pytest.fixture
def replicated(east, name):
    """A primary in us-east-1 with an in-sync replica in us-west-2."""
    created = east.create_secret(Name=name, SecretString="replicated value", AddReplicaRegions=[{"Region": REPLICA}])
    in_sync(east, name, REPLICA)
    return created


def replica_arn(primary_arn, region=REPLICA):
    return primary_arn.replace(f":{PRIMARY}:", f":{region}:", 1)


# --- Creating replicas --------------------------------------------------------------------


def test_create_secret_with_replica_regions_answers_with_the_replication_status(east, name):
    created = east.create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": REPLICA}])
    assert body_keys(created) == {"ARN", "Name", "VersionId", "ReplicationStatus"}
    [entry] = created["ReplicationStatus"]
    assert entry["Region"] == REPLICA
    assert entry["KmsKeyId"] == "alias/aws/secretsmanager"
    assert entry["Status"] in ("InProgress", "InSync")
    if entry["Status"] == "InProgress":
        assert "StatusMessage" not in entry


def test_replica_becomes_in_sync_with_replication_succeeded(east, replicated, name):
    entry = in_sync(east, name, REPLICA)
    assert entry["StatusMessage"] == "Replication succeeded"
    assert entry["KmsKeyId"] == "alias/aws/secretsmanager"


def test_replica_has_the_same_name_suffix_value_and_version_id(west, replicated, name):
    got = west.get_secret_value(SecretId=name)
    assert got["ARN"] == replica_arn(replicated["ARN"])
    assert got["Name"] == name
    assert got["SecretString"] == "replicated value"
    assert got["VersionId"] == replicated["VersionId"]
    assert got["VersionStages"] == ["AWSCURRENT"]
    assert west.get_secret_value(SecretId=replica_arn(replicated["ARN"]))["SecretString"] == "replicated value"


def test_primary_describes_its_region_and_replicas_and_the_replica_names_its_primary(east, west, replicated, name):
    primary = east.describe_secret(SecretId=name)
    assert primary["PrimaryRegion"] == PRIMARY
    assert [e["Region"] for e in primary["ReplicationStatus"]] == [REPLICA]
    replica = west.describe_secret(SecretId=name)
    assert replica["ARN"] == replica_arn(replicated["ARN"])
    assert replica["PrimaryRegion"] == PRIMARY
    assert "ReplicationStatus" not in replica
    assert replica["VersionIdsToStages"] == {replicated["VersionId"]: ["AWSCURRENT"]}


def test_list_secrets_shows_primary_region_on_primary_and_replica_but_no_replication_status(east, west, replicated, name):
    for client in (east, west):
        [entry] = client.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
        assert entry["PrimaryRegion"] == PRIMARY
        assert "ReplicationStatus" not in entry


def test_plain_secrets_have_neither_primary_region_nor_replication_status(east, secret, name):
    described = east.describe_secret(SecretId=name)
    assert "PrimaryRegion" not in described and "ReplicationStatus" not in described


def test_primary_region_filter_matches_replicated_secrets_only(east, west, replicated, name):
    plain = unique()
    east.create_secret(Name=plain, SecretString="v")
    prefix = [{"Key": "name", "Values": [name, plain]}]
    found = east.list_secrets(Filters=prefix + [{"Key": "primary-region", "Values": ["us-east"]}])["SecretList"]
    assert [e["Name"] for e in found] == [name]
    found = west.list_secrets(Filters=[{"Key": "name", "Values": [name]}, {"Key": "primary-region", "Values": [PRIMARY]}])
    assert [e["Name"] for e in found["SecretList"]] == [name]


def test_replicate_secret_to_regions_adds_a_replica_and_lists_every_replica(east, europe, replicated, name):
    answer = east.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": OTHER}])
    assert body_keys(answer) == {"ARN", "ReplicationStatus"}
    assert answer["ARN"] == replicated["ARN"]
    assert [e["Region"] for e in answer["ReplicationStatus"]] == [REPLICA, OTHER]
    in_sync(east, name, OTHER)
    assert europe.get_secret_value(SecretId=name)["SecretString"] == "replicated value"
    assert europe.describe_secret(SecretId=name)["ARN"] == replica_arn(replicated["ARN"], OTHER)


def test_replicating_an_existing_secret_copies_every_labelled_version(east, west, name):
    v1 = east.create_secret(Name=name, SecretString="one")["VersionId"]
    v2 = east.put_secret_value(SecretId=name, SecretString="two")["VersionId"]
    east.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": REPLICA}])
    in_sync(east, name, REPLICA)
    stages = west.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
    assert west.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "one"


# --- Keeping replicas in sync -------------------------------------------------------------


def test_a_new_value_on_the_primary_reaches_the_replica(east, west, replicated, name):
    put = east.put_secret_value(SecretId=name, SecretString="second value")

    def replica_has_it():
        got = west.get_secret_value(SecretId=name)
        return got if got["VersionId"] == put["VersionId"] else None

    got = wait_for(replica_has_it)
    assert got["SecretString"] == "second value"
    assert west.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["VersionId"] == replicated["VersionId"]


def test_description_tags_and_policy_changes_reach_the_replica(east, west, replicated, name):
    east.update_secret(SecretId=name, Description="now described")
    east.tag_resource(SecretId=name, Tags=[{"Key": "team", "Value": "core"}])
    east.put_resource_policy(SecretId=name, ResourcePolicy=POLICY)

    def replica_caught_up():
        d = west.describe_secret(SecretId=name)
        return d if d.get("Description") == "now described" and d.get("Tags") == [{"Key": "team", "Value": "core"}] else None

    wait_for(replica_caught_up)
    policy = wait_for(lambda: west.get_resource_policy(SecretId=name).get("ResourcePolicy"))
    assert json.loads(policy) == json.loads(POLICY)


def test_a_replica_read_shows_up_in_the_primarys_replication_status(east, west, replicated, name):
    west.get_secret_value(SecretId=name)

    def accessed():
        [entry] = east.describe_secret(SecretId=name)["ReplicationStatus"]
        return entry.get("LastAccessedDate")

    # Day resolution, as for the secret's own LastAccessedDate.
    assert wait_for(accessed) == midnight_utc_today()


# --- Replicas are read-only ---------------------------------------------------------------


def _replica_writes(west, name, version_id):
    return {
        "DeleteSecret": lambda: west.delete_secret(SecretId=name),  # [F]
        "DeleteSecret(force)": lambda: west.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True),  # [F]
        "PutResourcePolicy": lambda: west.put_resource_policy(SecretId=name, ResourcePolicy=POLICY),  # [F]
        # Refused as a replica before the policy itself is looked at.
        "PutResourcePolicy({})": lambda: west.put_resource_policy(SecretId=name, ResourcePolicy="{}"),
        "PutSecretValue": lambda: west.put_secret_value(SecretId=name, SecretString="x"),
        "UpdateSecret(value)": lambda: west.update_secret(SecretId=name, SecretString="x"),
        "UpdateSecret(description)": lambda: west.update_secret(SecretId=name, Description="x"),
        "UpdateSecretVersionStage": lambda: west.update_secret_version_stage(
            SecretId=name, VersionStage="BLUE", MoveToVersionId=version_id
        ),
        "TagResource": lambda: west.tag_resource(SecretId=name, Tags=[{"Key": "k", "Value": "v"}]),
        "UntagResource": lambda: west.untag_resource(SecretId=name, TagKeys=["k"]),
        "DeleteResourcePolicy": lambda: west.delete_resource_policy(SecretId=name),
        "RestoreSecret": lambda: west.restore_secret(SecretId=name),
        "ReplicateSecretToRegions": lambda: west.replicate_secret_to_regions(
            SecretId=name, AddReplicaRegions=[{"Region": OTHER}]
        ),
        "RemoveRegionsFromReplication": lambda: west.remove_regions_from_replication(
            SecretId=name, RemoveReplicaRegions=[OTHER]
        ),
        "RemoveRegionsFromReplication(primary's Region)": lambda: west.remove_regions_from_replication(
            SecretId=name, RemoveReplicaRegions=[PRIMARY]
        ),
    }


@pytest.mark.parametrize(
    "operation",
    [
        "DeleteSecret",
        "DeleteSecret(force)",
        "PutResourcePolicy",
        "PutResourcePolicy({})",
        "PutSecretValue",
        "UpdateSecret(value)",
        "UpdateSecret(description)",
        "UpdateSecretVersionStage",
        "TagResource",
        "UntagResource",
        "DeleteResourcePolicy",
        "RestoreSecret",
        "ReplicateSecretToRegions",
        "RemoveRegionsFromReplication",
        "RemoveRegionsFromReplication(primary's Region)",
    ],
)
def test_a_replica_refuses_changes_made_in_its_own_region(west, replicated, name, operation):
    call = _replica_writes(west, name, replicated["VersionId"])[operation]
    expect_error(call, "InvalidParameterException", REPLICA_READ_ONLY)
    assert west.get_secret_value(SecretId=name)["SecretString"] == "replicated value"


def test_a_replica_serves_every_read(west, replicated, name):
    assert west.get_secret_value(SecretId=name)["SecretString"] == "replicated value"
    assert west.describe_secret(SecretId=name)["Name"] == name
    assert [v["VersionId"] for v in west.list_secret_version_ids(SecretId=name)["Versions"]] == [replicated["VersionId"]]
    got = west.batch_get_secret_value(SecretIdList=[name])
    assert got["Errors"] == [] and got["SecretValues"][0]["SecretString"] == "replicated value"
    assert west.get_resource_policy(SecretId=name)["Name"] == name


def test_creating_a_secret_with_the_name_of_a_replica_in_its_region_is_refused(west, replicated, name):
    expect_error(
        west.create_secret,
        "ResourceExistsException",
        f"The operation failed because the secret {name} already exists.",
        Name=name,
        SecretString="v",
    )


# --- Deleting a primary, removing and promoting replicas ----------------------------------


def test_deleting_a_primary_that_has_replicas_is_refused_naming_them_in_order(east, replicated, name):
    east.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": OTHER}])
    message = f"You can't delete secret {replicated['ARN']} that still has replica regions [{REPLICA}, {OTHER}]."
    expect_error(east.delete_secret, "InvalidParameterException", message, SecretId=name)
    expect_error(east.delete_secret, "InvalidParameterException", message, SecretId=name, ForceDeleteWithoutRecovery=True)
    assert "DeletedDate" not in east.describe_secret(SecretId=name)


def test_replicas_given_at_creation_keep_the_order_given_and_block_the_primarys_deletion(east, name):
    # Not alphabetical: the order in which the Regions were given.
    created = east.create_secret(
        Name=name, SecretString="v", AddReplicaRegions=[{"Region": REPLICA}, {"Region": OTHER}]
    )
    assert [e["Region"] for e in created["ReplicationStatus"]] == [REPLICA, OTHER]
    assert [e["Status"] for e in created["ReplicationStatus"]] == ["InProgress", "InProgress"]
    message = f"You can't delete secret {created['ARN']} that still has replica regions [{REPLICA}, {OTHER}]."
    expect_error(east.delete_secret, "InvalidParameterException", message, SecretId=name, ForceDeleteWithoutRecovery=True)


def test_remove_regions_from_replication_deletes_the_replica_and_answers_with_the_rest(east, west, europe, replicated, name):
    east.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": OTHER}])
    in_sync(east, name, OTHER)
    answer = east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[OTHER])
    assert body_keys(answer) == {"ARN", "ReplicationStatus"}
    assert answer["ARN"] == replicated["ARN"]
    assert [e["Region"] for e in answer["ReplicationStatus"]] == [REPLICA]
    wait_for(lambda: not europe.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"])
    expect_error(europe.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
    assert west.get_secret_value(SecretId=name)["SecretString"] == "replicated value"


def test_removing_the_last_replica_leaves_an_empty_list_and_frees_the_primary(east, west, replicated, name):
    answer = east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[REPLICA])
    assert answer["ReplicationStatus"] == []
    described = east.describe_secret(SecretId=name)
    assert "PrimaryRegion" not in described and "ReplicationStatus" not in described
    wait_for(lambda: not west.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"])
    deleted = east.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert deleted["ARN"] == replicated["ARN"]


def test_stop_replication_promotes_the_replica_to_a_standalone_secret(east, west, europe, replicated, name):
    answer = west.stop_replication_to_replica(SecretId=name)
    assert body_keys(answer) == {"ARN"}
    assert answer["ARN"] == replica_arn(replicated["ARN"])
    # Writable in its own Region at once, before the old primary has heard of the promotion.
    west.put_secret_value(SecretId=name, SecretString="promoted")
    promoted = west.describe_secret(SecretId=name)
    assert "PrimaryRegion" not in promoted and "ReplicationStatus" not in promoted
    wait_for(lambda: "ReplicationStatus" not in east.describe_secret(SecretId=name))
    # The old primary no longer reaches it.
    east.put_secret_value(SecretId=name, SecretString="primary moved on")
    time.sleep(0.5)
    assert west.get_secret_value(SecretId=name)["SecretString"] == "promoted"
    assert east.get_secret_value(SecretId=name)["SecretString"] == "primary moved on"
    # No replica any more: a second promotion is refused.
    expect_error(
        west.stop_replication_to_replica,
        "InvalidRequestException",
        f"Secret {name} is not a replica. Call StopReplicationToReplica in the Region of a replica secret to promote it.",
        SecretId=name,
    )
    # A primary of its own: it replicates, and its replicas name its Region.
    west.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": OTHER}])
    in_sync(west, name, OTHER)
    assert europe.get_secret_value(SecretId=name)["SecretString"] == "promoted"
    assert europe.describe_secret(SecretId=name)["PrimaryRegion"] == REPLICA


def test_stop_replication_on_a_secret_that_is_no_replica_is_refused(east, secret, name):
    # [E] unverified on AWS; the server's text (stop_replication_to_replica.rs).
    expect_error(
        east.stop_replication_to_replica,
        "InvalidRequestException",
        f"Secret {name} is not a replica. Call StopReplicationToReplica in the Region of a replica secret to promote it.",
        SecretId=name,
    )


# --- Invalid requests and failed replication ----------------------------------------------


@pytest.mark.parametrize("region", [PRIMARY, "moon-east-1"], ids=["the secret's own Region", "a Region AWS does not have"])
def test_replicating_to_the_secrets_own_or_an_unknown_region_is_an_invalid_replica_region(east, secret, name, region):
    expect_error(
        east.replicate_secret_to_regions,
        "InvalidParameterException",
        "Invalid replica region.",
        SecretId=name,
        AddReplicaRegions=[{"Region": region}],
    )
    described = east.describe_secret(SecretId=name)
    assert "PrimaryRegion" not in described and "ReplicationStatus" not in described


def test_a_region_of_another_partition_is_an_invalid_replica_region_even_when_hosted(tmp_path):
    # [E] unverified on AWS; the server's text (replica_regions.rs). us-gov-west-1 is one of this
    # server's Regions, and replication still never crosses a partition.
    srv = start_server(tmp_path / "data", regions=[PRIMARY, "us-gov-west-1"])
    try:
        east, name = srv.client(PRIMARY), unique()
        east.create_secret(Name=name, SecretString="v")
        expect_error(
            east.replicate_secret_to_regions,
            "InvalidParameterException",
            "Invalid replica region. us-gov-west-1 is in partition aws-us-gov, this secret in aws: "
            "replication never crosses a partition.",
            SecretId=name,
            AddReplicaRegions=[{"Region": "us-gov-west-1"}],
        )
        described = east.describe_secret(SecretId=name)
        assert "PrimaryRegion" not in described and "ReplicationStatus" not in described
    finally:
        srv.stop()


def test_a_replica_entry_without_region_is_an_invalid_replica_region(east, secret, name):
    expect_error(
        east.replicate_secret_to_regions,
        "InvalidParameterException",
        "Invalid replica region.",
        SecretId=name,
        AddReplicaRegions=[{}],
    )


def test_create_secret_with_a_replica_entry_without_region_creates_nothing(east, name):
    expect_error(
        east.create_secret,
        "InvalidParameterException",
        "Invalid replica region.",
        Name=name,
        SecretString="v",
        AddReplicaRegions=[{"KmsKeyId": ""}],
    )
    expect_error(east.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)


def test_a_region_name_of_the_wrong_shape_gets_validation_error(east, secret, name):
    expect_error(
        east.replicate_secret_to_regions,
        "ValidationException",
        "1 validation error detected: Value 'US_EAST' at 'addReplicaRegions.1.member.region' failed to satisfy "
        r"constraint: Member must satisfy regular expression pattern: ^([a-z]+-)+\d+$",
        SecretId=name,
        AddReplicaRegions=[{"Region": "US_EAST"}],
    )


def test_replicating_a_secret_scheduled_for_deletion_is_refused(east, secret, name):
    east.delete_secret(SecretId=name)
    expect_error(
        east.replicate_secret_to_regions,
        "InvalidRequestException",
        MARKED_FOR_DELETION,
        SecretId=name,
        AddReplicaRegions=[{"Region": REPLICA}],
    )


def test_a_name_taken_in_the_target_region_fails_the_replica_and_leaves_that_secret_alone(east, west, name):
    theirs = west.create_secret(Name=name, SecretString="west's own")
    east.create_secret(Name=name, SecretString="east", AddReplicaRegions=[{"Region": REPLICA}])
    entry = settled(east, name, REPLICA)
    assert entry["Status"] == "Failed"
    assert entry["StatusMessage"] == f"Replication failed: Secret name {name} already exists in region {REPLICA}."
    assert west.get_secret_value(SecretId=name)["SecretString"] == "west's own"
    still = west.describe_secret(SecretId=name)
    assert still["ARN"] == theirs["ARN"]
    assert "PrimaryRegion" not in still


def test_force_overwrite_replaces_the_colliding_secret_with_the_replica(east, west, name):
    theirs = west.create_secret(Name=name, SecretString="west's own")
    created = east.create_secret(Name=name, SecretString="east", AddReplicaRegions=[{"Region": REPLICA}])
    assert settled(east, name, REPLICA)["Status"] == "Failed"
    answer = east.replicate_secret_to_regions(
        SecretId=name, AddReplicaRegions=[{"Region": REPLICA}], ForceOverwriteReplicaSecret=True
    )
    # The retry restarts the failed entry: the Region is listed once.
    assert [e["Region"] for e in answer["ReplicationStatus"]] == [REPLICA]
    in_sync(east, name, REPLICA)
    got = west.get_secret_value(SecretId=name)
    assert got["SecretString"] == "east"
    assert got["ARN"] == replica_arn(created["ARN"])
    assert got["ARN"] != theirs["ARN"]
    assert west.describe_secret(SecretId=name)["PrimaryRegion"] == PRIMARY


def test_replicating_to_a_region_this_deployment_does_not_host_fails_that_replica(east, secret, name):
    answer = east.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "ap-south-1"}])
    assert [e["Region"] for e in answer["ReplicationStatus"]] == ["ap-south-1"]
    entry = settled(east, name, "ap-south-1")
    assert entry["Status"] == "Failed"
    assert entry["StatusMessage"].startswith("Replication failed: Region ap-south-1 is not enabled"), entry
    # The failed entry can be removed like any replica.
    assert east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["ap-south-1"])["ReplicationStatus"] == []


def test_a_replica_arn_names_the_same_secret_in_its_region(west, replicated):
    assert re.search(rf":{REPLICA}:123456789012:secret:", replica_arn(replicated["ARN"]))
    assert west.describe_secret(SecretId=replica_arn(replicated["ARN"]))["Name"] == replicated["Name"]
