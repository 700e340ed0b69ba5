"""Replication on the bad day (issue 12): three `coffer serve --config` nodes on loopback with a
TCP proxy that refuses (cut) or black-holes (stall) one link, SIGKILL of a node, a promotion in a
hurry. Each test is a case that was wrong before: driven through boto3 and the AWS CLI as a user
would, asserting only what a user sees.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from cluster import ACCOUNT_ID, ADMIN_KEY, TcpProxy, metric, wait_for
from test_replication_processes import (
    EAST,
    EU,
    NAME,
    THREE,
    WEST,
    aws_cli,
    in_sync,
    is_gone,
    make_cluster,  # noqa: F401 - pytest fixture
    settled,
    status_of,
)


def cli(node, region: str, *args: str) -> dict:
    """`aws secretsmanager ...` against `node`, as a user types it (JSON output parsed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ADMIN_KEY[0],
        AWS_SECRET_ACCESS_KEY=ADMIN_KEY[1],
        AWS_DEFAULT_REGION=region,
        AWS_MAX_ATTEMPTS="1",
    )
    done = subprocess.run(
        [aws_cli(), "secretsmanager", *args, "--endpoint-url", node.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"aws secretsmanager {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else {}


def queue_empty(node, source: str, dest: str) -> bool:
    return not metric(node.metrics(), "coffer_replication_queue_depth", source=source, destination=dest)


def through_proxy(make_cluster, layout=THREE, **kw):
    """A cluster whose us-west-2 node reaches us-east-1 only through a proxy."""
    c = make_cluster(layout, **kw)
    proxy = TcpProxy(c.nodes[EAST].port)
    c.peer_urls[(WEST, EAST)] = proxy.url
    c.start()
    return c, proxy


def keep_writing(client, secret_id: str, pause: float):
    """A thread that changes the secret's description every `pause` seconds until the returned
    event is set: writes that replicate without adding versions (AWS caps a secret at 100
    deprecated versions a day). Returns (stop event, thread, errors seen)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        i = 0
        try:
            while not stop.is_set():
                i += 1
                client.update_secret(SecretId=secret_id, Description=f"d{i}")
                time.sleep(pause)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    return stop, thread, errors


# ---------------------------------------------------------------------------------------------
# A promoted replica is never resurrected or overwritten by its old primary


def test_a_promoted_then_deleted_replica_is_not_resurrected_when_the_old_primary_returns(make_cluster):
    c, proxy = through_proxy(make_cluster, failure_timeout_secs=2)
    try:
        west, east = c.client(WEST), c.client(EAST)
        west.create_secret(Name=NAME, SecretString="v1", AddReplicaRegions=[{"Region": EAST}])
        in_sync(west, NAME, EAST)

        # The link is cut, the primary acknowledges a write that never leaves, and dies.
        proxy.cut()
        west.put_secret_value(SecretId=NAME, SecretString="west-pending")
        c.nodes[WEST].kill()

        # The operator promotes the replica in a hurry, then deletes it (AWS CLI).
        promoted = cli(c.nodes[EAST], EAST, "stop-replication-to-replica", "--secret-id", NAME)
        assert promoted["ARN"].split(":")[3] == EAST
        cli(c.nodes[EAST], EAST, "delete-secret", "--secret-id", NAME, "--force-delete-without-recovery")
        assert is_gone(east, NAME)

        # The old primary comes back with its undelivered write, over a healed link.
        proxy.restore()
        c.nodes[WEST].start()
        west = c.client(WEST)
        wait_for(lambda: status_of(west, NAME, EAST) is None, timeout=20,
                 what="the old primary learns that us-east-1 was promoted")
        wait_for(lambda: queue_empty(c.nodes[WEST], WEST, EAST), what="nothing left to deliver to us-east-1")
        assert is_gone(east, NAME), "the deleted secret came back in us-east-1"

        # Later writes of the old primary never reach us-east-1 either.
        west.put_secret_value(SecretId=NAME, SecretString="west-later")
        wait_for(lambda: queue_empty(c.nodes[WEST], WEST, EAST), what="nothing left to deliver to us-east-1")
        assert is_gone(east, NAME)
        assert "ReplicationStatus" not in west.describe_secret(SecretId=NAME)
    finally:
        proxy.close()


def test_re_adding_a_promoted_region_shows_the_name_clash_and_overwrite_makes_it_in_sync(make_cluster):
    c = make_cluster().start()
    west, east = c.client(WEST), c.client(EAST)
    created = west.create_secret(Name=NAME, SecretString="from-west", AddReplicaRegions=[{"Region": EAST}])
    in_sync(west, NAME, EAST)
    east.stop_replication_to_replica(SecretId=NAME)
    east.put_secret_value(SecretId=NAME, SecretString="promoted")
    wait_for(lambda: status_of(west, NAME, EAST) is None, what="the primary drops the promoted Region")

    # Replicating to that Region again is a name clash, shown as Failed (AWS CLI) ...
    answer = cli(c.nodes[WEST], WEST, "replicate-secret-to-regions", "--secret-id", NAME,
                 "--add-replica-regions", f"Region={EAST}")
    assert answer["ReplicationStatus"] == [
        {"Region": EAST, "KmsKeyId": "alias/aws/secretsmanager", "Status": "InProgress"}
    ]
    entry = settled(west, NAME, EAST)
    assert entry["Status"] == "Failed", entry
    assert entry["StatusMessage"] == f"Replication failed: Secret name {NAME} already exists in region {EAST}.", entry
    # ... that stays listed (it does not vanish) and leaves the promoted secret untouched.
    wait_for(lambda: queue_empty(c.nodes[WEST], WEST, EAST), what="the failed delivery is settled")
    assert status_of(west, NAME, EAST)["Status"] == "Failed"
    assert east.get_secret_value(SecretId=NAME)["SecretString"] == "promoted"
    assert "PrimaryRegion" not in east.describe_secret(SecretId=NAME)

    # The retry with overwrite replaces it with a replica of the primary (boto3).
    west.replicate_secret_to_regions(
        SecretId=NAME, AddReplicaRegions=[{"Region": EAST}], ForceOverwriteReplicaSecret=True
    )
    in_sync(west, NAME, EAST)
    got = east.get_secret_value(SecretId=NAME)
    assert got["SecretString"] == "from-west"
    assert got["VersionId"] == created["VersionId"]
    assert east.describe_secret(SecretId=NAME)["PrimaryRegion"] == WEST
    west.put_secret_value(SecretId=NAME, SecretString="after")
    wait_for(lambda: east.get_secret_value(SecretId=NAME)["SecretString"] == "after",
             what="later writes reach the replica again")


def test_a_region_removed_and_added_again_keeps_its_replica_when_the_removal_arrives_late(make_cluster):
    """The removal of a Region and the replication asked for again after it travel in order:
    a removal that could not be delivered holds back the later syncs of that secret, and the
    replica never ends up deleted under a primary that lists it InSync (model seed 7)."""
    c, proxy = through_proxy(make_cluster, failure_timeout_secs=30)
    try:
        west, east = c.client(WEST), c.client(EAST)
        west.create_secret(Name=NAME, SecretString="v1", AddReplicaRegions=[{"Region": EAST}])
        in_sync(west, NAME, EAST)

        # The link loses removals and carries everything else.
        proxy.drop_kinds("remove")
        west.remove_regions_from_replication(SecretId=NAME, RemoveReplicaRegions=[EAST])
        cli(c.nodes[WEST], WEST, "replicate-secret-to-regions", "--secret-id", NAME,
            "--add-replica-regions", f"Region={EAST}")
        west.put_secret_value(SecretId=NAME, SecretString="after")
        wait_for(lambda: proxy.dropped, what="the removal is lost on the link at least once")
        time.sleep(2)

        proxy.restore()
        in_sync(west, NAME, EAST, timeout=30)
        wait_for(lambda: queue_empty(c.nodes[WEST], WEST, EAST), timeout=30,
                 what="nothing left to deliver to us-east-1")
        assert status_of(west, NAME, EAST)["Status"] == "InSync"
        assert not is_gone(east, NAME), "the replica was deleted under a primary that lists it"
        assert east.get_secret_value(SecretId=NAME)["SecretString"] == "after"
        assert east.describe_secret(SecretId=NAME)["PrimaryRegion"] == WEST
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# Failed within the configured timeout


def test_failed_appears_within_the_configured_timeout_whether_or_not_writes_continue(make_cluster):
    timeout = 20
    c, proxy = through_proxy(make_cluster, failure_timeout_secs=timeout)
    try:
        west = c.client(WEST)
        for name in ("busy", "idle"):
            west.create_secret(Name=name, SecretString="v0", AddReplicaRegions=[{"Region": EAST}])
            in_sync(west, name, EAST)

        proxy.cut()
        cut_at = time.monotonic()
        stop, thread, errors = keep_writing(west, "busy", 0.2)
        try:
            west.put_secret_value(SecretId="idle", SecretString="v1")
            failed_after: dict[str, float] = {}

            def both_failed():
                for name in ("busy", "idle"):
                    entry = status_of(west, name, EAST)
                    if name not in failed_after and entry["Status"] == "Failed":
                        assert entry["StatusMessage"].startswith(
                            "Replication failed: network error reaching Region us-east-1"), entry
                        failed_after[name] = time.monotonic() - cut_at
                return len(failed_after) == 2

            wait_for(both_failed, timeout=timeout + 30, interval=0.25, what="both replicas show Failed")
        finally:
            stop.set()
            thread.join(30)
        assert not errors, errors
        for name, after in failed_after.items():
            assert timeout - 5 <= after <= timeout + 5, f"{name}: Failed after {after:.1f} s (timeout {timeout} s)"
    finally:
        proxy.close()


def test_while_a_link_is_down_every_queued_replica_fails_on_time_and_heals(make_cluster):
    """While the link to us-east-1 is down, the lane sends one sync as a probe and schedules the
    others again without building them (they would only wait out the timeout, at the cost of
    the primary's CPU). Every replica behind the dead link still shows Failed within the
    configured timeout, and all of them are InSync again soon after the link comes back."""
    timeout = 12
    c, proxy = through_proxy(make_cluster, failure_timeout_secs=timeout)
    try:
        west = c.client(WEST)
        names = [f"many-{i}" for i in range(12)]
        for name in names:
            west.create_secret(Name=name, SecretString="v0", AddReplicaRegions=[{"Region": EAST}])
        for name in names:
            in_sync(west, name, EAST)

        proxy.stall()  # accepts and never answers: every attempt waits out the 5 s timeout
        cut_at = time.monotonic()
        for i in range(4):
            for name in names:
                west.update_secret(SecretId=name, Description=f"d{i}")
            time.sleep(1)
        failed_after: dict[str, float] = {}

        def all_failed():
            for name in names:
                entry = status_of(west, name, EAST)
                if name not in failed_after and entry["Status"] == "Failed":
                    assert entry["StatusMessage"].startswith(
                        "Replication failed: network error reaching Region us-east-1"), entry
                    failed_after[name] = time.monotonic() - cut_at
            return len(failed_after) == len(names)

        wait_for(all_failed, timeout=timeout + 30, interval=0.25, what="every replica shows Failed")
        for name, after in failed_after.items():
            assert timeout - 5 <= after <= timeout + 5, f"{name}: Failed after {after:.1f} s (timeout {timeout} s)"
        deferred = metric(c.nodes[WEST].metrics(), "coffer_replication_deliveries_total",
                          source=WEST, destination=EAST, outcome="deferred_link_down") or 0
        assert deferred >= 1, "no sync was held back while the link was down"

        proxy.restore()
        healed_at = time.monotonic()
        for name in names:
            in_sync(west, name, EAST, timeout=30)
            east = c.client(EAST)
            assert east.describe_secret(SecretId=name)["Description"] == "d3"
        # Each row waits out at most its 5 s backoff once a probe gets through.
        assert time.monotonic() - healed_at < 20
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# One silent Region never delays another


def test_a_black_holed_region_does_not_delay_replication_to_a_healthy_one(make_cluster):
    c, proxy = through_proxy(make_cluster, failure_timeout_secs=30)
    try:
        west, eu = c.client(WEST), c.client(EU)
        west.create_secret(Name="busy", SecretString="v0",
                           AddReplicaRegions=[{"Region": EAST}, {"Region": EU}])
        in_sync(west, "busy", EAST)
        in_sync(west, "busy", EU)

        proxy.stall()  # us-west-2 -> us-east-1 accepts and never answers
        # About 40 writes a second to a secret replicated to both.
        stop, thread, errors = keep_writing(west, "busy", 0.025)
        delays = []
        try:
            for i in range(8):
                name = f"eu-only-{i}"
                west.create_secret(Name=name, SecretString=f"e{i}", AddReplicaRegions=[{"Region": EU}])
                started = time.monotonic()
                wait_for(lambda: not is_gone(eu, name), timeout=30, interval=0.02,
                         what=f"{name} appears in eu-west-1")
                delays.append(time.monotonic() - started)
                time.sleep(1)
        finally:
            stop.set()
            thread.join(30)
        assert not errors, errors
        assert proxy.stalled_connections >= 1, "the black hole was never reached"
        # Healthy: ~0.1 s; before lanes: 5 s, then more than 15 s. The bounds leave room for a
        # loaded machine, not for a stall.
        shown = [round(d, 2) for d in delays]
        assert sorted(delays)[len(delays) // 2] < 1.0, f"eu-west-1 delays with us-east-1 black-holed: {shown}"
        assert max(delays) < 3.0, f"eu-west-1 delays with us-east-1 black-holed: {shown}"
        # The busy secret's eu-west-1 replica keeps up as well.
        last = west.describe_secret(SecretId="busy")["Description"]
        wait_for(lambda: eu.describe_secret(SecretId="busy")["Description"] == last, timeout=3,
                 what="eu-west-1 has the busy secret's last write")
        in_sync(west, "busy", EU, timeout=3)
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# /internal/replication refuses what is not from a peer before reading it


def _post_head(port: int, headers: dict[str, str], length: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = [f"POST /internal/replication HTTP/1.1", f"Host: 127.0.0.1:{port}",
            f"Content-Length: {length}", "Content-Type: application/octet-stream"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return s


def _status_of_answer(s: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_an_unauthenticated_replication_body_is_refused_before_it_is_read(make_cluster):
    c = make_cluster().start()
    node = c.nodes[WEST]
    peer_headers = {
        "x-coffer-source-region": EAST,
        "x-coffer-dest-region": WEST,
        "x-coffer-kind": "sync",
    }
    # A claimed peer without the sender's proof: refused on the headers alone, while the client
    # has not sent a byte of its 64 MiB body.
    s = _post_head(node.port, peer_headers, 64 * 1024 * 1024)
    try:
        assert _status_of_answer(s) == 403
    finally:
        s.close()

    # 32 clients pushing 16 MiB each (forged proof) do not make the node allocate their bodies.
    before = _peak_rss_mb(node.process.pid)
    forged = {**peer_headers, "x-coffer-sender-proof": f"{int(time.time())}.{'ab' * 32}"}
    statuses: list[int] = []

    def push():
        s = _post_head(node.port, forged, 16 * 1024 * 1024)
        try:
            chunk = b"\0" * 65536
            s.sendall(chunk)
            statuses.append(_status_of_answer(s))
            try:
                for _ in range(255):
                    s.sendall(chunk)
            except OSError:
                pass  # the node closed the connection without reading the rest
        finally:
            s.close()

    threads = [threading.Thread(target=push) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [403] * 32, statuses
    grown = _peak_rss_mb(node.process.pid) - before
    assert grown < 64, f"peak RSS grew by {grown:.0f} MB for 32 refused bodies"
    # The node still serves, and replication from its real peers still works.
    west, eu = c.client(WEST), c.client(EU)
    west.create_secret(Name=NAME, SecretString="v1", AddReplicaRegions=[{"Region": EU}])
    in_sync(west, NAME, EU)
    assert eu.get_secret_value(SecretId=NAME)["SecretString"] == "v1"
