"""Console sessions that one key can't evict (issue 14 §7): a per-principal cap, sessions that
survive a restart, sign-in throttled per source address and per access key."""

import html
import re
import time

import requests

from helpers import (
    console_sign_in,
    service_client,
    sign_in_accepted,
    sign_in_refused,
    start_server,
    unique,
    write_config,
)


def signed_in(server, browser: requests.Session) -> bool:
    page = browser.get(server.endpoint + "/console/secrets", allow_redirects=False, timeout=30)
    return page.status_code == 200


def new_key(server):
    iam = service_client(server, "iam", region="us-east-1")
    user = unique("console")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_10050_sign_ins_by_another_key_leave_the_admins_session_intact(tmp_path):
    config = write_config(tmp_path / "node.toml", console_sign_in_per_address_per_minute=1_000_000)
    srv = start_server(tmp_path / "data", extra_args=["--config", str(config)])
    try:
        admin = requests.Session()
        assert sign_in_accepted(console_sign_in(srv, *srv.access_key, session=admin))
        key_id, secret = new_key(srv)
        # As a script would: one sign-in form, its token posted again and again.
        other = requests.Session()
        assert sign_in_accepted(console_sign_in(srv, key_id, secret, session=other))
        page = requests.get(srv.endpoint + "/console/sign-in", timeout=30)
        token = html.unescape(re.search(r'name="token" value="([^"]*)"', page.text).group(1))
        cookie = page.cookies.get("coffer_console_sign_in")
        started = time.monotonic()
        for _ in range(10_049):
            r = requests.post(
                srv.endpoint + "/console/sign-in",
                data={"token": token, "access_key_id": key_id, "secret_access_key": secret, "next": "/console"},
                headers={"Origin": srv.endpoint, "Cookie": f"coffer_console_sign_in={cookie}"},
                allow_redirects=False,
                timeout=30,
            )
            assert sign_in_accepted(r), (r.status_code, r.headers)
            assert time.monotonic() - started < 300
        assert signed_in(srv, admin), "the admin was signed out by another key's sign-ins"
        # The other key's first session was its oldest: it made room for the later ones.
        assert not signed_in(srv, other)
    finally:
        srv.stop()


def test_console_sessions_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    browser = requests.Session()
    try:
        assert sign_in_accepted(console_sign_in(srv, *srv.access_key, session=browser))
        assert signed_in(srv, browser)
    finally:
        srv.stop()
    # (Cookies are per host, not per port: the browser presents its cookie to the new port.)
    srv = start_server(data)
    try:
        assert signed_in(srv, browser), "the session did not survive the restart"
        mode = (data / "console-sessions.json").stat().st_mode & 0o777
        assert mode == 0o600, oct(mode)
    finally:
        srv.stop()


def test_failed_sign_ins_are_throttled_per_access_key(tmp_path):
    config = write_config(
        tmp_path / "node.toml",
        console_sign_in_per_address_per_minute=1_000_000,
        console_sign_in_failures_per_key_per_minute=5,
    )
    srv = start_server(tmp_path / "data", extra_args=["--config", str(config)])
    try:
        key_id, secret = new_key(srv)
        for _ in range(5):
            assert sign_in_refused(console_sign_in(srv, key_id, "wrong-guess"))
        refused = console_sign_in(srv, key_id, "wrong-guess")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Too many sign-in attempts for this access key" in refused.text
        # Even the right secret waits for that key; another key signs in at once.
        assert console_sign_in(srv, key_id, secret).status_code == 429
        assert sign_in_accepted(console_sign_in(srv, *srv.access_key))
    finally:
        srv.stop()


def test_sign_in_attempts_are_throttled_per_source_address(tmp_path):
    config = write_config(tmp_path / "node.toml", console_sign_in_per_address_per_minute=20)
    srv = start_server(tmp_path / "data", extra_args=["--config", str(config)])
    try:
        started = time.monotonic()
        outcomes = [sign_in_refused(console_sign_in(srv, f"AKIAGUESS{i:011d}", "x")) for i in range(20)]
        assert outcomes == [True] * 20, outcomes
        refused = console_sign_in(srv, *srv.access_key)
        assert refused.status_code == 429 and "from this address" in refused.text, refused.text
        assert time.monotonic() - started < 3, "the attempts were not quick enough to test the rate"
        assert "Console sign-in throttled" in srv.stderr_text()
    finally:
        srv.stop()
