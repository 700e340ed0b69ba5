"""Native TLS (issue 14 §1, §2, §4): `--tls auto` with its generated CA and profile, boto3 and
the AWS CLI over HTTPS, `aws:SecureTransport` and `aws:SourceIp` over HTTP, HTTPS and through
trusted and untrusted proxies, and a certificate reloaded (file change and SIGHUP) while a
client keeps calling."""

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import boto3
import botocore.exceptions
import pytest

from helpers import CLIENT_CONFIG, DEFAULT_REGION, DENY_PLAINTEXT, start_server, unique, write_config

def client(server, *, verify=None, headers=None, service="secretsmanager"):
    key_id, secret = server.access_key
    c = boto3.client(
        service,
        region_name=DEFAULT_REGION,
        endpoint_url=server.endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=CLIENT_CONFIG,
        verify=verify,
    )
    if headers:
        # Added after signing, as a proxy adds them (unsigned headers are not part of SigV4).
        def add(request, **_):
            for k, v in headers.items():
                request.headers[k] = v

        c.meta.events.register("before-send.*", add)
    return c


def ca_of(server):
    return server.data_dir / "tls" / "ca.pem"


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    root = tmp_path_factory.mktemp("https")
    srv = start_server(root / "data", extra_args=["--tls", "auto", "--tls-names", "coffer.test"])
    yield srv
    srv.stop()


def test_tls_auto_serves_https_and_prints_each_client_family_its_line(https):
    assert https.endpoint.startswith("https://127.0.0.1:"), https.endpoint
    ca = str(ca_of(https))
    for line in (
        f"export AWS_CA_BUNDLE={ca}",
        f"export NODE_EXTRA_CA_CERTS={ca}",
        f"export SSL_CERT_FILE={ca}",
    ):
        assert any(l.startswith(line) for l in https.stdout_lines), https.stdout_lines
    profile = https.config_file.read_text()
    assert f"endpoint_url = {https.endpoint}\n" in profile and f"ca_bundle = {ca}\n" in profile, profile
    key = (https.data_dir / "tls" / "server.key").stat().st_mode & 0o777
    assert key == 0o600, oct(key)


def test_boto3_over_https_with_the_generated_ca(https):
    sm = client(https, verify=str(ca_of(https)))
    name = unique()
    sm.create_secret(Name=name, SecretString="over TLS")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "over TLS"
    # The certificate is checked: without the CA the call fails.
    with pytest.raises(botocore.exceptions.SSLError):
        client(https, verify=True).list_secrets()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_served_and_the_certificate_names_the_given_host(https, version):
    context = ssl.create_default_context(cafile=str(ca_of(https)))
    context.minimum_version = context.maximum_version = version
    port = int(https.endpoint.rsplit(":", 1)[1])
    for host in ("localhost", "coffer.test"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]


def test_the_aws_cli_with_the_generated_profile(https, aws_cli, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(https.profile_env)
    env["HOME"] = str(tmp_path)
    name = unique()
    run = lambda *args: subprocess.run(  # noqa: E731
        [aws_cli, *args], env=env, capture_output=True, text=True, timeout=120
    )
    done = run("secretsmanager", "create-secret", "--name", name, "--secret-string", "from the CLI")
    assert done.returncode == 0, done.stderr
    done = run("secretsmanager", "get-secret-value", "--secret-id", name, "--query", "SecretString", "--output", "text")
    assert done.returncode == 0 and done.stdout.strip() == "from the CLI", done


def test_a_deny_plaintext_policy_denies_over_http_and_allows_over_https(https, server):
    # Over HTTPS: the policy is accepted and the secret stays usable, DeleteResourcePolicy too.
    sm = client(https, verify=str(ca_of(https)))
    name = unique()
    sm.create_secret(Name=name, SecretString="v")
    sm.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps(DENY_PLAINTEXT))
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"
    sm.delete_resource_policy(SecretId=name)
    # Over plain HTTP (the shared server): denied.
    plain = server.client()
    other = unique()
    plain.create_secret(Name=other, SecretString="v")
    plain.put_resource_policy(SecretId=other, ResourcePolicy=json.dumps(DENY_PLAINTEXT))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        plain.get_secret_value(SecretId=other)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def node_trusting(tmp_path_factory, name, cidr):
    root = tmp_path_factory.mktemp(name)
    config = write_config(root / "node.toml", trusted_proxies=[cidr])
    return start_server(root / "data", extra_args=["--config", str(config)])


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory):
    """A plain-HTTP node that trusts 127.0.0.1 as its proxy."""
    srv = node_trusting(tmp_path_factory, "proxied", "127.0.0.1/32")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def untrusting(tmp_path_factory):
    """A plain-HTTP node whose trusted proxies are elsewhere."""
    srv = node_trusting(tmp_path_factory, "untrusting", "10.0.0.0/8")
    yield srv
    srv.stop()


def locked_secret(server):
    name = unique()
    sm = client(server)
    sm.create_secret(Name=name, SecretString="behind a proxy")
    sm.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps(DENY_PLAINTEXT))
    return name


def test_a_trusted_proxy_saying_https_is_believed(behind_proxy):
    name = locked_secret(behind_proxy)
    proxied = client(behind_proxy, headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"})
    assert proxied.get_secret_value(SecretId=name)["SecretString"] == "behind a proxy"
    # The proxy saying http (or nothing): denied.
    for headers in ({"X-Forwarded-Proto": "http"}, None):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client(behind_proxy, headers=headers).get_secret_value(SecretId=name)
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def test_an_untrusted_peer_saying_https_is_not_believed(untrusting):
    name = locked_secret(untrusting)
    forged = client(untrusting, headers={"X-Forwarded-Proto": "https"})
    with pytest.raises(botocore.exceptions.ClientError) as info:
        forged.get_secret_value(SecretId=name)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def source_ip_policy(cidr):
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": cidr}},
            }
        ],
    }


def audit_records(server):
    path = server.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_source_ip_and_the_audit_log_use_x_forwarded_for_from_a_trusted_proxy_only(behind_proxy, untrusting):
    for srv, expected in ((behind_proxy, "203.0.113.5"), (untrusting, "127.0.0.1")):
        name = unique()
        sm = client(srv)
        sm.create_secret(Name=name, SecretString="v")
        sm.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps(source_ip_policy("203.0.113.0/24")))
        # The client wrote 198.51.100.1 itself; the proxy appended what it saw.
        via = client(srv, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.5"})
        if expected == "203.0.113.5":
            assert via.get_secret_value(SecretId=name)["SecretString"] == "v"
        else:
            with pytest.raises(botocore.exceptions.ClientError) as info:
                via.get_secret_value(SecretId=name)
            assert info.value.response["Error"]["Code"] == "AccessDeniedException"
        record = [
            r
            for r in audit_records(srv)
            if r.get("eventName") == "GetSecretValue" and name in json.dumps(r.get("requestParameters"))
        ][-1]
        assert record["sourceIPAddress"] == expected, record


# --- Certificate reload ---------------------------------------------------------------------


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_cert(dir, name):
    """A CA `name`-ca.pem and a certificate for 127.0.0.1 signed by it: `name`.pem, `name`.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem", "-days", "2", "-subj", f"/CN={name} CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=dir)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=dir)
    (dir / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=dir)


def presented_issuer(server, bundle) -> str:
    context = ssl.create_default_context(cafile=str(bundle))
    port = int(server.endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
            return issuer["commonName"]


def install(dir, name):
    # As certbot and friends do: write new files, then rename them into place.
    for ext in ("pem", "key"):
        (dir / f"live.{ext}.new").write_bytes((dir / f"{name}.{ext}").read_bytes())
    os.replace(dir / "live.key.new", dir / "live.key")
    os.replace(dir / "live.pem.new", dir / "live.pem")


def test_the_certificate_is_reloaded_on_file_change_and_sighup_while_a_client_calls(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_cert(certs, "first")
    make_cert(certs, "second")
    bundle = certs / "bundle.pem"
    bundle.write_text((certs / "first-ca.pem").read_text() + (certs / "second-ca.pem").read_text())
    install(certs, "first")
    srv = start_server(
        tmp_path / "data",
        extra_args=["--tls-cert", str(certs / "live.pem"), "--tls-key", str(certs / "live.key")],
    )
    errors, calls = [], [0]
    stop = threading.Event()
    try:
        sm = client(srv, verify=str(bundle))
        name = unique()
        sm.create_secret(Name=name, SecretString="v")

        def keep_calling():
            # New connections too: each call on a fresh client does a handshake.
            while not stop.is_set() and calls[0] < 2000:
                try:
                    c = sm if calls[0] % 2 else client(srv, verify=str(bundle))
                    assert c.get_secret_value(SecretId=name)["SecretString"] == "v"
                except Exception as e:  # noqa: BLE001 - every failure is reported below
                    errors.append(repr(e))
                calls[0] += 1

        caller = threading.Thread(target=keep_calling)
        caller.start()
        assert presented_issuer(srv, bundle) == "first CA"
        install(certs, "second")
        deadline = time.monotonic() + 10
        while presented_issuer(srv, bundle) != "second CA":
            assert time.monotonic() < deadline, "the changed certificate was not picked up"
            time.sleep(0.2)
        # SIGHUP reloads too (a deployment that does not want files watched sends it).
        install(certs, "first")
        srv.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "SIGHUP" not in srv.stderr_text() or presented_issuer(srv, bundle) != "first CA":
            assert time.monotonic() < deadline, "SIGHUP did not reload the certificate"
            time.sleep(0.1)
        stop.set()
        caller.join(timeout=60)
        assert calls[0] > 10, calls
        assert errors == [], errors[:3]
        assert "TLS certificate reloaded" in srv.stderr_text()
    finally:
        stop.set()
        srv.stop()


# --- Replication over HTTPS -----------------------------------------------------------------


def test_a_single_tls_node_replicates_between_its_own_regions(https):
    """Its Regions are reached through its own https:// URL (the node trusts its certificate)."""
    from cluster import wait_for

    sm = client(https, verify=str(ca_of(https)))
    name = unique()
    sm.create_secret(Name=name, SecretString="to eu", AddReplicaRegions=[{"Region": "eu-west-1"}])
    eu = boto3.client(
        "secretsmanager",
        region_name="eu-west-1",
        endpoint_url=https.endpoint,
        aws_access_key_id=https.access_key[0],
        aws_secret_access_key=https.access_key[1],
        config=CLIENT_CONFIG,
        verify=str(ca_of(https)),
    )
    wait_for(lambda: eu.get_secret_value(SecretId=name)["SecretString"] == "to eu", what="the replica")
    wait_for(
        lambda: sm.describe_secret(SecretId=name)["ReplicationStatus"][0]["Status"] == "InSync",
        what="the replica shows InSync",
    )


def test_three_processes_replicate_over_https(tmp_path):
    from cluster import Cluster, wait_for

    layout = {"west": ["us-west-2"], "east": ["us-east-1"], "eu": ["eu-west-1"]}
    cluster = Cluster(tmp_path / "cluster", layout, tls=True)
    try:
        cluster.start()
        for node in cluster.nodes.values():
            assert node.url.startswith("https://"), node.url
        west = cluster.client("us-west-2")
        name = unique()
        west.create_secret(
            Name=name,
            SecretString="v1",
            AddReplicaRegions=[{"Region": "us-east-1"}, {"Region": "eu-west-1"}],
        )
        west.put_secret_value(SecretId=name, SecretString="v2")
        for region in ("us-east-1", "eu-west-1"):
            replica = cluster.client(region)
            wait_for(
                lambda: replica.get_secret_value(SecretId=name)["SecretString"] == "v2",
                what=f"{region} has v2 over HTTPS",
            )
        statuses = lambda: {  # noqa: E731
            s["Region"]: s["Status"] for s in west.describe_secret(SecretId=name)["ReplicationStatus"]
        }
        wait_for(lambda: statuses() == {"us-east-1": "InSync", "eu-west-1": "InSync"}, what="both InSync")
    finally:
        cluster.close()
        print(cluster.logs())


def test_a_peer_whose_certificate_is_not_trusted_is_not_replicated_to(tmp_path):
    """Without peer_ca_file naming the peers' CA, a https:// peer is unreachable."""
    from cluster import Cluster

    layout = {"west": ["us-west-2"], "east": ["us-east-1"]}
    cluster = Cluster(tmp_path / "cluster", layout, tls=True)
    west = cluster.nodes["west"]
    original = west.write_config

    def without_ca():
        original()
        text = west.config_path.read_text()
        west.config_path.write_text("\n".join(l for l in text.splitlines() if not l.startswith("peer_ca_file")) + "\n")

    west.write_config = without_ca
    try:
        cluster.start()
        sm = cluster.client("us-west-2")
        name = unique()
        sm.create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": "us-east-1"}])
        time.sleep(3)
        with pytest.raises(botocore.exceptions.ClientError):
            cluster.client("us-east-1").get_secret_value(SecretId=name)
        assert "certificate" in west.log_tail(200).lower() or "UnknownIssuer" in west.log_tail(200)
    finally:
        cluster.close()
