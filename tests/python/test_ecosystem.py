"""Libraries people already use with Secrets Manager, unmodified, against a real Coffer server
(issue 18 §5): AWS's caching client (aws-secretsmanager-caching) and Powertools for AWS Lambda
(Python) `parameters`. Pinned in requirements.txt."""

from __future__ import annotations

import json
import time

import pytest
from aws_lambda_powertools.utilities import parameters
from aws_secretsmanager_caching import (
    InjectKeywordedSecretString,
    InjectSecretString,
    SecretCache,
    SecretCacheConfig,
)

from helpers import unique


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail("not within the time allowed")


def test_the_caching_client_gets_caches_refreshes_and_injects(server, sm):
    name = unique("caching")
    sm.create_secret(Name=name, SecretString=json.dumps({"user": "app", "password": "one"}))
    cache = SecretCache(config=SecretCacheConfig(secret_refresh_interval=4), client=server.client())
    assert json.loads(cache.get_secret_string(name)) == {"user": "app", "password": "one"}

    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"user": "app", "password": "two"}))
    # Served from the cache until the refresh interval has passed, then the new value.
    assert json.loads(cache.get_secret_string(name))["password"] == "one"
    eventually(lambda: json.loads(cache.get_secret_string(name))["password"] == "two")
    assert json.loads(cache.get_secret_string(name, "AWSPREVIOUS"))["password"] == "one"

    @InjectKeywordedSecretString(secret_id=name, cache=cache, user="user", password="password")
    def connect(user, password):
        return user, password

    @InjectSecretString(name, cache)
    def whole(secret):
        return json.loads(secret)

    assert connect() == ("app", "two")
    assert whole()["password"] == "two"

    binary = unique("caching-bin")
    sm.create_secret(Name=binary, SecretBinary=b"\x00\xffkey")
    assert cache.get_secret_binary(binary) == b"\x00\xffkey"


@pytest.fixture
def powertools_env(server, monkeypatch):
    """Powertools' default boto3 clients, pointed at Coffer the way a Lambda user would."""
    key_id, secret = server.access_key
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    parameters.base.DEFAULT_PROVIDERS.clear()
    yield
    parameters.base.DEFAULT_PROVIDERS.clear()


def test_powertools_get_secret_transforms_and_caches(sm, powertools_env):
    name = unique("powertools")
    sm.create_secret(Name=name, SecretString=json.dumps({"host": "db", "port": 5432}))
    assert parameters.get_secret(name) == json.dumps({"host": "db", "port": 5432})
    assert parameters.get_secret(name, transform="json", force_fetch=True) == {"host": "db", "port": 5432}
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"host": "db2", "port": 5432}))
    # Cached for max_age (5 s by default), fresh with force_fetch.
    assert parameters.get_secret(name, transform="json")["host"] == "db"
    assert parameters.get_secret(name, transform="json", force_fetch=True)["host"] == "db2"


def test_powertools_get_secrets_by_name_reads_several_in_one_call(sm, powertools_env):
    names = [unique("pt-batch") for _ in range(3)]
    for i, n in enumerate(names):
        sm.create_secret(Name=n, SecretString=json.dumps({"n": i}))
    got = parameters.get_secrets_by_name(names=names, transform="json")
    assert got == {n: {"n": i} for i, n in enumerate(names)}
