"""Coffer Regions as separate processes: a cluster of `coffer serve --config FILE` nodes on
loopback, each hosting some Regions and knowing the others as `[[peers]]`, plus a TCP proxy that
can cut and restore the link between two nodes.

Peers need each other's URLs before they start, so ports are picked up front (`free_port`:
a free port below the ephemeral range) instead of letting each node choose port 0.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
COFFER_BIN = os.environ.get("COFFER_BIN") or str(REPO_ROOT / "target" / "debug" / "coffer")

# One account and one admin key for every node of a deployment (config keys `account_id`,
# `admin_access_key_id`, `admin_secret_access_key`), so one credential works everywhere.
ACCOUNT_ID = "111122223333"
ADMIN_KEY = ("AKIACOFFERCLUSTER0001", "cluster-admin-secret-key-0123456789abcdef")

# No SDK retries: a failure must show as a failure.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


def _ephemeral_start() -> int:
    """The first port the kernel hands out to outgoing connections (Linux's default if unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing is bound to right now (the node binds it a moment later), below the
    ephemeral range. A node restarts on its port; a port of the ephemeral range (what binding
    port 0 gives) can meanwhile become the local port of any outgoing connection on the
    machine, and the restart then fails with "Address already in use" (seen once in a full
    run, the model test's node restart)."""
    top = _ephemeral_start()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(max(1024, top - 12000), top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {top} after 1000 tries")


def wait_for(check, timeout: float = 15.0, interval: float = 0.05, what: str | None = None):
    """Polls `check()` until it returns something truthy; exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = check()
            last = result
        except Exception as e:  # noqa: BLE001 - not there yet
            result, last = None, e
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not within {timeout}s: {what or check.__doc__ or check}; last: {last!r}"
            )
        time.sleep(interval)


def arn_in_region(arn: str, region: str) -> str:
    """A replica's ARN: the primary's with only the Region changed (spec §5.1)."""
    parts = arn.split(":")
    parts[3] = region
    return ":".join(parts)


class Node:
    """One `coffer serve --config FILE` process hosting `regions`."""

    def __init__(self, cluster: Cluster, name: str, regions: list[str], port: int):
        self.cluster = cluster
        self.name = name
        self.regions = list(regions)
        self.port = port
        self.dir = cluster.base / name
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "node.toml"
        self.log_path = self.dir / "node.log"
        self.process: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.cluster.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self):
        """What a client trusts: the cluster's CA when the nodes serve TLS."""
        return str(self.cluster.ca_file) if self.cluster.tls else None

    def write_config(self) -> None:
        c = self.cluster
        lines = [
            f'listen = "127.0.0.1:{self.port}"',
            f'data_dir = "{self.data_dir}"',
            "regions = [" + ", ".join(f'"{r}"' for r in self.regions) + "]",
            f'account_id = "{ACCOUNT_ID}"',
            f'admin_access_key_id = "{ADMIN_KEY[0]}"',
            f'admin_secret_access_key = "{ADMIN_KEY[1]}"',
            f"replication_failure_timeout_secs = {c.failure_timeout_secs}",
        ]
        if c.tls:
            cert, key = c.certificate(self)
            lines += [
                f'tls_cert_file = "{cert}"',
                f'tls_key_file = "{key}"',
                f'peer_ca_file = "{c.ca_file}"',
            ]
        for other in c.nodes.values():
            if other is self:
                continue
            for region in other.regions:
                url = c.peer_urls.get((self.name, region), other.url)
                lines += [
                    "",
                    "[[peers]]",
                    f'region = "{region}"',
                    f'url = "{url}"',
                    f'public_key = "{c.public_key(other, region)}"',
                ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20.0) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} is running"
        self.write_config()
        log = open(self.log_path, "ab")
        log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        env = {**os.environ, "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [COFFER_BIN, "serve", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        log.close()
        process, lines, ready = self.process, [], threading.Event()
        self.stdout_lines = lines

        def pump():
            # Drains stdout for the life of the process so it never blocks on a full pipe.
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("listening on "):
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or not any(l.startswith("listening on ") for l in lines):
            process.kill()
            process.wait()
            pytest.fail(
                f"node {self.name} did not print 'listening on' within {timeout}s "
                f"(exit code {process.returncode}); stdout {lines!r}; log:\n{self.log_tail()}",
                pytrace=False,
            )
        assert lines[-1] == f"listening on {self.url}", lines

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, as an operator stops a node."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"node {self.name} did not stop within {timeout}s of SIGTERM")

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, region: str | None = None):
        return boto3.client(
            "secretsmanager",
            region_name=region or self.regions[0],
            endpoint_url=self.url,
            aws_access_key_id=ADMIN_KEY[0],
            aws_secret_access_key=ADMIN_KEY[1],
            config=CLIENT_CONFIG,
            verify=self.verify,
        )

    def metrics(self) -> str:
        response = requests.get(self.url + "/metrics", timeout=5, verify=self.verify or True)
        response.raise_for_status()
        return response.text

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Cluster:
    """Nodes by name, each with its Regions, e.g. {"us-west-2": ["us-west-2"], ...}."""

    def __init__(
        self, base: Path, layout: dict[str, list[str]], failure_timeout_secs: int = 30, tls: bool = False
    ):
        if not (os.path.isfile(COFFER_BIN) and os.access(COFFER_BIN, os.X_OK)):
            pytest.fail(
                f"no Coffer binary at {COFFER_BIN}: run 'cargo build -p coffer' or set COFFER_BIN",
                pytrace=False,
            )
        self.base = base
        self.failure_timeout_secs = failure_timeout_secs
        # With tls: one CA (openssl) signs each node's certificate; nodes trust it for peers.
        self.tls = tls
        self.ca_file = base / "ca" / "ca.pem"
        if tls:
            self._make_ca()
        # (node name, peer Region) -> URL, for a peer reached through something else (a proxy).
        self.peer_urls: dict[tuple[str, str], str] = {}
        self._public_keys: dict[tuple[str, str], str] = {}
        self.nodes = {name: Node(self, name, regions, free_port()) for name, regions in layout.items()}

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], cwd=self.ca_file.parent, check=True, capture_output=True, timeout=60)

    def _make_ca(self) -> None:
        self.ca_file.parent.mkdir(parents=True, exist_ok=True)
        self._openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Coffer test cluster CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
        )

    def certificate(self, node: Node) -> tuple[Path, Path]:
        """The node's certificate (for 127.0.0.1) and key, signed by the cluster's CA."""
        d = self.ca_file.parent
        cert, key = d / f"{node.name}.pem", d / f"{node.name}.key"
        if not cert.exists():
            self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", key.name, "-out", f"{node.name}.csr", "-subj", f"/CN={node.name}")
            (d / f"{node.name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            self._openssl("x509", "-req", "-in", f"{node.name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                          "-CAcreateserial", "-out", cert.name, "-days", "2", "-extfile", f"{node.name}.ext")
        return cert, key

    def public_key(self, node: Node, region: str) -> str:
        """`coffer public-key` of a Region of a node's data directory (stable once created)."""
        key = (node.name, region)
        if key not in self._public_keys:
            done = subprocess.run(
                [COFFER_BIN, "public-key", "--data-dir", str(node.data_dir), "--region", region],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, f"coffer public-key failed: {done.stderr}"
            self._public_keys[key] = done.stdout.strip()
        return self._public_keys[key]

    def start(self) -> Cluster:
        for node in self.nodes.values():
            node.write_config()
        for node in self.nodes.values():
            node.start()
        return self

    def close(self) -> None:
        for node in self.nodes.values():
            try:
                node.stop()
            except AssertionError:
                pass

    def node_of(self, region: str) -> Node:
        for node in self.nodes.values():
            if region in node.regions:
                return node
        raise KeyError(f"no node hosts {region}")

    def client(self, region: str):
        """boto3 client for a Region, talking to the node that hosts it."""
        return self.node_of(region).client(region)

    def logs(self) -> str:
        return "\n".join(f"=== {n.name} ===\n{n.log_tail()}" for n in self.nodes.values())


class TcpProxy:
    """A TCP forwarder from a local port to 127.0.0.1:`target_port` that can cut the link:
    while cut, open connections are reset and new ones are accepted and reset at once; while
    stalled, connections are accepted and what they send is swallowed, never answered; while
    dropping kinds, each replication request is read whole and, when its `x-coffer-kind` is one
    of them, its connection is reset instead of forwarding it (the message is lost, the others
    still pass: a link that loses big messages and carries small ones)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._up = True
        self._stalled = False
        self._drop_kinds: frozenset[str] = frozenset()
        self.dropped: list[str] = []
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.connections = 0
        self.stalled_connections = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            # Linger 0: close sends RST, as a broken network path would look to the client.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not self._up:
                self._reset(client)
                continue
            if self._stalled:
                with self._lock:
                    self._sockets.add(client)
                    self.stalled_connections += 1
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            requests_pump = self._pump_requests if self._drop_kinds else self._pump
            threading.Thread(target=requests_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close_pair(src, dst)

    def _close_pair(self, src: socket.socket, dst: socket.socket) -> None:
        """Forgets and closes both sides of a forwarded connection."""
        with self._lock:
            self._sockets.discard(src)
            self._sockets.discard(dst)
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def _pump_requests(self, src: socket.socket, dst: socket.socket) -> None:
        """Forwards HTTP/1.1 requests one by one (Content-Length bodies, as Coffer's transport
        sends them), resetting the connection on a request of a dropped kind."""
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = src.recv(65536)
                    if not data:
                        raise OSError("closed")
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower().decode()] = value.strip().decode()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    data = src.recv(65536)
                    if not data:
                        raise OSError("closed")
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                kind = headers.get("x-coffer-kind", "")
                if kind in self._drop_kinds:
                    self.dropped.append(kind)
                    self._reset(src)
                    self._reset(dst)
                    return
                dst.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            self._close_pair(src, dst)

    def drop_kinds(self, *kinds: str) -> None:
        """Loses every replication message of these kinds (`sync`, `sync-batch`, ...) and
        passes the others; `restore()` ends it."""
        self._drop_kinds = frozenset(kinds)
        self._drop_all()

    def _swallow(self, sock: socket.socket) -> None:
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for s in sockets:
            self._reset(s)

    def cut(self) -> None:
        self._up = False
        self._drop_all()

    def stall(self) -> None:
        """Requests go out and no answer ever comes back (a black hole)."""
        self._stalled = True
        self._drop_all()

    def restore(self) -> None:
        self._up = True
        self._stalled = False
        self._drop_kinds = frozenset()
        self._drop_all()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
        self._thread.join(timeout=2)


_METRIC_LINE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample (None when absent)."""
    for line in text.splitlines():
        m = _METRIC_LINE.match(line)
        if not m or m["name"] != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m["value"])
    return None
