"""Region failover and failback (issue 19, docs/failover.md) across three `coffer serve`
processes: us-west-2 is the primary Region, its replicas live in us-east-1 (reached through a
proxy the test controls) and eu-west-1. The primary node is SIGKILLed under write load, the
operator fails us-east-1 over with `coffer region failover` (SigV4 over HTTP), writes continue
on the promoted secrets through boto3, the report names exactly the writes that had not
arrived, and after the old primary returns a failback makes its copies replicas again.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from cluster import ADMIN_KEY, COFFER_BIN, TcpProxy, metric, wait_for
from test_replication_processes import (
    EAST,
    EU,
    THREE,
    WEST,
    in_sync,
    make_cluster,  # noqa: F401 - pytest fixture
    status_of,
)


def coffer_region(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`coffer region ...` as an operator types it, with the admin key in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ADMIN_KEY[0], AWS_SECRET_ACCESS_KEY=ADMIN_KEY[1])
    return subprocess.run(
        [COFFER_BIN, "region", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def failover(node, region: str, source: str) -> dict:
    done = coffer_region("failover", "--region", region, "--from", source, "--endpoint", node.url)
    assert done.returncode == 0, f"coffer region failover failed: {done.stderr}"
    return json.loads(done.stdout)


def point(node, region: str) -> dict:
    done = coffer_region("point", "--region", region, "--endpoint", node.url)
    assert done.returncode == 0, f"coffer region point failed: {done.stderr}"
    return json.loads(done.stdout)


def link(answer: dict, source: str) -> dict | None:
    return next((l for l in answer["Links"] if l["PrimaryRegion"] == source), None)


def current_version(client, secret_id: str) -> str:
    return client.get_secret_value(SecretId=secret_id)["VersionId"]


def audit_events(node, name: str) -> list[dict]:
    path = node.data_dir / "audit.log"
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e.get("eventName") == name]


def through_proxy(make_cluster, **kw):
    c = make_cluster(THREE, **kw)
    proxy = TcpProxy(c.nodes[EAST].port)
    c.peer_urls[(WEST, EAST)] = proxy.url
    c.start()
    return c, proxy


def test_failover_under_write_load_reports_exactly_the_writes_that_had_not_arrived(make_cluster):
    c, proxy = through_proxy(make_cluster)
    try:
        west, east, eu = c.client(WEST), c.client(EAST), c.client(EU)
        names = [f"dr/app-{i}" for i in range(8)]
        for n in names:
            west.create_secret(Name=n, SecretString=f"{n}=v0", AddReplicaRegions=[{"Region": EAST}])
        # Secrets replicated to eu-west-1 only: the write load of the primary node, on another
        # link, until it dies.
        loaded = [f"dr/load-{i}" for i in range(3)]
        for n in loaded:
            west.create_secret(Name=n, SecretString="l0", AddReplicaRegions=[{"Region": EU}])
        killing, errors, load_writes = threading.Event(), [], []

        def load():
            i = 0
            try:
                while not killing.is_set():
                    i += 1
                    west.put_secret_value(SecretId=loaded[i % len(loaded)], SecretString=f"l{i}")
                    load_writes.append(i)
            except Exception as e:  # noqa: BLE001 - the node is killed under it
                if not killing.is_set():
                    errors.append(e)

        writer = threading.Thread(target=load, daemon=True)
        writer.start()

        # Writes to the us-east-1 secrets under load, all of which arrive.
        for round_ in range(1, 4):
            for n in names:
                west.put_secret_value(SecretId=n, SecretString=f"{n}=v{round_}")
        for n in names:
            in_sync(west, n, EAST, timeout=30)
        arrived = {n: current_version(east, n) for n in names}
        for n in names:
            assert arrived[n] == current_version(west, n)

        # The replication point before anything goes wrong: nothing lags (API, CLI, metrics).
        before = link(point(c.nodes[EAST], EAST), WEST)
        assert before["ReplicaCount"] == len(names)
        assert before["UnappliedSecretCount"] == 0
        assert before["SecondsSinceLastApplied"] < 60
        text = c.nodes[EAST].metrics()
        assert metric(text, "coffer_replication_rpo_unapplied_secrets", source=WEST, destination=EAST) == 0
        assert metric(text, "coffer_replication_rpo_seconds", source=WEST, destination=EAST) is not None

        # The link starts losing the syncs (small messages still pass): these writes are
        # acknowledged by the primary and never arrive.
        proxy.drop_kinds("sync", "sync-batch")
        lost_names = names[:3]
        lost = {n: west.put_secret_value(SecretId=n, SecretString=f"{n}=lost")["VersionId"] for n in lost_names}
        # us-east-1 learns that it lags (the heads the primary announces), before the primary dies.
        wait_for(
            lambda: link(point(c.nodes[EAST], EAST), WEST)["UnappliedSecretCount"] == len(lost),
            timeout=30,
            what="us-east-1 knows which secrets lag",
        )
        assert metric(c.nodes[EAST].metrics(), "coffer_replication_rpo_unapplied_secrets",
                      source=WEST, destination=EAST) == len(lost)
        for n in lost_names:
            assert current_version(east, n) == arrived[n], "a lost write arrived after all"

        # The primary node dies under write load.
        assert writer.is_alive() and load_writes, errors
        killing.set()
        c.nodes[WEST].kill()
        writer.join(timeout=10)

        # Failover, while us-west-2 is unreachable.
        report = failover(c.nodes[EAST], EAST, WEST)
        assert report["Status"] == "Complete"
        assert report["Region"] == EAST and report["FromRegion"] == WEST
        assert report["PromotedCount"] == len(names)
        assert report["PossiblyLostCount"] == len(lost)
        by_name = {s["Name"]: s for s in report["Secrets"]}
        assert sorted(by_name) == sorted(names)
        for n in names:
            s = by_name[n]
            assert s["Status"] == "Promoted"
            assert s["VersionId"] == arrived[n]
            assert s["AppliedDate"] > 0
            assert s["ARN"].split(":")[3] == EAST and s["PrimaryARN"].split(":")[3] == WEST
            if n in lost:
                assert s["PrimaryHadNewerVersion"] is True
                assert s["PrimaryNewerVersionId"] == lost[n]
            else:
                assert s["PrimaryHadNewerVersion"] is False
                assert "PrimaryNewerVersionId" not in s

        # Writes continue on the promoted secrets (boto3), which are primaries now.
        for n in names:
            described = east.describe_secret(SecretId=n)
            assert "PrimaryRegion" not in described
            east.put_secret_value(SecretId=n, SecretString=f"{n}=east-after")
            assert east.get_secret_value(SecretId=n)["SecretString"] == f"{n}=east-after"

        # Running it again promotes nothing more and reports the same failover.
        again = failover(c.nodes[EAST], EAST, WEST)
        assert again["FailoverId"] == report["FailoverId"]
        assert again["PromotedCount"] == len(names)

        # Nothing lags any more: us-east-1 holds no replica of us-west-2.
        assert link(point(c.nodes[EAST], EAST), WEST) is None
        # The operation is in the audit log with its report.
        [event] = audit_events(c.nodes[EAST], "FailoverRegion")[:1]
        assert event["responseElements"]["PossiblyLostCount"] == len(lost)
        assert not errors, errors

        # The old primary returns (the link heals) and hears of the promotions; one of its
        # copies is written there meanwhile (a write that diverges after the promotion).
        proxy.restore()
        c.nodes[WEST].start()
        west = c.client(WEST)
        for n in names:
            wait_for(lambda n=n: status_of(west, n, EAST) is None, timeout=30,
                     what=f"us-west-2 drops the promoted {n}")
        late = names[3]
        late_version = west.put_secret_value(SecretId=late, SecretString=f"{late}=west-late")["VersionId"]

        # Dry run: per secret, the writes us-west-2 has that us-east-1 does not; nothing changes.
        dry = failback(c.nodes[EAST], EAST, WEST, "--dry-run")
        assert dry["DryRun"] is True
        assert dry["DivergedVersionCount"] == len(lost) + 1
        by_name = {s["Name"]: s for s in dry["Secrets"]}
        assert sorted(by_name) == sorted(names)
        for n in names:
            versions = by_name[n]["DivergedVersions"]
            if n in lost:
                assert [(v["VersionId"], v["AfterPromotion"]) for v in versions] == [(lost[n], False)]
                assert "AWSCURRENT" in versions[0]["VersionStages"]
            elif n == late:
                assert [(v["VersionId"], v["AfterPromotion"]) for v in versions] == [(late_version, True)]
                assert by_name[n]["ChangedInPrimaryAfterPromotion"] is True
            else:
                assert versions == []
        assert west.get_secret_value(SecretId=late)["SecretString"] == f"{late}=west-late"
        assert "ReplicationStatus" not in east.describe_secret(SecretId=late)

        # Failback with overwrite: us-west-2's copies become replicas of the promoted secrets.
        done = failback(c.nodes[EAST], EAST, WEST, "--mode", "overwrite")
        assert done["DryRun"] is False and done["Mode"] == "Overwrite"
        assert done["DivergedVersionCount"] == len(lost) + 1
        assert {s["Status"] for s in done["Secrets"]} == {"Replicating"}
        for n in names:
            in_sync(east, n, WEST, timeout=30)
            assert west.describe_secret(SecretId=n)["PrimaryRegion"] == EAST
            assert west.get_secret_value(SecretId=n)["SecretString"] == f"{n}=east-after"
            assert current_version(west, n) == current_version(east, n)
        # Writes on us-east-1 keep arriving in us-west-2.
        east.put_secret_value(SecretId=late, SecretString="after-failback")
        wait_for(lambda: west.get_secret_value(SecretId=late)["SecretString"] == "after-failback",
                 what="a write in us-east-1 reaches us-west-2")
        in_sync(east, late, WEST)
        # The diverged writes are in the audit log.
        [event] = [e for e in audit_events(c.nodes[EAST], "FailbackRegion")
                   if not e["responseElements"]["DryRun"]]
        logged = {v["VersionId"] for s in event["responseElements"]["Secrets"] for v in s["DivergedVersions"]}
        assert logged == set(lost.values()) | {late_version}
    finally:
        proxy.close()


def failback(node, region: str, to: str, *args: str) -> dict:
    done = coffer_region("failback", "--region", region, "--to", to, "--endpoint", node.url, *args)
    assert done.returncode == 0, f"coffer region failback failed: {done.stderr}"
    return json.loads(done.stdout)


def test_failback_swapping_roles_gives_the_old_primary_its_secrets_back_with_the_latest_values(make_cluster):
    c = make_cluster(THREE).start()
    west, east = c.client(WEST), c.client(EAST)
    names = ["dr/swap-a", "dr/swap-b"]
    for n in names:
        west.create_secret(Name=n, SecretString=f"{n}=v1", AddReplicaRegions=[{"Region": EAST}])
    for n in names:
        in_sync(west, n, EAST)
    c.nodes[WEST].kill()
    report = failover(c.nodes[EAST], EAST, WEST)
    assert report["PromotedCount"] == len(names)
    for n in names:
        east.put_secret_value(SecretId=n, SecretString=f"{n}=written-in-east")
    c.nodes[WEST].start()
    west = c.client(WEST)
    for n in names:
        wait_for(lambda n=n: status_of(west, n, EAST) is None, timeout=30,
                 what=f"us-west-2 drops the promoted {n}")

    # Without a mode the command refuses to guess.
    refused = coffer_region("failback", "--region", EAST, "--to", WEST, "--endpoint", c.nodes[EAST].url)
    assert refused.returncode != 0 and "--mode" in refused.stderr

    done = failback(c.nodes[EAST], EAST, WEST, "--mode", "swap-roles")
    assert done["Mode"] == "SwapRoles"
    assert {s["Status"] for s in done["Secrets"]} == {"HandedBack"}
    for n in names:
        # us-west-2 is the primary again, with the value written in us-east-1 ...
        wait_for(lambda n=n: east.describe_secret(SecretId=n).get("PrimaryRegion") == WEST,
                 timeout=30, what=f"{n} in us-east-1 is a replica of us-west-2 again")
        # (A primary with replicas names its own Region as PrimaryRegion, as AWS does.)
        assert [r["Region"] for r in west.describe_secret(SecretId=n)["ReplicationStatus"]] == [EAST]
        assert west.describe_secret(SecretId=n)["PrimaryRegion"] == WEST
        assert west.get_secret_value(SecretId=n)["SecretString"] == f"{n}=written-in-east"
        in_sync(west, n, EAST)
        assert current_version(west, n) == current_version(east, n)
        # ... and its writes reach us-east-1 again; us-east-1 refuses writes as a replica.
        west.put_secret_value(SecretId=n, SecretString=f"{n}=back-in-west")
        wait_for(lambda n=n: east.get_secret_value(SecretId=n)["SecretString"] == f"{n}=back-in-west",
                 what=f"{n}: a write in us-west-2 reaches us-east-1")
        with pytest.raises(Exception) as refused_write:
            east.put_secret_value(SecretId=n, SecretString="nope")
        assert "replica" in str(refused_write.value)
    # Running it again changes nothing.
    again = failback(c.nodes[EAST], EAST, WEST, "--mode", "swap-roles")
    assert {s["Status"] for s in again["Secrets"]} == {"HandedBack"}


def test_a_failover_interrupted_by_sigkill_finishes_when_the_node_restarts(make_cluster):
    c = make_cluster(THREE).start()
    west, east = c.client(WEST), c.client(EAST)
    total = 1000
    names = [f"dr/many-{i:04d}" for i in range(total)]

    def create(chunk):
        client = c.client(WEST)
        for n in chunk:
            client.create_secret(Name=n, SecretString=n, AddReplicaRegions=[{"Region": EAST}])

    threads = [threading.Thread(target=create, args=(names[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(
        lambda: link(point(c.nodes[EAST], EAST), WEST)["ReplicaCount"] == total,
        timeout=120,
        interval=0.5,
        what=f"{total} replicas in us-east-1",
    )
    # The primary's node is gone; the failover starts and the replica node is killed in the
    # middle of it.
    c.nodes[WEST].kill()
    node = c.nodes[EAST]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ADMIN_KEY[0], AWS_SECRET_ACCESS_KEY=ADMIN_KEY[1])
    running = subprocess.Popen(
        [COFFER_BIN, "region", "failover", "--region", EAST, "--from", WEST, "--endpoint", node.url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: "Region failover progress" in node.log_path.read_text(), timeout=60, interval=0.005,
             what="the failover promoted its first chunk")
    node.kill()
    _, err = running.communicate(timeout=30)
    assert running.returncode != 0, "the failover finished before the node was killed"
    log = node.log_path.read_text()
    assert "Region failover complete" not in log

    # Restarted, the node finishes the failover by itself: no call needed.
    node.start()
    east = node.client(EAST)
    wait_for(lambda: "Region failover complete" in node.log_path.read_text(), timeout=120, interval=0.2,
             what="the resumed failover completes")
    assert "Resuming an unfinished Region failover" in node.log_path.read_text()
    for n in names[:: total // 50]:
        assert "PrimaryRegion" not in east.describe_secret(SecretId=n)
    assert link(point(node, EAST), WEST) is None, "a replica of us-west-2 is left in us-east-1"

    # Asked again, the node reports that one failover, every secret promoted once.
    report = failover(node, EAST, WEST)
    assert report["Status"] == "Complete"
    assert report["PromotedCount"] == total
    assert sorted(s["Name"] for s in report["Secrets"]) == names
    assert {s["Status"] for s in report["Secrets"]} == {"Promoted"}
    assert len(report["Secrets"]) == total


def test_failover_and_failback_refuse_bad_input_with_aws_shaped_errors(make_cluster):
    c = make_cluster({EAST: [EAST]}).start()
    node = c.nodes[EAST]
    same = coffer_region("failover", "--region", EAST, "--from", EAST, "--endpoint", node.url)
    assert same.returncode != 0
    assert same.stderr.strip() == (
        "coffer: InvalidParameterException: FromRegion must be another Region than the one "
        "failed over to (us-east-1)."
    )
    nothing = coffer_region("failback", "--region", EAST, "--to", WEST, "--endpoint", node.url, "--dry-run")
    assert nothing.returncode != 0
    assert nothing.stderr.strip() == (
        "coffer: InvalidRequestException: us-east-1 has no completed failover from us-west-2 to "
        "fail back. Run `coffer region failover` first."
    )
    # A failover from a Region with no replicas here promotes nothing and says so.
    empty = failover(node, EAST, WEST)
    assert empty["PromotedCount"] == 0 and empty["Secrets"] == []
    # A wrong secret key is refused by SigV4 like any call.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ADMIN_KEY[0], AWS_SECRET_ACCESS_KEY="wrong")
    denied = subprocess.run(
        [COFFER_BIN, "region", "point", "--region", EAST, "--endpoint", node.url],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert denied.returncode != 0 and "InvalidSignatureException" in denied.stderr
    # The operation name must be one of Coffer's; the body must be JSON.
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def call(target: str, body: str):
        request = AWSRequest(method="POST", url=node.url + "/", data=body,
                             headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
        SigV4Auth(Credentials(*ADMIN_KEY), "secretsmanager", EAST).add_auth(request)
        return requests.post(node.url + "/", data=body, headers=dict(request.headers), timeout=10)

    unknown = call("Coffer.Teleport", "{}")
    assert unknown.status_code == 400
    assert unknown.json()["__type"] == "UnknownOperationException"
    broken = call("Coffer.FailoverRegion", "{not json")
    assert broken.status_code == 400
    assert broken.json()["__type"] == "SerializationException"
    missing = call("Coffer.FailoverRegion", "{}")
    assert missing.json()["__type"] == "ValidationException"
    assert "fromRegion" in missing.json()["Message"]
