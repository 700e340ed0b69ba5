"""No lock-out without a way back (issue 14 §5): ValidateResourcePolicy fails a deny on
plaintext when the request came without TLS; `coffer resource-policy list|remove` takes a
policy off with local access to the data directory (not through the API), recorded in the audit
log, and refuses while the node runs."""

import json
import subprocess

import botocore.exceptions
import pytest

import helpers
from helpers import COFFER_BIN, DEFAULT_REGION, REGIONS, start_server, unique

DENY_PLAINTEXT = json.dumps(helpers.DENY_PLAINTEXT)


def test_validate_resource_policy_fails_a_deny_on_plaintext_over_plaintext(sm):
    result = sm.validate_resource_policy(ResourcePolicy=DENY_PLAINTEXT)
    assert result["PolicyValidationPassed"] is False, result
    [error] = result["ValidationErrors"]
    assert error["CheckName"] == "SECURE_TRANSPORT_CHECK"
    assert "DeleteResourcePolicy" in error["ErrorMessage"] and "coffer resource-policy remove" in error["ErrorMessage"]
    # The same deny, but on `true` (nobody uses it), is not this finding.
    other = DENY_PLAINTEXT.replace('"false"', '"true"')
    assert all(e["CheckName"] != "SECURE_TRANSPORT_CHECK" for e in sm.validate_resource_policy(ResourcePolicy=other)["ValidationErrors"])


def test_validate_resource_policy_passes_it_over_tls(tmp_path):
    srv = start_server(tmp_path / "data", extra_args=["--tls", "auto"])
    try:
        sm = srv.client(verify=str(srv.data_dir / "tls" / "ca.pem"))
        result = sm.validate_resource_policy(ResourcePolicy=DENY_PLAINTEXT)
        assert result == {"PolicyValidationPassed": True, "ValidationErrors": [], "ResponseMetadata": result["ResponseMetadata"]}
    finally:
        srv.stop()


def coffer(*args):
    return subprocess.run([COFFER_BIN, *args], capture_output=True, text=True, timeout=60)


def test_an_operator_takes_a_lockout_policy_off_with_local_access(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    sm = srv.client()
    name = unique("locked")
    arn = sm.create_secret(Name=name, SecretString="recovered", AddReplicaRegions=[{"Region": "eu-west-1"}])["ARN"]
    from cluster import wait_for

    wait_for(
        lambda: sm.describe_secret(SecretId=name)["ReplicationStatus"][0]["Status"] == "InSync",
        what="the eu-west-1 replica exists",
    )
    sm.put_resource_policy(SecretId=name, ResourcePolicy=DENY_PLAINTEXT)
    # Locked out through the API, the admin included, DeleteResourcePolicy too.
    for call in (sm.get_secret_value, sm.delete_resource_policy):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            call(SecretId=name)
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    # While the node runs, the command refuses (it would fork the audit log's chain).
    busy = coffer("resource-policy", "remove", "--data-dir", str(data), "--region", DEFAULT_REGION, "--secret-id", name)
    assert busy.returncode != 0 and "in use by another process" in busy.stderr, busy
    srv.stop()

    listed = coffer("resource-policy", "list", "--data-dir", str(data), "--regions", ",".join(REGIONS))
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if arn in l)
    assert line.startswith(f"{DEFAULT_REGION} {arn} ") and json.loads(line.split(" ", 2)[2]) == json.loads(DENY_PLAINTEXT)

    replica = coffer("resource-policy", "remove", "--data-dir", str(data), "--regions", ",".join(REGIONS),
                     "--region", "eu-west-1", "--secret-id", name)
    assert replica.returncode != 0 and "is a replica" in replica.stderr, replica

    removed = coffer("resource-policy", "remove", "--data-dir", str(data), "--regions", ",".join(REGIONS),
                     "--region", DEFAULT_REGION, "--secret-id", name)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"removed the resource policy of {arn}"

    srv = start_server(data)
    assert srv.client().get_secret_value(SecretId=name)["SecretString"] == "recovered"
    try:
        assert "ResourcePolicy" not in srv.client().get_resource_policy(SecretId=name)
        # The replica follows.
        eu = srv.client("eu-west-1")
        wait_for(lambda: "ResourcePolicy" not in eu.get_resource_policy(SecretId=name), what="the replica's policy is gone")
        records = [json.loads(l) for l in (data / "audit.log").read_text().splitlines()]
        operator = [r for r in records if r["eventName"] == "DeleteResourcePolicy" and r["userIdentity"]["type"] == "Operator"]
        assert len(operator) == 1, operator
        assert operator[0]["requestParameters"] == {"secretId": name}
        assert operator[0]["responseElements"]["arn"] == arn
        assert operator[0]["sourceIPAddress"] == "local"
        verify = coffer("audit", "verify", str(data / "audit.log"))
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        srv.stop()
