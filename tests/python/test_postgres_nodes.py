"""PostgreSQL and several nodes per Region (issue 7): real `coffer serve` processes over the
throwaway PostgreSQL of scripts/postgres.sh (COFFER_TEST_POSTGRES_URL; the test fails, never
skips, without it), each test on a database of its own.

- two nodes on one database under concurrent PutSecretValue to one secret: no lost update,
  staging labels consistent, and each node reads the other's writes at once (no stale cache);
- SIGKILL of the node holding replication leases mid-stream: the other node takes the work over
  when the leases run out and every replica converges;
- `coffer backup` of an embedded SQLite Region restored into PostgreSQL (every secret readable,
  versions, labels, tags and a scheduled deletion kept), and back into SQLite; a damaged backup
  and a non-empty target are refused;
- a node whose root key file differs from the one that sealed the database's keys refuses to
  start, and `migrate_on_start = false` needs `coffer migrate` first.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from cluster import ACCOUNT_ID, ADMIN_KEY, COFFER_BIN, Node, TcpProxy, free_port, wait_for

PSQL = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
REGION = "us-west-2"
REPLICA = "eu-west-1"


@pytest.fixture
def pg_url() -> str:
    """A fresh, empty database on the test PostgreSQL."""
    base = os.environ.get("COFFER_TEST_POSTGRES_URL")
    if not base:
        pytest.fail(
            "COFFER_TEST_POSTGRES_URL is not set: run the suite through scripts/test.sh, or "
            'eval "$(scripts/postgres.sh start)" first',
            pytrace=False,
        )
    name = "t_" + uuid.uuid4().hex[:12]
    psql(base, f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def psql(url: str, sql: str) -> str:
    done = subprocess.run(
        [PSQL, url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"psql failed: {done.stderr}"
    return done.stdout.strip()


class Base:
    """What Node needs of a cluster."""

    def __init__(self, base: Path):
        self.base = base
        # Plain HTTP between these nodes (the TLS cases are in test_tls.py).
        self.tls = False
        self.ca_file = None


class PgNode(Node):
    """A node with store settings and explicit peers (region, url, public key)."""

    def __init__(self, base: Path, name: str, regions: list[str], store_lines: list[str]):
        super().__init__(Base(base), name, regions, free_port())
        self.store_lines = store_lines
        self.peers: list[tuple[str, str, str]] = []

    def write_config(self) -> None:
        lines = [
            f'listen = "127.0.0.1:{self.port}"',
            f'data_dir = "{self.data_dir}"',
            "regions = [" + ", ".join(f'"{r}"' for r in self.regions) + "]",
            f'account_id = "{ACCOUNT_ID}"',
            f'admin_access_key_id = "{ADMIN_KEY[0]}"',
            f'admin_secret_access_key = "{ADMIN_KEY[1]}"',
            "replication_failure_timeout_secs = 300",
            *self.store_lines,
        ]
        for region, url, key in self.peers:
            lines += ["", "[[peers]]", f'region = "{region}"', f'url = "{url}"', f'public_key = "{key}"']
        self.config_path.write_text("\n".join(lines) + "\n")

    def node_id(self) -> str:
        return (self.data_dir / "node-id").read_text().strip()

    def coffer(self, *args: str) -> subprocess.CompletedProcess:
        """Runs `coffer <args> --config node.toml` (written first)."""
        self.write_config()
        return subprocess.run(
            [COFFER_BIN, *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_expecting_failure(self) -> str:
        """Starts the node, expects it to exit non-zero without listening; returns stderr."""
        self.write_config()
        done = subprocess.run(
            [COFFER_BIN, "serve", "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0, f"{self.name} started: {done.stdout}"
        assert "listening on" not in done.stdout
        return done.stderr


def public_key(data_dir: Path, region: str) -> str:
    done = subprocess.run(
        [COFFER_BIN, "public-key", "--data-dir", str(data_dir), "--region", region],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def copy_keys(src: PgNode, dst: PgNode) -> None:
    """What an operator does for a second node: the same root key files."""
    (dst.data_dir / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
    for key in (src.data_dir / "keys").iterdir():
        shutil.copy2(key, dst.data_dir / "keys" / key.name)
        os.chmod(dst.data_dir / "keys" / key.name, 0o600)


@pytest.fixture
def nodes():
    """Nodes a test started, stopped at the end (killed ones are already gone)."""
    started: list[PgNode] = []
    yield started
    for n in started:
        try:
            n.stop()
        except AssertionError:
            n.kill()


def two_nodes(tmp_path: Path, pg_url: str, nodes: list) -> tuple[PgNode, PgNode]:
    store = [f'store = "{pg_url}"']
    a = PgNode(tmp_path, "a", [REGION], store)
    b = PgNode(tmp_path, "b", [REGION], store)
    a.start()
    nodes.append(a)
    copy_keys(a, b)
    b.start()
    nodes.append(b)
    return a, b


def test_two_nodes_concurrent_writes_lose_nothing(tmp_path, pg_url, nodes):
    a, b = two_nodes(tmp_path, pg_url, nodes)
    ca, cb = a.client(), b.client()
    arn = ca.create_secret(Name="shared/db", SecretString="v0")["ARN"]

    # No stale reads: a write on one node is what the other node answers next.
    ca.put_secret_value(SecretId=arn, SecretString="from-a")
    assert cb.get_secret_value(SecretId=arn)["SecretString"] == "from-a"
    cb.put_secret_value(SecretId=arn, SecretString="from-b")
    assert ca.get_secret_value(SecretId=arn)["SecretString"] == "from-b"
    cb.update_secret(SecretId=arn, Description="set on b")
    assert ca.describe_secret(SecretId=arn)["Description"] == "set on b"

    written: dict[str, str] = {}
    errors: list[Exception] = []
    lock = threading.Lock()

    def writer(client, tag: str) -> None:
        for i in range(10):
            value = f"{tag}-{i}"
            try:
                vid = client.put_secret_value(SecretId=arn, SecretString=value)["VersionId"]
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(e)
                continue
            with lock:
                written[vid] = value

    threads = [
        threading.Thread(target=writer, args=(client, f"{node}{t}"))
        for node, client in (("a", a.client()), ("b", b.client()))
        for t in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, f"writes failed: {errors[:3]}"
    assert len(written) == 60

    # Every acknowledged write is a version with its own value (no lost update)...
    versions = ca.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)["Versions"]
    by_id = {v["VersionId"]: v.get("VersionStages", []) for v in versions}
    for vid, value in written.items():
        assert vid in by_id, f"version {vid} ({value}) was lost"
        assert ca.get_secret_value(SecretId=arn, VersionId=vid)["SecretString"] == value
    # ...and the labels are consistent: one AWSCURRENT, one AWSPREVIOUS, on different versions,
    # seen the same from both nodes.
    current = [v for v, s in by_id.items() if "AWSCURRENT" in s]
    previous = [v for v, s in by_id.items() if "AWSPREVIOUS" in s]
    assert len(current) == 1 and len(previous) == 1 and current != previous, by_id
    for client in (ca, cb):
        got = client.get_secret_value(SecretId=arn)
        assert got["VersionId"] == current[0]
        assert got["SecretString"] == written[current[0]]
        stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
        assert stages[current[0]] == ["AWSCURRENT"] and stages[previous[0]] == ["AWSPREVIOUS"]


def test_a_read_on_one_node_returns_every_write_acknowledged_by_the_other(tmp_path, pg_url, nodes):
    """Each node caches the secrets it reads and checks every hit against the database
    (issue 17): a GetSecretValue or DescribeSecret on one node right after a write acknowledged
    by the other returns that write, for every kind of change, by name and by ARN, while
    another client keeps reading on both nodes (so the checks are shared by concurrent reads).
    Random steps; a failure prints its seed (`COFFER_CACHE_SEED=<seed>` replays it)."""
    seed = int(os.environ.get("COFFER_CACHE_SEED", str(random.randrange(1 << 30))))
    print(f"COFFER_CACHE_SEED={seed}")
    rng = random.Random(seed)
    a, b = two_nodes(tmp_path, pg_url, nodes)
    clients = [a.client(), b.client()]
    names = [f"cached/{i}" for i in range(4)]
    expect: dict[str, dict] = {}
    for name in names:
        arn = clients[0].create_secret(Name=name, SecretString=f"{name}=0")["ARN"]
        expect[name] = {"arn": arn, "value": f"{name}=0", "description": None, "tags": {}}

    stop = threading.Event()
    background_errors: list[Exception] = []

    def keep_reading(node) -> None:
        client = node.client()
        while not stop.is_set():
            try:
                client.get_secret_value(SecretId=rng_names.choice(names))
            except ClientError as e:
                # A secret deleted and not yet created again by the step in progress.
                if e.response["Error"]["Code"] != "ResourceNotFoundException":
                    background_errors.append(e)
            except Exception as e:  # noqa: BLE001 - reported below
                background_errors.append(e)

    rng_names = random.Random(seed + 1)
    readers = [threading.Thread(target=keep_reading, args=(node,)) for node in (a, b)]
    for t in readers:
        t.start()
    try:
        for step in range(120):
            name = rng.choice(names)
            e = expect[name]
            writer = rng.randrange(2)
            reader = clients[1 - writer]
            # Both nodes read it first, so both cache the state the write replaces.
            for client in clients:
                client.get_secret_value(SecretId=name)
                client.describe_secret(SecretId=e["arn"])
            what = rng.choice(["put", "put", "describe", "tag", "untag", "stage", "recreate"])
            w = clients[writer]
            if what == "put":
                e["value"] = f"{name}={step}"
                w.put_secret_value(SecretId=name, SecretString=e["value"])
            elif what == "describe":
                e["description"] = f"step {step}"
                w.update_secret(SecretId=e["arn"], Description=e["description"])
            elif what == "tag":
                key = f"k{rng.randrange(3)}"
                e["tags"][key] = f"v{step}"
                w.tag_resource(SecretId=name, Tags=[{"Key": key, "Value": f"v{step}"}])
            elif what == "untag":
                key = f"k{rng.randrange(3)}"
                e["tags"].pop(key, None)
                w.untag_resource(SecretId=name, TagKeys=[key])
            elif what == "stage":
                # Back to the previous value, if there is one.
                versions = w.list_secret_version_ids(SecretId=name)["Versions"]
                current = next(v for v in versions if "AWSCURRENT" in v["VersionStages"])
                previous = [v for v in versions if "AWSPREVIOUS" in v["VersionStages"]]
                if previous:
                    w.update_secret_version_stage(
                        SecretId=name,
                        VersionStage="AWSCURRENT",
                        MoveToVersionId=previous[0]["VersionId"],
                        RemoveFromVersionId=current["VersionId"],
                    )
                    e["value"] = w.get_secret_value(SecretId=name)["SecretString"]
            else:
                w.delete_secret(SecretId=e["arn"], ForceDeleteWithoutRecovery=True)
                wait_for(
                    lambda: not any(
                        s["Name"] == name
                        for s in w.list_secrets(Filters=[{"Key": "name", "Values": [name]}])[
                            "SecretList"
                        ]
                    ),
                    10,
                    what=f"{name} deleted",
                )
                e["value"] = f"{name}={step}"
                e["description"] = None
                e["tags"] = {}
                e["arn"] = w.create_secret(Name=name, SecretString=e["value"])["ARN"]
            where = f"seed {seed}, step {step} ({what} of {name} on node {writer})"
            got = reader.get_secret_value(SecretId=name)
            assert got["SecretString"] == e["value"], where
            assert got["ARN"] == e["arn"], where
            assert reader.get_secret_value(SecretId=e["arn"])["SecretString"] == e["value"], where
            described = reader.describe_secret(SecretId=name)
            assert described["ARN"] == e["arn"], where
            assert described.get("Description") == e["description"], where
            tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
            assert tags == e["tags"], where
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    assert not background_errors, f"seed {seed}: reads failed: {background_errors[:3]}"


def test_two_nodes_started_at_once_on_an_empty_database_share_one_account(tmp_path, pg_url, nodes):
    """An orchestrator starts two nodes together on a new database, keys provisioned beforehand:
    one of them creates the account and its admin, the other takes that account, and both
    serve it."""
    store = [f'store = "{pg_url}"']
    a = PgNode(tmp_path, "a", [REGION], store)
    b = PgNode(tmp_path, "b", [REGION], store)
    public_key(a.data_dir, REGION)  # creates keys/us-west-2.key
    deployment_key = a.data_dir / "keys" / "deployment.key"
    deployment_key.write_text(secrets.token_hex(32) + "\n")
    os.chmod(deployment_key, 0o600)
    copy_keys(a, b)
    for n in (a, b):
        n.write_config()
    go = threading.Barrier(2)

    def start(node: PgNode) -> None:
        go.wait()
        try:
            node.start()
        except BaseException:  # noqa: BLE001 - pytest.fail in a thread; checked below
            pass

    threads = [threading.Thread(target=start, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    nodes.extend([a, b])
    for n in (a, b):
        assert n.process is not None and n.process.poll() is None, f"{n.name} exited:\n{n.log_tail()}"
        assert f"listening on {n.url}" in n.stdout_lines, n.stdout_lines
    assert psql(pg_url, "SELECT count(*) FROM coffer_iam.accounts") == "1"
    assert psql(pg_url, "SELECT count(*) FROM coffer_iam.users") == "1"
    arn = a.client().create_secret(Name="first/secret", SecretString="s")["ARN"]
    assert b.client().get_secret_value(SecretId=arn)["SecretString"] == "s"
    assert f":{ACCOUNT_ID}:" in arn


def test_sigkill_of_the_lease_holder_the_other_node_finishes_replication(tmp_path, pg_url, nodes):
    store = [f'store = "{pg_url}"']
    a = PgNode(tmp_path, "a", [REGION], store)
    b = PgNode(tmp_path, "b", [REGION], store)
    replica = PgNode(tmp_path, "replica", [REPLICA], [])
    primary_key = public_key(a.data_dir, REGION)
    replica_key = public_key(replica.data_dir, REPLICA)
    # Node a reaches the replica's Region through a proxy that will swallow its deliveries, so
    # what a claims stays leased to it, in flight, until it dies.
    stall = TcpProxy(replica.port)
    try:
        a.peers = [(REPLICA, stall.url, replica_key)]
        b.peers = [(REPLICA, replica.url, replica_key)]
        replica.peers = [(REGION, a.url, primary_key)]
        for n in (replica, a, b):
            if n is b:
                copy_keys(a, b)
            n.start()
            nodes.append(n)
        stall.stall()
        ca = a.client()
        names = [f"stream/{i:02d}" for i in range(20)]
        for name in names:
            ca.create_secret(
                Name=name, SecretString=f"value of {name}", AddReplicaRegions=[{"Region": REPLICA}]
            )
        schema = f"coffer_{REGION.replace('-', '_')}"
        owner = a.node_id()

        def leased_by_a():
            return int(
                psql(
                    pg_url,
                    f"SELECT count(*) FROM {schema}.replication_outbox WHERE lease_owner = '{owner}' "
                    f"AND lease_until_ms > (extract(epoch from now()) * 1000)::bigint",
                )
            )

        wait_for(leased_by_a, timeout=10, what="node a holds replication leases")
        a.kill()
        assert leased_by_a() > 0, "node a's leases were gone before the kill"

        # b takes the rows over when a's leases run out (30 s) and the replicas converge.
        cb, cr = b.client(), replica.client(REPLICA)

        def converged():
            for name in names:
                if cr.get_secret_value(SecretId=name)["SecretString"] != f"value of {name}":
                    return False
                status = cb.describe_secret(SecretId=name)["ReplicationStatus"]
                if [s["Status"] for s in status] != ["InSync"]:
                    return False
            return True

        wait_for(converged, timeout=90, interval=0.5, what="every replica InSync through node b")
        assert psql(pg_url, f"SELECT count(*) FROM {schema}.replication_outbox") == "0"
        # A later write is replicated too, with a gone for good.
        cb.put_secret_value(SecretId=names[0], SecretString="after the crash")
        wait_for(
            lambda: cr.get_secret_value(SecretId=names[0])["SecretString"] == "after the crash",
            timeout=30,
            what="a write after the crash reaches the replica",
        )
    finally:
        stall.close()


def fill_region(client) -> dict:
    """Secrets of every shape; returns what must come back after a restore."""
    expect = {}
    for i in range(8):
        name = f"app/{i}"
        client.create_secret(Name=name, SecretString=f"s{i}", Tags=[{"Key": "n", "Value": str(i)}])
        expect[name] = f"s{i}"
    client.create_secret(Name="bin", SecretBinary=b"\x00\x01binary\xff")
    client.put_secret_value(SecretId="app/0", SecretString="s0-new", VersionStages=["AWSCURRENT"])
    client.put_secret_value(SecretId="app/1", SecretString="s1-staged", VersionStages=["MINE"])
    expect["app/0"] = "s0-new"
    client.delete_secret(SecretId="app/7", RecoveryWindowInDays=7)
    del expect["app/7"]
    return expect


def check_region(client, expect: dict) -> None:
    for name, value in expect.items():
        assert client.get_secret_value(SecretId=name)["SecretString"] == value, name
    assert client.get_secret_value(SecretId="app/0", VersionStage="AWSPREVIOUS")["SecretString"] == "s0"
    assert client.get_secret_value(SecretId="app/1", VersionStage="MINE")["SecretString"] == "s1-staged"
    assert client.get_secret_value(SecretId="bin")["SecretBinary"] == b"\x00\x01binary\xff"
    assert client.describe_secret(SecretId="app/3")["Tags"] == [{"Key": "n", "Value": "3"}]
    deleted = client.describe_secret(SecretId="app/7")
    assert "DeletedDate" in deleted
    with pytest.raises(ClientError) as e:
        client.get_secret_value(SecretId="app/7")
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    names = {s["Name"] for s in client.list_secrets(IncludePlannedDeletion=True)["SecretList"]}
    assert names == set(expect) | {"bin", "app/7"}
    # Filters are evaluated by the store over each secret's search terms: they came along.
    listed = client.list_secrets(Filters=[{"Key": "tag-value", "Values": ["3"]}])["SecretList"]
    assert {s["Name"] for s in listed} == {n for n in expect if n.endswith("3")}


def admin_iam(node):
    return boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=node.url,
        aws_access_key_id=ADMIN_KEY[0],
        aws_secret_access_key=ADMIN_KEY[1],
    )


def test_backup_sqlite_restore_postgres_and_back(tmp_path, pg_url, nodes):
    lite = PgNode(tmp_path, "lite", [REGION], [])
    lite.start()
    nodes.append(lite)
    expect = fill_region(lite.client())
    # A user whose only permission is an inline policy: the backup carries both.
    iam = admin_iam(lite)
    iam.create_user(UserName="restored-reader", Tags=[{"Key": "team", "Value": "readers"}])
    iam.put_user_policy(
        UserName="restored-reader",
        PolicyName="read",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}',
    )
    reader_key = iam.create_access_key(UserName="restored-reader")["AccessKey"]
    # A backup is consistent while the node serves; here the node is stopped afterwards anyway.
    backup = tmp_path / "west.cbk"
    done = lite.coffer("backup", "--region", REGION, "--output", str(backup))
    assert done.returncode == 0, done.stderr
    assert "backed up 9 secrets" in done.stdout
    lite.stop()
    raw = backup.read_bytes()
    assert b"s0-new" not in raw and b"app/0" not in raw, "the backup is not encrypted"

    pg = PgNode(tmp_path, "pg", [REGION], [f'store = "{pg_url}"'])
    copy_keys(lite, pg)
    # A damaged file is refused before anything is written.
    damaged = tmp_path / "damaged.cbk"
    damaged.write_bytes(raw[:-40] + bytes([raw[-40] ^ 1]) + raw[-39:])
    done = pg.coffer("restore", "--region", REGION, "--input", str(damaged))
    assert done.returncode != 0 and "damaged or was altered" in done.stderr, done.stderr
    done = pg.coffer("restore", "--region", REGION, "--input", str(backup))
    assert done.returncode == 0, done.stderr
    assert "restored 9 secrets" in done.stdout
    # Restoring twice would mix two states: refused.
    done = pg.coffer("restore", "--region", REGION, "--input", str(backup))
    assert done.returncode != 0 and "empty Region store" in done.stderr, done.stderr

    pg.start()
    nodes.append(pg)
    client = pg.client()
    check_region(client, expect)
    reader = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=pg.url,
        aws_access_key_id=reader_key["AccessKeyId"],
        aws_secret_access_key=reader_key["SecretAccessKey"],
    )
    assert reader.get_secret_value(SecretId="app/1")["SecretString"] == expect["app/1"]
    # The user's tags came along.
    assert admin_iam(pg).list_user_tags(UserName="restored-reader")["Tags"] == [{"Key": "team", "Value": "readers"}]
    with pytest.raises(ClientError) as denied:
        reader.describe_secret(SecretId="app/1")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    client.put_secret_value(SecretId="app/2", SecretString="written on postgres")
    expect["app/2"] = "written on postgres"
    # A secret created after the restore gets search terms of its own.
    client.create_secret(Name="new/3", SecretString="made on postgres", Tags=[{"Key": "n", "Value": "3"}])
    expect["new/3"] = "made on postgres"
    check_region(client, expect)
    back = tmp_path / "back.cbk"
    done = pg.coffer("backup", "--region", REGION, "--output", str(back))
    assert done.returncode == 0, done.stderr
    pg.stop()

    again = PgNode(tmp_path, "again", [REGION], [])
    copy_keys(lite, again)
    done = again.coffer("restore", "--region", REGION, "--input", str(back))
    assert done.returncode == 0, done.stderr
    again.start()
    nodes.append(again)
    check_region(again.client(), expect)

    # Without the Region's key file, the backup cannot be opened.
    stranger = PgNode(tmp_path, "stranger", [REGION], [])
    public_key(stranger.data_dir, REGION)  # a key of its own
    done = stranger.coffer("restore", "--region", REGION, "--input", str(back))
    assert done.returncode != 0 and "damaged or was altered" in done.stderr, done.stderr


def test_a_node_with_another_root_key_refuses_to_start(tmp_path, pg_url, nodes):
    a = PgNode(tmp_path, "a", [REGION], [f'store = "{pg_url}"'])
    a.start()
    nodes.append(a)
    # Before any secret (so before any KMS key): a node with its own Region key is refused.
    early = PgNode(tmp_path, "early", [REGION], [f'store = "{pg_url}"'])
    copy_keys(a, early)
    os.remove(early.data_dir / "keys" / f"{REGION}.key")
    public_key(early.data_dir, REGION)  # a new, different key
    err = early.start_expecting_failure()
    assert "is not the root key" in err and "fingerprint" in err, err
    a.client().create_secret(Name="x", SecretString="y")
    # No key files at all: refused, naming the file to copy.
    b = PgNode(tmp_path, "b", [REGION], [f'store = "{pg_url}"'])
    err = b.start_expecting_failure()
    assert "deployment.key is missing" in err and "copy" in err, err
    # The deployment key but a fresh Region key: refused, nothing changed.
    copy_keys(a, b)
    os.remove(b.data_dir / "keys" / f"{REGION}.key")
    public_key(b.data_dir, REGION)  # a new, different key
    shutil.rmtree(b.data_dir / "regions", ignore_errors=True)
    err = b.start_expecting_failure()
    assert f"{REGION}.key does not open the KMS keys" in err, err
    assert a.client().get_secret_value(SecretId="x")["SecretString"] == "y"


def test_migrate_on_start_false_needs_coffer_migrate(tmp_path, pg_url, nodes):
    n = PgNode(tmp_path, "n", [REGION], [f'store = "{pg_url}"', "migrate_on_start = false"])
    err = n.start_expecting_failure()
    assert "coffer migrate" in err, err
    done = n.coffer("migrate")
    assert done.returncode == 0, done.stderr
    assert psql(pg_url, "SELECT meta_value FROM coffer_us_west_2.coffer_meta WHERE meta_key = 'kind'") == "coffer-region"
    n.start()
    nodes.append(n)
    n.client().create_secret(Name="after-migrate", SecretString="ok")
