"""Ansible against a real Coffer server, unmodified (issue 18 §5): the `amazon.aws.secretsmanager_secret`
lookup and the `community.aws.secretsmanager_secret` module, from the `ansible` package pinned in
requirements.txt, run by the venv's `ansible-playbook` as an operator would run a playbook.

Each playbook checks what Ansible itself reports (`changed`, lookup results) with
`ansible.builtin.assert`; the test then checks through boto3 what the playbook left on the server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time

import pytest

from helpers import DEFAULT_REGION, unique

REPLICA = "us-west-2"


@pytest.fixture(scope="module")
def ansible_playbook() -> str:
    path = shutil.which("ansible-playbook")
    if path is None:
        pytest.fail("'ansible-playbook' is not on PATH: run the suite with tests/python/run.sh", pytrace=False)
    return path


def run_playbook(server, ansible_playbook, tmp_path, tasks: str, extra_vars: dict) -> str:
    """Runs one playbook on localhost with Coffer's endpoint and admin key as module defaults."""
    key_id, secret = server.access_key
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - hosts: localhost
              connection: local
              gather_facts: false
              module_defaults:
                community.aws.secretsmanager_secret: &coffer
                  endpoint_url: "{{ coffer_endpoint }}"
                  access_key: "{{ coffer_key_id }}"
                  secret_key: "{{ coffer_secret }}"
                  region: "{{ coffer_region }}"
              vars:
                conn: *coffer
              tasks:
            """
        )
        + textwrap.indent(textwrap.dedent(tasks), "    ")
    )
    variables = {
        "coffer_endpoint": server.endpoint,
        "coffer_key_id": key_id,
        "coffer_secret": secret,
        "coffer_region": DEFAULT_REGION,
        **extra_vars,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_")
    } | {
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": shutil.which("python") or "python3",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        # A real HOME without AWS files: only the playbook's own settings reach the client.
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [ansible_playbook, "-i", "localhost,", str(playbook), "-e", f"@{tmp_path / 'vars.json'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return done.stdout


def test_the_module_creates_updates_replicates_and_deletes_and_the_lookup_reads(
    server, sm, ansible_playbook, tmp_path
):
    name = unique("ansible")
    tasks = """\
        - name: create a secret with a JSON value, a description, tags and a replica
          community.aws.secretsmanager_secret: &present
            name: "{{ secret_name }}"
            state: present
            json_secret: {"user": "app", "password": "one"}
            description: made by Ansible
            tags: {team: blue}
            replica:
              - region: us-west-2
          register: created
        - ansible.builtin.assert:
            that:
              - created.changed
              - created.secret.name == secret_name
              - created.secret.arn.startswith('arn:aws:secretsmanager:us-east-1:123456789012:secret:' ~ secret_name ~ '-')

        - name: the same task again changes nothing
          community.aws.secretsmanager_secret: *present
          register: again
        - ansible.builtin.assert:
            that: [not again.changed]

        - name: read it with the lookup, whole and nested
          ansible.builtin.set_fact:
            whole: "{{ lookup('amazon.aws.secretsmanager_secret', secret_name, **conn) }}"
            password: "{{ lookup('amazon.aws.secretsmanager_secret', secret_name ~ '.password', nested=true, **conn) }}"
            missing: "{{ lookup('amazon.aws.secretsmanager_secret', secret_name ~ '-absent', on_missing='skip', **conn) }}"
            by_path: "{{ lookup('amazon.aws.secretsmanager_secret', secret_name, bypath=true, **conn) }}"
        - ansible.builtin.assert:
            that:
              - "(whole | from_json) == {'user': 'app', 'password': 'one'}"
              - password == "one"
              - missing == []
              - "(by_path[secret_name] | from_json) == {'user': 'app', 'password': 'one'}"

        - name: a new value is a change
          community.aws.secretsmanager_secret:
            <<: *present
            json_secret: {"user": "app", "password": "two"}
          register: updated
        - ansible.builtin.assert:
            that: [updated.changed]
        - ansible.builtin.assert:
            that:
              - lookup('amazon.aws.secretsmanager_secret', secret_name ~ '.password', nested=true, **conn) == "two"
        """
    out = run_playbook(server, ansible_playbook, tmp_path, tasks, {"secret_name": name})
    assert "failed=0" in out

    d = sm.describe_secret(SecretId=name)
    assert d["Description"] == "made by Ansible"
    assert d["Tags"] == [{"Key": "team", "Value": "blue"}]
    assert [s["Region"] for s in d["ReplicationStatus"]] == [REPLICA]
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"]) == {"user": "app", "password": "two"}
    # The replaced value is AWSPREVIOUS, as after any PutSecretValue.
    assert json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"])["password"] == "one"

    # The replica, read by the lookup in its own Region.
    west = server.client(REPLICA)

    def replica_has_two():
        try:
            return json.loads(west.get_secret_value(SecretId=name)["SecretString"])["password"] == "two"
        except west.exceptions.ResourceNotFoundException:
            return False

    deadline = time.monotonic() + 10
    while not replica_has_two():
        assert time.monotonic() < deadline, "the replica did not receive the new value"
        time.sleep(0.1)
    tasks = """\
        - ansible.builtin.assert:
            that:
              - lookup('amazon.aws.secretsmanager_secret', secret_name ~ '.password', nested=true, region='us-west-2', endpoint_url=coffer_endpoint, access_key=coffer_key_id, secret_key=coffer_secret) == "two"

        - name: an empty replica list removes the replica (a primary with replicas can't be deleted)
          community.aws.secretsmanager_secret:
            name: "{{ secret_name }}"
            state: present
            json_secret: {"user": "app", "password": "two"}
            description: made by Ansible
            tags: {team: blue}
            replica: []
          register: unreplicated
        - ansible.builtin.assert:
            that: [unreplicated.changed]

        - name: delete without recovery
          community.aws.secretsmanager_secret:
            name: "{{ secret_name }}"
            state: absent
            recovery_window: 0
          register: deleted
        - ansible.builtin.assert:
            that: [deleted.changed]
        - ansible.builtin.assert:
            that:
              - lookup('amazon.aws.secretsmanager_secret', secret_name, on_missing='skip', **conn) == []
        """
    run_playbook(server, ansible_playbook, tmp_path, tasks, {"secret_name": name})
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=name)
    # Removing the Region from replication deleted the replica there.
    with pytest.raises(west.exceptions.ResourceNotFoundException):
        west.describe_secret(SecretId=name)


def test_the_lookup_refuses_a_secret_scheduled_for_deletion_unless_told_to_skip(
    server, sm, ansible_playbook, tmp_path
):
    name = unique("ansible-del")
    sm.create_secret(Name=name, SecretString="gone soon")
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    tasks = """\
        - ansible.builtin.assert:
            that:
              - lookup('amazon.aws.secretsmanager_secret', secret_name, on_deleted='skip', **conn) == []
        - name: the default is an error that names the deletion
          ansible.builtin.set_fact:
            value: "{{ lookup('amazon.aws.secretsmanager_secret', secret_name, **conn) }}"
          ignore_errors: true
          register: refused
        - ansible.builtin.assert:
            that:
              - refused.failed
              - "'marked for deletion' in refused.msg"
        """
    run_playbook(server, ansible_playbook, tmp_path, tasks, {"secret_name": name})
