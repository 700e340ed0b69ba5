"""The `coffer serve` contract that users, the README and the test suites rely on: what it
prints, the files it writes, start-up time, restarts on the same data directory, SIGTERM."""

import os
import re
import stat
import subprocess
import time

import pytest
import requests

from helpers import COFFER_BIN, REGIONS, expect_error, midnight_utc_today, start_server, unique


def test_serve_prints_the_export_line_then_the_listening_line(fresh_server):
    data = fresh_server.data_dir
    assert fresh_server.stdout_lines[:2] == [
        f"export AWS_SHARED_CREDENTIALS_FILE={data}/aws/credentials AWS_CONFIG_FILE={data}/aws/config",
        f"listening on {fresh_server.endpoint}",
    ]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fresh_server.endpoint)


def test_first_start_writes_a_default_profile_with_region_and_endpoint(fresh_server):
    config = fresh_server.config_file.read_text()
    assert re.search(r"^\[default\]$", config, re.M)
    assert re.search(r"^region\s*=\s*us-east-1$", config, re.M)
    assert re.search(rf"^endpoint_url\s*=\s*{re.escape(fresh_server.endpoint)}$", config, re.M)
    key_id, secret = fresh_server.access_key
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key_id), key_id
    assert len(secret) == 40


def test_health_answers_once_listening_and_start_up_is_quick(fresh_server):
    response = requests.get(fresh_server.endpoint + "/health", timeout=5)
    assert response.status_code == 200
    assert sorted(response.json()["regions"]) == sorted(REGIONS)
    assert fresh_server.startup_seconds < 1.0, fresh_server.startup_seconds


def test_metrics_show_the_background_workers_running(fresh_server):
    """The purge and the replication worker run supervised (restarted after a panic); /metrics
    says whether each runs and how often it was restarted."""
    text = requests.get(fresh_server.endpoint + "/metrics", timeout=5).text
    for worker in ("purge", "replication"):
        assert f'coffer_worker_running{{worker="{worker}"}} 1' in text, text
        assert f'coffer_worker_restarts_total{{worker="{worker}"}} 0' in text, text


def test_sigterm_stops_the_server_cleanly(tmp_path):
    srv = start_server(tmp_path / "data")
    srv.client().create_secret(Name="x", SecretString="v")
    assert srv.stop() == 0
    assert "panicked" not in srv.stderr_text()


def test_sigterm_right_after_the_listening_line_still_shuts_down_gracefully(tmp_path):
    # Service managers and scripts may stop the server as soon as it said it is listening.
    codes = []
    for i in range(5):
        srv = start_server(tmp_path / f"data{i}")
        codes.append(srv.stop())
    assert codes == [0] * 5, f"exit codes {codes} (-15: killed by SIGTERM instead of a graceful stop)"


def test_a_restart_on_the_same_directory_keeps_secrets_keys_and_account(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, account_id=None)
    client = first.client()
    created = client.create_secret(Name="kept", SecretString="still here", Tags=[{"Key": "k", "Value": "v"}])
    client.put_secret_value(SecretId="kept", SecretString="second")
    client.create_secret(Name="doomed", SecretString="v")
    client.delete_secret(SecretId="doomed", RecoveryWindowInDays=7)
    west = first.client("us-west-2").create_secret(Name="west", SecretBinary=b"\x00\x01")
    key = first.access_key
    assert first.stop() == 0

    second = start_server(data, account_id=None)
    try:
        assert second.access_key == key
        assert second.startup_seconds < 1.0, second.startup_seconds
        client = second.client()
        got = client.get_secret_value(SecretId="kept")
        assert got["ARN"] == created["ARN"] and got["SecretString"] == "second"
        assert client.get_secret_value(SecretId="kept", VersionStage="AWSPREVIOUS")["SecretString"] == "still here"
        assert client.describe_secret(SecretId="kept")["Tags"] == [{"Key": "k", "Value": "v"}]
        assert "DeletedDate" in client.describe_secret(SecretId="doomed")
        assert second.client("us-west-2").get_secret_value(SecretId=west["ARN"])["SecretBinary"] == b"\x00\x01"
        # The profile follows the new port, so the CLI keeps working with no flags.
        config = second.config_file.read_text()
        assert re.search(rf"^endpoint_url\s*=\s*{re.escape(second.endpoint)}$", config, re.M), config
    finally:
        second.stop()


def test_the_day_of_a_read_outlives_a_stop_and_a_kill_after_it(tmp_path):
    # The LastAccessedDate of a read is written shortly behind the read (docs/architecture.md):
    # a graceful stop writes the days still waiting, and a process killed a moment after a read
    # has written its day already.
    data = tmp_path / "data"
    first = start_server(data)
    client = first.client()
    for name in ("stopped", "killed", "unread"):
        client.create_secret(Name=name, SecretString="v")
    client.get_secret_value(SecretId="stopped")
    assert client.describe_secret(SecretId="stopped")["LastAccessedDate"] == midnight_utc_today()
    assert first.stop() == 0

    second = start_server(data)
    client = second.client()
    assert client.describe_secret(SecretId="stopped")["LastAccessedDate"] == midnight_utc_today()
    client.get_secret_value(SecretId="killed")
    time.sleep(1)
    second.process.kill()
    second.process.wait()

    third = start_server(data)
    try:
        client = third.client()
        assert client.describe_secret(SecretId="killed")["LastAccessedDate"] == midnight_utc_today()
        assert "LastAccessedDate" not in client.describe_secret(SecretId="unread")
        listed = {s["Name"]: s for s in client.list_secrets()["SecretList"]}
        assert "LastAccessedDate" in listed["killed"] and "LastAccessedDate" not in listed["unread"]
    finally:
        third.stop()


def test_without_account_id_a_random_twelve_digit_account_is_made_and_kept(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, account_id=None)
    try:
        arn = srv.client().create_secret(Name="acct", SecretString="v")["ARN"]
    finally:
        srv.stop()
    account = arn.split(":")[4]
    assert re.fullmatch(r"\d{12}", account), arn
    srv = start_server(data, account_id=None)
    try:
        assert srv.client().describe_secret(SecretId="acct")["ARN"] == arn
    finally:
        srv.stop()


def test_account_id_flag_names_the_account_in_arns(tmp_path):
    srv = start_server(tmp_path / "data", account_id="111122223333")
    try:
        arn = srv.client().create_secret(Name="acct", SecretString="v")["ARN"]
        assert arn.startswith("arn:aws:secretsmanager:us-east-1:111122223333:secret:acct-")
    finally:
        srv.stop()


def test_regions_flag_chooses_the_hosted_regions_and_the_profile_region(tmp_path):
    srv = start_server(tmp_path / "data", regions=["eu-west-1", "us-west-2"])
    try:
        assert re.search(r"^region\s*=\s*eu-west-1$", srv.config_file.read_text(), re.M)
        assert srv.client("us-west-2").list_secrets()["SecretList"] == []
        expect_error(
            srv.client("us-east-1").list_secrets,
            "InvalidSignatureException",
            "Credential should be scoped to a valid region, not 'us-east-1'. ",
        )
    finally:
        srv.stop()


def test_secret_values_never_reach_the_disk_in_plaintext(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    marker = "PLAINTEXT-MARKER-" + unique()
    client = srv.client()
    client.create_secret(Name="plain", SecretString=marker)
    client.put_secret_value(SecretId="plain", SecretBinary=marker.encode() + b"-binary")
    client.get_secret_value(SecretId="plain")
    assert srv.stop() == 0
    for path in data.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path


def test_key_files_are_readable_by_the_owner_only(fresh_server):
    fresh_server.client().create_secret(Name="k", SecretString="v")
    keys = [p for p in fresh_server.data_dir.rglob("*") if p.is_file() and "key" in p.name.lower()]
    assert keys, sorted(str(p) for p in fresh_server.data_dir.rglob("*"))
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))


def test_a_damaged_data_directory_gives_a_clear_error_and_is_left_untouched(tmp_path):
    data = tmp_path / "data"
    start_server(data).stop()
    database = data / "iam.db"
    assert database.exists(), sorted(os.listdir(data))
    for extra in ("iam.db-wal", "iam.db-shm"):
        (data / extra).unlink(missing_ok=True)
    database.write_bytes(b"this is not a database" * 100)
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    started = time.monotonic()
    done = subprocess.run(
        [COFFER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - started < 10
    assert done.returncode != 0
    assert "listening on" not in done.stdout
    assert done.stderr.strip(), "no error message"
    assert "panicked" not in done.stderr
    after = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert after == before
