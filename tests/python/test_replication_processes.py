"""Regions as separate processes (issue 3 §3, §4, §6, §8): three `coffer serve --config` nodes on
loopback — us-west-2, us-east-1 and eu-west-1, one Region each, peers of each other — driven
through boto3 and the AWS CLI. Replicas live in another process than their primary; the fault
test puts a TCP proxy between two nodes and cuts the link; the crash test SIGKILLs a replica's
node in the middle of a stream of writes.

Every test has a cluster of its own (temporary data directories, fresh ports). Asynchronous
outcomes are polled with a deadline, never waited for with a fixed sleep.
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from cluster import (
    ACCOUNT_ID,
    CLIENT_CONFIG,
    COFFER_BIN,
    REPO_ROOT,
    Cluster,
    Node,
    TcpProxy,
    arn_in_region,
    free_port,
    metric,
    wait_for,
)

WEST, EAST, EU = "us-west-2", "us-east-1", "eu-west-1"
THREE = {WEST: [WEST], EAST: [EAST], EU: [EU]}
NAME = "production/DBWest"
REPLICA_READ_ONLY = (
    "Operation not permitted on a replica secret. Call must be made in primary secret's region."
)
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
            }
        ],
    }
)


@pytest.fixture
def make_cluster(tmp_path):
    """Starts a cluster of the test's own; stops every node afterwards and prints the nodes'
    logs (pytest shows them when the test failed)."""
    made: list[Cluster] = []

    def make(layout=THREE, **kw) -> Cluster:
        c = Cluster(tmp_path / f"cluster{len(made)}", layout, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
        print(c.logs())


@pytest.fixture
def three(make_cluster) -> Cluster:
    return make_cluster().start()


# ---------------------------------------------------------------------------------------------
# Helpers


def status_of(client, secret_id, region) -> dict | None:
    """The primary's ReplicationStatus entry for `region` (None when it lists no such Region)."""
    for entry in client.describe_secret(SecretId=secret_id).get("ReplicationStatus", []):
        if entry["Region"] == region:
            return entry
    return None


def settled(client, secret_id, region, timeout=15.0) -> dict:
    """The status entry once it left InProgress."""

    def check():
        entry = status_of(client, secret_id, region)
        return entry if entry and entry["Status"] != "InProgress" else None

    return wait_for(check, timeout, what=f"{region} replica of {secret_id} leaves InProgress")


def in_sync(client, secret_id, region, timeout=15.0) -> dict:
    """Waits for `InSync` (a replica that was `Failed` turns InSync once a delivery succeeds)."""

    def check():
        entry = status_of(client, secret_id, region)
        return entry if entry and entry["Status"] == "InSync" else None

    entry = wait_for(check, timeout, what=f"{region} replica of {secret_id} is InSync")
    # LastAccessedDate appears once the replica was read (day resolution).
    assert {k: v for k, v in entry.items() if k != "LastAccessedDate"} == {
        "Region": region,
        "KmsKeyId": "alias/aws/secretsmanager",
        "Status": "InSync",
        "StatusMessage": "Replication succeeded",
    }, entry
    return entry


def expect_client_error(call, code: str, message: str | None = None, **params) -> str:
    with pytest.raises(ClientError) as info:
        call(**params)
    error = info.value.response["Error"]
    assert error["Code"] == code, error
    if message is not None:
        assert error["Message"] == message, error
    return error["Message"]


def norm(version_ids_to_stages: dict) -> dict:
    return {k: sorted(v) for k, v in version_ids_to_stages.items()}


def stages(client, secret_id) -> dict:
    return norm(client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {}))


def all_versions(client, secret_id) -> dict[str, list[str]]:
    """VersionId -> labels, deprecated versions included."""
    out = {}
    kw = {"SecretId": secret_id, "IncludeDeprecated": True, "MaxResults": 100}
    while True:
        page = client.list_secret_version_ids(**kw)
        for v in page["Versions"]:
            out[v["VersionId"]] = sorted(v.get("VersionStages", []))
        if not page.get("NextToken"):
            return out
        kw["NextToken"] = page["NextToken"]


def same_state(primary, replica, secret_id) -> bool:
    """The replica shows the primary's versions, labels, description, tags and policy."""
    p, r = primary.describe_secret(SecretId=secret_id), replica.describe_secret(SecretId=secret_id)
    for key in ("Name", "Description"):
        if p.get(key) != r.get(key):
            return False
    if norm(p["VersionIdsToStages"]) != norm(r["VersionIdsToStages"]):
        return False
    if sorted(map(str, p.get("Tags", []))) != sorted(map(str, r.get("Tags", []))):
        return False
    pp = primary.get_resource_policy(SecretId=secret_id).get("ResourcePolicy")
    rp = replica.get_resource_policy(SecretId=secret_id).get("ResourcePolicy")
    return (pp and json.loads(pp)) == (rp and json.loads(rp))


def is_gone(client, secret_id) -> bool:
    try:
        client.describe_secret(SecretId=secret_id)
    except ClientError as e:
        return e.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


def aws_cli() -> str:
    """The venv's `aws` (the one tests/python/run.sh puts first on PATH)."""
    here = Path(sys.executable).parent / "aws"
    path = str(here) if here.exists() else shutil.which("aws")
    if path is None:
        pytest.fail("the AWS CLI ('aws') is not installed: run the suite with tests/python/run.sh", pytrace=False)
    return path


# ---------------------------------------------------------------------------------------------
# Replicas in another process


def test_replica_in_another_process_has_the_primarys_name_arn_versions_labels_and_values(three):
    west, east = three.client(WEST), three.client(EAST)
    created = west.create_secret(
        Name=NAME,
        SecretString="v1",
        Description="orders database",
        Tags=[{"Key": "team", "Value": "orders"}],
    )
    v2 = west.put_secret_value(SecretId=NAME, SecretString="v2")["VersionId"]
    west.update_secret_version_stage(SecretId=NAME, VersionStage="blue", MoveToVersionId=created["VersionId"])
    west.put_resource_policy(SecretId=NAME, ResourcePolicy=POLICY)

    answer = west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EAST}])
    assert answer["ARN"] == created["ARN"]
    # [D] InProgress right after the call, without a StatusMessage.
    assert answer["ReplicationStatus"] == [
        {"Region": EAST, "KmsKeyId": "alias/aws/secretsmanager", "Status": "InProgress"}
    ]
    in_sync(west, NAME, EAST)

    primary = west.describe_secret(SecretId=NAME)
    assert primary["PrimaryRegion"] == WEST
    replica = east.describe_secret(SecretId=NAME)
    assert replica["ARN"] == arn_in_region(created["ARN"], EAST)
    assert replica["ARN"].replace(f":{EAST}:", f":{WEST}:") == created["ARN"]
    assert replica["Name"] == NAME
    assert replica["PrimaryRegion"] == WEST
    assert norm(replica["VersionIdsToStages"]) == norm(primary["VersionIdsToStages"]) == {
        created["VersionId"]: ["AWSPREVIOUS", "blue"],
        v2: ["AWSCURRENT"],
    }
    assert replica["Description"] == "orders database"
    assert replica["Tags"] == [{"Key": "team", "Value": "orders"}]
    assert json.loads(east.get_resource_policy(SecretId=NAME)["ResourcePolicy"]) == json.loads(POLICY)
    for version_id, value in ((created["VersionId"], "v1"), (v2, "v2")):
        got = east.get_secret_value(SecretId=NAME, VersionId=version_id)
        assert (got["ARN"], got["SecretString"], got["VersionId"]) == (replica["ARN"], value, version_id)
    current = east.get_secret_value(SecretId=replica["ARN"])
    assert (current["VersionId"], current["SecretString"]) == (v2, "v2")
    listed = east.list_secrets(Filters=[{"Key": "name", "Values": [NAME]}])["SecretList"]
    assert [(s["ARN"], s.get("PrimaryRegion")) for s in listed] == [(replica["ARN"], WEST)]

    # Later changes on the primary reach the replica in the other process.
    v3 = west.put_secret_value(SecretId=NAME, SecretString="v3", VersionStages=["AWSCURRENT"])["VersionId"]
    west.update_secret_version_stage(
        SecretId=NAME, VersionStage="blue", MoveToVersionId=v3, RemoveFromVersionId=created["VersionId"]
    )
    west.update_secret(SecretId=NAME, Description="orders database, moved")
    west.tag_resource(SecretId=NAME, Tags=[{"Key": "tier", "Value": "gold"}])
    west.untag_resource(SecretId=NAME, TagKeys=["team"])
    west.delete_resource_policy(SecretId=NAME)
    west.put_resource_policy(SecretId=NAME, ResourcePolicy=POLICY.replace("GetSecretValue", "DescribeSecret"))
    wait_for(lambda: same_state(west, east, NAME), what="the replica follows every change")
    assert sorted(stages(east, NAME)[v3]) == ["AWSCURRENT", "blue"]
    assert east.get_secret_value(SecretId=NAME)["SecretString"] == "v3"
    assert east.describe_secret(SecretId=NAME)["Tags"] == [{"Key": "tier", "Value": "gold"}]
    in_sync(west, NAME, EAST)
    # Reads in us-east-1 show in the primary's ReplicationStatus as that Region's LastAccessedDate.
    today = dt.datetime.now(dt.timezone.utc).date()
    entry = wait_for(lambda: status_of(west, NAME, EAST).get("LastAccessedDate"), what="LastAccessedDate")
    assert entry.astimezone(dt.timezone.utc).date() == today

    # A replica refuses every write, in its own process, with AWS's message.
    replica_arn = replica["ARN"]
    for call, params in [
        (east.put_secret_value, {"SecretString": "nope"}),
        (east.update_secret, {"Description": "nope"}),
        (east.update_secret_version_stage, {"VersionStage": "blue", "MoveToVersionId": v2, "RemoveFromVersionId": v3}),
        (east.tag_resource, {"Tags": [{"Key": "a", "Value": "b"}]}),
        (east.untag_resource, {"TagKeys": ["tier"]}),
        (east.put_resource_policy, {"ResourcePolicy": POLICY}),
        (east.delete_resource_policy, {}),
        (east.delete_secret, {"ForceDeleteWithoutRecovery": True}),
        (east.replicate_secret_to_regions, {"AddReplicaRegions": [{"Region": EU}]}),
        (east.remove_regions_from_replication, {"RemoveReplicaRegions": [WEST]}),
    ]:
        expect_client_error(call, "InvalidParameterException", REPLICA_READ_ONLY, SecretId=replica_arn, **params)
    assert east.get_secret_value(SecretId=NAME)["SecretString"] == "v3"

    # Replication metrics of the primary's node name both Regions.
    text = three.nodes[WEST].metrics()
    assert metric(text, "coffer_replication_deliveries_total", source=WEST, destination=EAST, outcome="applied") >= 1
    assert metric(text, "coffer_replication_lag_seconds_count", source=WEST, destination=EAST) >= 1
    assert "coffer_replication_queue_depth" in text


def test_name_clash_fails_and_leaves_the_existing_secret_then_force_overwrite_replaces_it(three):
    west, eu = three.client(WEST), three.client(EU)
    local = eu.create_secret(Name=NAME, SecretString="eu-local", Tags=[{"Key": "owner", "Value": "eu"}])
    primary = west.create_secret(Name=NAME, SecretString="from-west")

    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EU}])
    entry = settled(west, NAME, EU)
    assert entry["Status"] == "Failed", entry
    assert entry["StatusMessage"] == f"Replication failed: Secret name {NAME} already exists in region {EU}."
    untouched = eu.describe_secret(SecretId=NAME)
    assert untouched["ARN"] == local["ARN"]
    assert "PrimaryRegion" not in untouched
    assert untouched["Tags"] == [{"Key": "owner", "Value": "eu"}]
    assert eu.get_secret_value(SecretId=NAME)["SecretString"] == "eu-local"

    # A plain retry fails the same way; one status entry, never two.
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EU}])
    assert settled(west, NAME, EU)["Status"] == "Failed"
    assert [e["Region"] for e in west.describe_secret(SecretId=NAME)["ReplicationStatus"]] == [EU]

    answer = west.replicate_secret_to_regions(
        SecretId=NAME, AddReplicaRegions=[{"Region": EU}], ForceOverwriteReplicaSecret=True
    )
    assert answer["ReplicationStatus"] == [
        {"Region": EU, "KmsKeyId": "alias/aws/secretsmanager", "Status": "InProgress"}
    ]
    in_sync(west, NAME, EU)
    replica = eu.describe_secret(SecretId=NAME)
    assert replica["ARN"] == arn_in_region(primary["ARN"], EU) != local["ARN"]
    assert replica["PrimaryRegion"] == WEST
    assert "Tags" not in replica or replica["Tags"] == []
    got = eu.get_secret_value(SecretId=NAME)
    assert (got["SecretString"], got["VersionId"]) == ("from-west", primary["VersionId"])
    assert is_gone(eu, local["ARN"])


def test_region_not_enabled_fails_then_succeeds_after_a_node_hosts_it(make_cluster):
    c = make_cluster().start()
    west = c.client(WEST)
    west.create_secret(Name=NAME, SecretString="s3cr3t")

    # ap-south-1 is a real Region of the partition, but no node of this deployment hosts it.
    answer = west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": "ap-south-1"}])
    assert answer["ReplicationStatus"][0]["Status"] == "InProgress"
    entry = settled(west, NAME, "ap-south-1")
    assert entry["Status"] == "Failed", entry
    assert re.match(r"Replication failed: Region ap-south-1 is not enabled\b", entry["StatusMessage"]), entry

    # Enable it: the eu-west-1 node hosts it too, and the other nodes get it as a peer; restart.
    c.nodes[EU].regions.append("ap-south-1")
    for node in c.nodes.values():
        node.restart()
    west = c.client(WEST)
    # Still Failed until the user retries.
    assert status_of(west, NAME, "ap-south-1")["Status"] == "Failed"
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": "ap-south-1"}])
    in_sync(west, NAME, "ap-south-1")
    south = c.nodes[EU].client("ap-south-1")
    got = south.get_secret_value(SecretId=NAME)
    assert got["SecretString"] == "s3cr3t"
    assert got["ARN"].split(":")[3] == "ap-south-1"
    assert south.describe_secret(SecretId=NAME)["PrimaryRegion"] == WEST


def test_region_enabled_by_a_peer_entry_only(make_cluster):
    """Enabling a Region by adding the node that hosts it to [[peers]]: a fourth node joins, and
    only the primary's node needs restarting (plus the newcomer knowing the primary)."""
    c = make_cluster({WEST: [WEST], EAST: [EAST]})
    c.start()
    west = c.client(WEST)
    west.create_secret(Name=NAME, SecretString="s3cr3t")
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EU}])
    entry = settled(west, NAME, EU)
    assert entry["Status"] == "Failed" and "not enabled" in entry["StatusMessage"], entry

    eu_node = Node(c, EU, [EU], free_port())
    c.nodes[EU] = eu_node
    eu_node.start()
    c.nodes[WEST].restart()
    west = c.client(WEST)
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EU}])
    in_sync(west, NAME, EU)
    assert c.client(EU).get_secret_value(SecretId=NAME)["SecretString"] == "s3cr3t"


# ---------------------------------------------------------------------------------------------
# Deletion and removal across processes


def test_delete_lists_replicas_in_order_added_and_removal_is_never_stranded(three):
    west, east, eu = three.client(WEST), three.client(EAST), three.client(EU)
    primary = west.create_secret(Name=NAME, SecretString="s3cr3t")
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EAST}])
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EU}])
    in_sync(west, NAME, EAST)
    in_sync(west, NAME, EU)

    message = f"You can't delete secret {primary['ARN']} that still has replica regions [us-east-1, eu-west-1]."
    expect_client_error(west.delete_secret, "InvalidParameterException", message, SecretId=NAME)
    expect_client_error(
        west.delete_secret, "InvalidParameterException", message, SecretId=NAME, ForceDeleteWithoutRecovery=True
    )

    # eu-west-1's node is down while the replicas are removed and the primary force-deleted at
    # once, and the primary's node crashes right after: the removal must still reach eu-west-1.
    three.nodes[EU].stop()
    removed = west.remove_regions_from_replication(SecretId=NAME, RemoveReplicaRegions=[EAST, EU])
    assert removed["ARN"] == primary["ARN"]
    assert removed["ReplicationStatus"] == []
    west.delete_secret(SecretId=NAME, ForceDeleteWithoutRecovery=True)
    wait_for(lambda: is_gone(east, NAME), what="the us-east-1 replica is deleted")
    three.nodes[WEST].kill()
    three.nodes[WEST].start()
    three.nodes[EU].start()
    wait_for(lambda: is_gone(eu, NAME), what="the eu-west-1 replica is deleted after its node returns")
    # No recovery window: the name is free again at once in both Regions.
    for client in (east, eu):
        client.create_secret(Name=NAME, SecretString="fresh")
    assert is_gone(three.client(WEST), NAME)


# ---------------------------------------------------------------------------------------------
# Promotion


def test_promotion_while_the_primarys_process_is_down(three):
    west, east, eu = three.client(WEST), three.client(EAST), three.client(EU)
    primary = west.create_secret(Name=NAME, SecretString="from-west")
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EAST}])
    in_sync(west, NAME, EAST)

    three.nodes[WEST].stop()
    replica_arn = arn_in_region(primary["ARN"], EAST)
    promoted = east.stop_replication_to_replica(SecretId=NAME)
    assert promoted["ARN"] == replica_arn
    # Standalone and writable at once, with the primary's Region unreachable.
    described = east.describe_secret(SecretId=NAME)
    assert "PrimaryRegion" not in described and "ReplicationStatus" not in described
    mine = east.put_secret_value(SecretId=NAME, SecretString="promoted")["VersionId"]
    east.tag_resource(SecretId=NAME, Tags=[{"Key": "promoted", "Value": "yes"}])

    # The old primary returns and writes again: it drops us-east-1 and never overwrites it.
    three.nodes[WEST].start()
    west = three.client(WEST)
    west.put_secret_value(SecretId=NAME, SecretString="from-west-again")
    wait_for(lambda: status_of(west, NAME, EAST) is None, what="the primary drops us-east-1")
    after = west.describe_secret(SecretId=NAME)
    assert "PrimaryRegion" not in after and "ReplicationStatus" not in after, after
    # The old primary's outbox toward us-east-1 is empty, so nothing is left to arrive.
    wait_for(
        lambda: not metric(three.nodes[WEST].metrics(), "coffer_replication_queue_depth", source=WEST, destination=EAST),
        what="the primary's outbox toward us-east-1 is empty",
    )
    got = east.get_secret_value(SecretId=NAME)
    assert (got["VersionId"], got["SecretString"]) == (mine, "promoted")
    assert east.describe_secret(SecretId=NAME)["Tags"] == [{"Key": "promoted", "Value": "yes"}]
    assert west.get_secret_value(SecretId=NAME)["SecretString"] == "from-west-again"
    # Both are writable on their own now.
    west.put_secret_value(SecretId=NAME, SecretString="west-3")
    east.put_secret_value(SecretId=NAME, SecretString="east-3")

    # The promoted secret is a primary of its own: it replicates to a third Region by itself.
    east.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EU}])
    in_sync(east, NAME, EU)
    replica = eu.describe_secret(SecretId=NAME)
    assert replica["ARN"] == arn_in_region(primary["ARN"], EU)
    assert replica["PrimaryRegion"] == EAST
    assert eu.get_secret_value(SecretId=NAME)["SecretString"] == "east-3"
    assert "ReplicationStatus" not in west.describe_secret(SecretId=NAME)


# ---------------------------------------------------------------------------------------------
# Faults: a cut network link, a crashed node


def test_cut_link_fails_with_a_network_message_then_converges_when_restored(make_cluster):
    c = make_cluster(failure_timeout_secs=2)
    proxy = TcpProxy(c.nodes[EAST].port)
    # The primary's node reaches us-east-1 only through the proxy.
    c.peer_urls[(WEST, EAST)] = proxy.url
    try:
        c.start()
        west, east = c.client(WEST), c.client(EAST)
        first = west.create_secret(Name=NAME, SecretString="v1")
        west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EAST}])
        in_sync(west, NAME, EAST)
        assert proxy.connections >= 1

        proxy.cut()
        cut_at = time.monotonic()
        # Writes on the primary are acknowledged while the replica's Region is unreachable.
        v2 = west.put_secret_value(SecretId=NAME, SecretString="v2")["VersionId"]
        seen = []

        def failed():
            entry = status_of(west, NAME, EAST)
            if not seen or seen[-1] != entry["Status"]:
                seen.append(entry["Status"])
            return entry if entry["Status"] == "Failed" else None

        entry = wait_for(failed, timeout=15, interval=0.02, what="us-east-1 shows Failed")
        assert time.monotonic() - cut_at >= 1.5, "Failed before replication_failure_timeout_secs"
        assert re.match(r"Replication failed: network error reaching Region us-east-1\b", entry["StatusMessage"]), entry
        # The replica keeps its last good state meanwhile.
        assert east.get_secret_value(SecretId=NAME)["VersionId"] == first["VersionId"]

        # A replica added while the link is down: InProgress, then Failed with the network error.
        other = "production/DBEast"
        west.create_secret(Name=other, SecretString="o1")
        answer = west.replicate_secret_to_regions(SecretId=other, AddReplicaRegions=[{"Region": EAST}])
        assert answer["ReplicationStatus"][0]["Status"] == "InProgress"
        assert status_of(west, other, EAST)["Status"] == "InProgress"
        entry = settled(west, other, EAST)
        assert entry["Status"] == "Failed"
        assert "network error reaching Region us-east-1" in entry["StatusMessage"], entry
        assert is_gone(east, other)
        text = c.nodes[WEST].metrics()
        assert metric(text, "coffer_replication_deliveries_total", source=WEST, destination=EAST, outcome="network_error") >= 1
        assert metric(text, "coffer_replication_queue_depth", source=WEST, destination=EAST) >= 1

        proxy.restore()
        # The first secret heals by itself (delivery kept retrying with backoff) ...
        wait_for(
            lambda: east.get_secret_value(SecretId=NAME)["VersionId"] == v2,
            timeout=40,
            what="the replica converges after the link returns",
        )
        in_sync(west, NAME, EAST)
        assert east.get_secret_value(SecretId=NAME)["SecretString"] == "v2"
        # ... and ReplicateSecretToRegions retries the other at once.
        west.replicate_secret_to_regions(SecretId=other, AddReplicaRegions=[{"Region": EAST}])
        in_sync(west, other, EAST)
        assert east.get_secret_value(SecretId=other)["SecretString"] == "o1"

        # A write that had not reached the replica showed InProgress, never InSync
        # (docs/architecture.md §4: "status InProgress until applied"; spec §5.5).
        assert seen[0] == "InProgress", f"statuses seen after the cut: {seen}"
    finally:
        proxy.close()


def test_sigkill_of_a_replicas_node_mid_stream_loses_nothing(three):
    west, east, eu = three.client(WEST), three.client(EAST), three.client(EU)
    west.create_secret(Name=NAME, SecretString="value-0")
    west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EAST}, {"Region": EU}])
    in_sync(west, NAME, EAST)
    in_sync(west, NAME, EU)

    acknowledged: dict[str, str] = {}
    errors: list[BaseException] = []
    twenty = threading.Event()

    def writer():
        checkpoint = None
        try:
            for i in range(1, 51):
                value = f"value-{i}"
                vid = west.put_secret_value(SecretId=NAME, SecretString=value)["VersionId"]
                acknowledged[vid] = value
                if i % 10 == 0:
                    # Label moves are part of the stream too.
                    move = {"MoveToVersionId": vid}
                    if checkpoint:
                        move["RemoveFromVersionId"] = checkpoint
                    west.update_secret_version_stage(SecretId=NAME, VersionStage="checkpoint", **move)
                    checkpoint = vid
                if i == 20:
                    twenty.set()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            twenty.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert twenty.wait(30)
    three.nodes[EAST].kill()
    killed_after = len(acknowledged)
    # The node stays down until the primary's deliveries to it have failed.
    wait_for(
        lambda: metric(three.nodes[WEST].metrics(), "coffer_replication_deliveries_total",
                       source=WEST, destination=EAST, outcome="network_error"),
        what="a delivery to the dead node fails",
    )
    three.nodes[EAST].start()
    thread.join(60)
    assert not errors, errors
    assert len(acknowledged) == 50
    assert 20 <= killed_after < 50, killed_after
    assert set(acknowledged) <= set(all_versions(west, NAME))

    for client in (east, eu):
        wait_for(
            lambda: all_versions(client, NAME) == all_versions(west, NAME),
            timeout=15,
            what="the replica converges to the primary's versions and labels",
        )
        current = client.get_secret_value(SecretId=NAME)
        assert current["SecretString"] == "value-50"
        for vid, value in acknowledged.items():
            assert client.get_secret_value(SecretId=NAME, VersionId=vid)["SecretString"] == value
    in_sync(west, NAME, EAST)
    in_sync(west, NAME, EU)


def test_sigkill_of_the_primarys_node_mid_delivery_resumes_promptly(make_cluster):
    """The primary's node dies while a delivery is on the wire (the link black-holes it): after
    a restart on the same data directory the acknowledged write still reaches the replica,
    without waiting out the dead process's claim on the outbox."""
    c = make_cluster({WEST: [WEST], EAST: [EAST]})
    proxy = TcpProxy(c.nodes[EAST].port)
    c.peer_urls[(WEST, EAST)] = proxy.url
    try:
        c.start()
        west, east = c.client(WEST), c.client(EAST)
        west.create_secret(Name=NAME, SecretString="v1")
        west.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": EAST}])
        in_sync(west, NAME, EAST)

        proxy.stall()
        v2 = west.put_secret_value(SecretId=NAME, SecretString="v2")["VersionId"]
        wait_for(lambda: proxy.stalled_connections, what="the delivery is on the wire")
        c.nodes[WEST].kill()
        proxy.restore()
        c.nodes[WEST].start()
        wait_for(
            lambda: east.get_secret_value(SecretId=NAME)["VersionId"] == v2,
            timeout=10,
            what="the write acknowledged before the crash reaches the replica after the restart",
        )
        in_sync(c.client(WEST), NAME, EAST)
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# The script and the AWS CLI, as a user runs them


def test_three_regions_script_and_the_aws_cli_as_a_user_types_it(tmp_path):
    """scripts/three-regions.sh starts the three nodes and writes one CLI profile per Region;
    `aws secretsmanager replicate-secret-to-regions` with the us-west-2 profile replicates."""
    aws = aws_cli()
    cluster_dir = tmp_path / "coffer-cluster"
    ports = {WEST: free_port(), EAST: free_port(), EU: free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_"))}
    env.update(
        COFFER_BIN=COFFER_BIN,
        COFFER_CLUSTER_DIR=str(cluster_dir),
        COFFER_PORT_US_WEST_2=str(ports[WEST]),
        COFFER_PORT_US_EAST_1=str(ports[EAST]),
        COFFER_PORT_EU_WEST_1=str(ports[EU]),
    )
    out_path = tmp_path / "script.out"

    def launch():
        out = open(out_path, "w")
        p = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "three-regions.sh")],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
        )
        out.close()
        wait_for(
            lambda: "Ctrl-C stops" in out_path.read_text() or p.poll() is not None,
            timeout=30, what="the script reports the three nodes running",
        )
        assert p.poll() is None, out_path.read_text()
        return p

    def stop(p):
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0, out_path.read_text()
        for r in (WEST, EAST, EU):
            assert not (cluster_dir / r / "node.pid").exists()

    script = launch()
    try:
        text = out_path.read_text()
        export = next(l for l in text.splitlines() if l.startswith("export AWS_CONFIG_FILE="))
        user_env = {k: v for k, v in env.items() if not k.startswith("COFFER_")}
        user_env.update(dict(part.split("=", 1) for part in export.split()[1:]))
        user_env["HOME"] = str(tmp_path)
        pids = {r: int((cluster_dir / r / "node.pid").read_text()) for r in (WEST, EAST, EU)}

        def cli(*args, profile=None):
            e = dict(user_env)
            if profile:
                e["AWS_PROFILE"] = profile
            done = subprocess.run([aws, *args], env=e, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
            return done

        created = json.loads(cli("secretsmanager", "create-secret", "--name", NAME, "--secret-string", "s3cr3t",
                                 profile=WEST).stdout)
        # Exactly as a user types it, with AWS_CONFIG_FILE's us-west-2 profile selected.
        replicated = json.loads(cli("secretsmanager", "replicate-secret-to-regions", "--secret-id", NAME,
                                    "--add-replica-regions", "Region=us-east-1", profile=WEST).stdout)
        assert replicated == {
            "ARN": created["ARN"],
            "ReplicationStatus": [{"Region": EAST, "KmsKeyId": "alias/aws/secretsmanager", "Status": "InProgress"}],
        }
        west = script_client(user_env, WEST, ports[WEST])
        in_sync(west, NAME, EAST)
        assert west.describe_secret(SecretId=NAME)["PrimaryRegion"] == WEST
        # --profile works as well as AWS_PROFILE, and reaches the us-east-1 process.
        got = json.loads(cli("secretsmanager", "get-secret-value", "--secret-id", NAME, "--profile", EAST).stdout)
        assert got["SecretString"] == "s3cr3t"
        assert got["ARN"] == arn_in_region(created["ARN"], EAST)

        # A node that stops is reported; the others keep serving.
        os.kill(pids[WEST], signal.SIGTERM)
        wait_for(lambda: "The us-west-2 node has stopped" in out_path.read_text(), what="the script reports it")
        assert script.poll() is None
        east = script_client(user_env, EAST, ports[EAST])
        assert east.get_secret_value(SecretId=NAME)["SecretString"] == "s3cr3t"
    finally:
        if script.poll() is None:
            stop(script)

    # Running it again reuses the directory: same account, key and secrets.
    script = launch()
    try:
        assert "Reusing" in out_path.read_text()
        west = script_client(user_env, WEST, ports[WEST])
        assert [e["Region"] for e in west.describe_secret(SecretId=NAME)["ReplicationStatus"]] == [EAST]
    finally:
        stop(script)


def script_client(user_env, region, port):
    """boto3 client with the credentials the script wrote (polling with the CLI would be slow)."""
    creds = configparser.ConfigParser()
    creds.read(user_env["AWS_SHARED_CREDENTIALS_FILE"])
    return boto3.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=creds[region]["aws_access_key_id"],
        aws_secret_access_key=creds[region]["aws_secret_access_key"],
        config=CLIENT_CONFIG,
    )
