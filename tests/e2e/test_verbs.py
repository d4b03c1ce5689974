"""End to end: the lifecycle verbs (add, update, remove, rotate-key, list), each touching
only its own tenant. They run against a copy of the demo inventory, so the repository's
tenants file is never rewritten by a test."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time

import pytest
import requests
from helpers import INVENTORY
from tenancy_inventory import ROOT, run_ansible

C = "companyC"


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


def chat(port: int, api_key: str, session=None) -> int:
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    sender = session or requests
    return sender.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    ).status_code


def demo_containers(tenants) -> list[str]:
    return [t["names"][role] for t in tenants.values() for role in ("engine", "gateway")]


def test_add_update_remove_touch_only_their_tenant(docker_client, tenants, inventory_copy):
    others = demo_containers(tenants)
    before = started(docker_client, *others)

    added = verb(
        inventory_copy, "tenant-add.yml", "-e", f"tenant={C}", "-e", "port=30003", "-e", "served_model_name=tiny-chat"
    )
    assert added.returncode == 0, added.stdout[-4000:]
    assert C in (inventory_copy / "group_vars" / "all" / "tenants.yml").read_text()
    assert chat(30003, key(inventory_copy, C)) == 200
    assert started(docker_client, *others) == before

    c_names = (f"tenancy-{C}-engine", f"tenancy-{C}-gateway")
    c_before = started(docker_client, *c_names)
    updated = verb(inventory_copy, "tenant-update.yml", "-e", f"tenant={C}", "-e", "rpm_limit=3")
    assert updated.returncode == 0, updated.stdout[-4000:]
    # A rate-limit change reloads the gateway (no restart) and leaves the engine alone.
    assert started(docker_client, *c_names) == c_before
    codes = [chat(30003, key(inventory_copy, C)) for _ in range(6)]
    assert codes.count(429) >= 2, codes
    assert started(docker_client, *others) == before

    recreated = verb(inventory_copy, "tenant-update.yml", "-e", f"tenant={C}", "-e", "max_model_len=256")
    assert recreated.returncode == 0, recreated.stdout[-4000:]
    assert started(docker_client, c_names[0]) != {c_names[0]: c_before[c_names[0]]}
    assert started(docker_client, *others) == before

    refused = verb(inventory_copy, "tenant-remove.yml", "-e", f"tenant={C}")
    assert refused.returncode != 0
    assert "Not confirmed; nothing was changed" in refused.stdout
    assert docker_client.containers.get(c_names[0]).status == "running"

    removed = verb(
        inventory_copy, "tenant-remove.yml", "-e", f"tenant={C}", "-e", "confirm=yes", "-e", "keep_credentials=true"
    )
    assert removed.returncode == 0, removed.stdout[-4000:]
    assert C not in (inventory_copy / "group_vars" / "all" / "tenants.yml").read_text()
    assert not any(c.name.startswith(f"tenancy-{C}") for c in docker_client.containers.list(all=True))
    assert not (inventory_copy / "credentials" / f"{C}.api_key").exists()
    assert list((inventory_copy / "credentials" / "archive").glob(f"{C}-*.api_key"))
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:30003/health", timeout=5)
    assert started(docker_client, *others) == before


@pytest.mark.parametrize(
    ("playbook", "extra", "message"),
    [
        ("tenant-update.yml", ["-e", "tenant=nobody", "-e", "rpm_limit=5"], "unknown tenant nobody"),
        ("tenant-remove.yml", ["-e", "tenant=nobody", "-e", "confirm=yes"], "unknown tenant nobody"),
        ("rotate-keys.yml", ["-e", "tenant=nobody"], "unknown tenant nobody"),
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


def test_rotation_fails_no_request(docker_client, tenants, inventory_copy):
    """Keep-alive clients without retries send requests all through a rotation, each with
    whatever key the credentials file holds at that moment: none may fail."""
    old = key(inventory_copy, "companyA")
    gateway_started = started(docker_client, "tenancy-companyA-gateway")
    stop = threading.Event()
    results: list[int] = []

    def client() -> None:
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
        while not stop.is_set():
            results.append(chat(30001, key(inventory_copy, "companyA"), session))
            # 4 clients at about 2 requests/s each stay under the demo's rpm_limit of 600.
            time.sleep(0.5)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    rotated = verb(inventory_copy, "rotate-keys.yml", "-e", "tenant=companyA")
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    assert rotated.returncode == 0, rotated.stdout[-4000:]
    new = key(inventory_copy, "companyA")
    assert new != old
    assert len(results) > 20
    assert set(results) == {200}, f"{len(results) - results.count(200)} of {len(results)} requests failed"
    assert chat(30001, old) == 401
    assert chat(30001, new) == 200
    assert started(docker_client, "tenancy-companyA-gateway") == gateway_started, "the gateway was restarted"
    assert old not in rotated.stdout and new not in rotated.stdout


def test_rotation_with_grace_keeps_the_old_key_until_it_expires(inventory_copy):
    old = key(inventory_copy, "companyB")
    rotated = verb(inventory_copy, "rotate-keys.yml", "-e", "tenant=companyB", "-e", "grace=20s")
    assert rotated.returncode == 0, rotated.stdout[-4000:]
    new = key(inventory_copy, "companyB")
    assert chat(30002, old) == 200
    assert chat(30002, new) == 200
    time.sleep(21)
    # Any later run removes expired keys.
    again = verb(inventory_copy, "../site.yml")
    assert again.returncode == 0, again.stdout[-4000:]
    assert chat(30002, old) == 401
    assert chat(30002, new) == 200


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
