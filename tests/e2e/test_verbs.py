"""End to end: the lifecycle verbs on the demo inventory: refusals of bad input, key
rotation with a grace period, and the list. They run against a copy of the demo
inventory, so the repository's tenants file is never rewritten by a test.

add, update (reload and recreate), remove (refused, confirmed, keep_credentials) and a
rotation under keep-alive load run in tests/multihost, against a tenant of the second
host, where they also prove that nothing on the other host restarts."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time

import pytest
import requests
from helpers import INVENTORY
from tenancy_inventory import ROOT, base_url, run_ansible


def verb(inventory, playbook: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_ansible("ansible-playbook", "-i", inventory, ROOT / "playbooks" / playbook, *extra, timeout=900)


@pytest.fixture(scope="module")
def inventory_copy(first_converge, tmp_path_factory):
    copy = tmp_path_factory.mktemp("inventory") / "local"
    shutil.copytree(INVENTORY, copy)
    yield copy
    # Hand rotated keys back, so the repository's inventory matches the gateways again.
    for key in (copy / "credentials").glob("*.api_key"):
        if (INVENTORY / "credentials" / key.name).exists():
            shutil.copy2(key, INVENTORY / "credentials" / key.name)


def started(docker_client, *names: str) -> dict[str, str]:
    return {n: docker_client.containers.get(n).attrs["State"]["StartedAt"] for n in names}


def key(inventory, name: str) -> str:
    return (inventory / "credentials" / f"{name}.api_key").read_text().strip()


def chat(tenant: dict, api_key: str, session=None) -> int:
    body = {"model": tenant["served_model_name"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    sender = session or requests
    return sender.post(
        f"{base_url(tenant)}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    ).status_code


def demo_containers(tenants) -> list[str]:
    return [t["names"][role] for t in tenants.values() for role in ("engine", "gateway")]


@pytest.mark.parametrize(
    ("playbook", "extra", "message"),
    [
        ("tenant-update.yml", ["-e", "tenant=nobody", "-e", "rpm_limit=5"], "unknown tenant nobody"),
        ("tenant-remove.yml", ["-e", "tenant=nobody", "-e", "confirm=yes"], "unknown tenant nobody"),
        ("rotate-keys.yml", ["-e", "tenant=nobody"], "unknown tenant nobody"),
        ("tenant-cert.yml", ["-e", "tenant=nobody"], "unknown tenant nobody"),
        ("tenant-update.yml", ["-e", "tenant=companyB", "-e", "tls_names=my_host"], "field 'tls_names'"),
        ("tenant-update.yml", ["-e", "tenant=companyB", "-e", "port=30001"], "already used by tenant 'companyA'"),
        ("tenant-add.yml", ["-e", "tenant=companya", "-e", "port=30009"], "tenant companya already exists"),
        ("tenant-update.yml", ["-e", "tenant=companyB"], "nothing to update"),
    ],
)
def test_bad_verb_input_changes_nothing(docker_client, tenants, inventory_copy, playbook, extra, message):
    tenants_file = (inventory_copy / "group_vars" / "all" / "tenants.yml").read_text()
    before = started(docker_client, *demo_containers(tenants))
    result = verb(inventory_copy, playbook, *extra)
    assert result.returncode != 0
    assert message in result.stdout
    assert (inventory_copy / "group_vars" / "all" / "tenants.yml").read_text() == tenants_file
    assert started(docker_client, *demo_containers(tenants)) == before


def test_rotation_with_grace_keeps_the_old_key_until_it_expires(tenants, inventory_copy):
    company_b = tenants["companyB"]
    old = key(inventory_copy, "companyB")
    rotated = verb(inventory_copy, "rotate-keys.yml", "-e", "tenant=companyB", "-e", "grace=20s")
    assert rotated.returncode == 0, rotated.stdout[-4000:]
    new = key(inventory_copy, "companyB")
    assert chat(company_b, old) == 200
    assert chat(company_b, new) == 200
    time.sleep(21)
    # The gateway refuses it from its expiry on, checked at the request: no run needed.
    assert chat(company_b, old) == 401
    assert chat(company_b, new) == 200
    # Any later run removes expired keys from the map, a tenant-only one too.
    again = verb(inventory_copy, "../site.yml", "--tags", "tenant")
    assert again.returncode == 0, again.stdout[-4000:]
    assert chat(company_b, old) == 401
    assert chat(company_b, new) == 200


def test_list_shows_state_without_keys(inventory_copy, tmp_path):
    output = tmp_path / "tenants.json"
    listed = verb(inventory_copy, "tenants-list.yml", "-e", "output=json", "-e", f"list_output={output}")
    assert listed.returncode == 0, listed.stdout[-4000:]
    rows = {row["name"]: row for row in json.loads(output.read_text())}
    assert set(rows) == {"companyA", "companyB"}
    for name, row in rows.items():
        api_key = key(inventory_copy, name)
        assert row["key_fingerprint"] == hashlib.sha256(api_key.encode()).hexdigest()[:8]
        assert api_key not in listed.stdout
        assert row["engine"]["health"] == "healthy" and row["gateway"]["health"] == "healthy"
        assert isinstance(row["requests_served"], int) and row["requests_served"] >= 1
        assert row["volume"]["exists"] and row["volume"]["encrypted"] is False
        assert isinstance(row["volume"]["used_bytes"], int)
    table = verb(inventory_copy, "tenants-list.yml")
    assert table.returncode == 0
    assert "NOT ENCRYPTED" in table.stdout and "companyA" in table.stdout
