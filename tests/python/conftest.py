"""Fixtures: one Coffer server for the whole session (temporary data dir, port 0), boto3
clients for it, and fresh servers for the tests that need a server of their own."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers import DEFAULT_REGION, CofferServer, start_server, unique


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> CofferServer:
    """The shared server. Tests use unique secret names, so they do not see each other."""
    srv = start_server(tmp_path_factory.mktemp("coffer") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path) -> CofferServer:
    """A server of the test's own, for tests that look at everything a Region holds."""
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sm(server):
    """boto3 Secrets Manager client in the first Region, with the admin key."""
    return server.client(DEFAULT_REGION)


@pytest.fixture
def name() -> str:
    return unique()


@pytest.fixture
def secret(sm, name):
    """A secret with one string value; returns CreateSecret's answer."""
    return sm.create_secret(Name=name, SecretString="first value")


@pytest.fixture(scope="session")
def aws_cli() -> str:
    path = shutil.which("aws")
    if path is None:
        pytest.fail("the AWS CLI ('aws') is not on PATH: run the suite with tests/python/run.sh", pytrace=False)
    return path


@pytest.fixture
def cli(server, aws_cli, tmp_path):
    """Runs `aws ...` as a user would after pasting the server's export line."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.profile_env)
    env["HOME"] = str(home)

    def run(*args: str, check: bool = True, input: str | None = None, extra_env: dict | None = None):
        done = subprocess.run(
            [aws_cli, *args],
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            input=input,
            cwd=tmp_path,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    run.env = env
    run.cwd = tmp_path
    return run
