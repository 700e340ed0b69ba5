"""GetSecretValue and PutSecretValue throughput of one Region on SQLite (one node) and on
PostgreSQL (one node, two nodes over the same database). Run through bench/postgres.sh.

Each scenario starts fresh `coffer serve` processes (release build) on a new data directory and,
for PostgreSQL, a new database; creates `bench-get` and `bench-put-0` ... `bench-put-63` with
boto3; then runs `coffer-loadgen run` per operation. With two nodes, two generators run at the
same time, one per node, each with half the connections, and their throughputs are added.
Prints a markdown table on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
COFFER = os.environ["COFFER_BIN"]
LOADGEN = os.environ["LOADGEN_BIN"]
PG_URL = os.environ["COFFER_TEST_POSTGRES_URL"]
PSQL = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
CONCURRENCY = int(os.environ.get("CONCURRENCY", "32"))
DURATION = os.environ.get("DURATION", "5s")
WARMUP = os.environ.get("WARMUP", "1s")
# Subsets, for profiling one case: SCENARIOS=sqlite,pg1,pg2 and OPERATIONS=get,put.
SCENARIOS = os.environ.get("SCENARIOS", "sqlite,pg1,pg2").split(",")
OPERATIONS = os.environ.get("OPERATIONS", "get,put").split(",")
REGION = "us-east-1"
KEY = ("AKIABENCHPOSTGRES001", "bench-postgres-secret-key-0123456789abcd")
PUT_SECRETS = 400


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, work: Path, name: str, store: str | None):
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        lines = [
            f'listen = "127.0.0.1:{self.port}"',
            f'data_dir = "{self.dir / "data"}"',
            f'regions = ["{REGION}"]',
            'account_id = "111122223333"',
            f'admin_access_key_id = "{KEY[0]}"',
            f'admin_secret_access_key = "{KEY[1]}"',
            "console = false",
        ]
        if store:
            lines.append(f'store = "{store}"')
        (self.dir / "node.toml").write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.dir / "node.log", "wb")
        self.proc = subprocess.Popen(
            [COFFER, "serve", "--config", str(self.dir / "node.toml")],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "COFFER_LOG": "warn"},
        )
        for line in self.proc.stdout:
            if line.startswith("listening on "):
                break
        else:
            sys.exit(f"node {self.dir} did not start; see {self.dir / 'node.log'}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def client(self):
        return boto3.client(
            "secretsmanager",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=KEY[0],
            aws_secret_access_key=KEY[1],
        )


def copy_keys(src: Node, dst: Node) -> None:
    (dst.dir / "data" / "keys").mkdir(parents=True, mode=0o700)
    for f in (src.dir / "data" / "keys").iterdir():
        shutil.copy2(f, dst.dir / "data" / "keys" / f.name)


def loadgen(node: Node, operation: str, concurrency: int, out: Path) -> subprocess.Popen:
    secret = "bench-get" if operation == "get" else "bench-put"
    return subprocess.Popen(
        [
            LOADGEN, "run", "--endpoint", node.url, "--region", REGION,
            "--secret-id", secret, "--operation", operation, "--secrets", str(PUT_SECRETS),
            "--concurrency", str(concurrency), "--duration", DURATION, "--warmup", WARMUP,
            "--format", "json", "--server-pid", str(node.proc.pid),
        ],
        stdout=open(out, "w"),
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AWS_ACCESS_KEY_ID": KEY[0], "AWS_SECRET_ACCESS_KEY": KEY[1]},
    )


def measure(nodes: list[Node], operation: str, work: Path) -> dict:
    per_node = max(1, CONCURRENCY // len(nodes))
    runs = []
    for i, node in enumerate(nodes):
        out = work / f"{operation}-{i}-{uuid.uuid4().hex[:6]}.json"
        runs.append((loadgen(node, operation, per_node, out), out))
    rps = requests = errors = 0
    p50 = p99 = 0.0
    for proc, out in runs:
        if proc.wait() != 0:
            sys.exit(f"coffer-loadgen failed: {out.read_text()}")
        level = json.loads(out.read_text())["results"][0]
        rps += level["rps"]
        requests += level["requests"]
        errors += level["errors"]
        p50 = max(p50, level.get("p50_ms") or 0.0)
        p99 = max(p99, level.get("p99_ms") or 0.0)
    return {"rps": rps, "requests": requests, "errors": errors, "p50": p50, "p99": p99}


def scenario(name: str, store: str | None, node_count: int, work: Path) -> list[tuple]:
    base = work / name.replace(" ", "-")
    nodes = [Node(base, f"n{i}", store) for i in range(node_count)]
    nodes[0].start()
    for n in nodes[1:]:
        copy_keys(nodes[0], n)
        n.start()
    try:
        c = nodes[0].client()
        c.create_secret(Name="bench-get", SecretString="v" * 100)
        for i in range(PUT_SECRETS):
            c.create_secret(Name=f"bench-put-{i}", SecretString="v" * 100)
        rows = []
        for op in OPERATIONS:
            r = measure(nodes, op, base)
            rows.append((name, op, r))
            print(f"[bench] {name} {op}: {r['rps']:.0f} req/s", file=sys.stderr)
        return rows
    finally:
        for n in nodes:
            n.stop()


def fresh_database() -> str:
    db = "bench_" + uuid.uuid4().hex[:10]
    subprocess.run([PSQL, PG_URL, "-c", f"CREATE DATABASE {db}"], check=True,
                   capture_output=True)
    return PG_URL.rsplit("/", 1)[0] + "/" + db


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="coffer-bench-pg."))
    rows = []
    if "sqlite" in SCENARIOS:
        rows += scenario("SQLite, 1 node", None, 1, work)
    if "pg1" in SCENARIOS:
        rows += scenario("PostgreSQL, 1 node", fresh_database(), 1, work)
    if "pg2" in SCENARIOS:
        rows += scenario("PostgreSQL, 2 nodes", fresh_database(), 2, work)
    print(f"{CONCURRENCY} connections in total, {DURATION} measured after {WARMUP} warm-up, "
          f"{os.cpu_count()} CPUs shared by the generator(s), the node(s) and PostgreSQL.\n")
    print("| store, nodes | operation | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for name, op, r in rows:
        label = "GetSecretValue" if op == "get" else "PutSecretValue"
        print(f"| {name} | {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} |")
    if os.environ.get("KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
