"""End to end: a tenant's own LoRA adapter (the demo's companyA has tiny-chat-pirate).

Its engine answers with it; every other tenant's engine never loaded it and says 404 in
the OpenAI error format; its files are on its own volume only, as its uid, and no other
engine can open them. The gateway's refusal of the runtime LoRA routes is in
tests/infra (test_gateway_exposes_only_v1_and_health). Adding one over SSH, restarting
that tenant only, and its removal with the volume run in tests/multihost."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
import requests
from helpers import TENANT_DEFAULTS
from tenancy_inventory import api_key, base_url

PROMPT = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def owner(tenants) -> dict:
    """The first tenant with an adapter (the demo inventory gives companyA one)."""
    with_adapters = [t for t in tenants.values() if t["adapters"]]
    assert with_adapters, "the demo inventory gives companyA an adapter (inventory/local tenants.yml)"
    return with_adapters[0]


def chat(tenant: dict, inventory, model: str) -> requests.Response:
    body = {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0}
    headers = {"Authorization": f"Bearer {api_key(inventory, tenant['name'])}"}
    return requests.post(f"{base_url(tenant)}/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_a_tenant_chats_with_its_own_adapter(owner, inventory):
    """Greedy answers to one prompt: the adapter's differ from the base model's, so the
    engine really applied it (the demo's B matrices are not zero)."""
    (adapter,) = owner["adapters"]
    base, tuned = chat(owner, inventory, owner["served_model_name"]), chat(owner, inventory, adapter["name"])
    assert (base.status_code, tuned.status_code) == (200, 200), tuned.text
    assert tuned.json()["model"] == adapter["name"]
    assert tuned.json()["choices"][0]["message"]["content"] != base.json()["choices"][0]["message"]["content"]
    listed = requests.get(
        f"{base_url(owner)}/v1/models",
        headers={"Authorization": f"Bearer {api_key(inventory, owner['name'])}"},
        timeout=10,
    ).json()["data"]
    assert {m["id"]: m["parent"] for m in listed}[adapter["name"]] == owner["served_model_name"]


def test_another_tenants_engine_does_not_know_the_adapter(owner, tenants, inventory):
    (adapter,) = owner["adapters"]
    others = [t for t in tenants.values() if t["name"] != owner["name"]]
    assert others
    for other in others:
        answer = chat(other, inventory, adapter["name"])
        assert answer.status_code == 404, (other["name"], answer.text)
        error = answer.json()["error"]
        assert error["code"] == 404 and adapter["name"] in error["message"], error


def test_the_adapter_is_on_its_tenants_volume_only(owner, tenants, docker_client):
    """The files as the plan recorded them (sha256), the tenant's uid, 0600 in a 0700
    directory; no other tenant's engine has a path to them."""
    (adapter,) = owner["adapters"]
    directory = Path(TENANT_DEFAULTS["tenant_data_dir"]) / owner["name"] / "adapters" / adapter["name"]
    info = directory.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, owner["uid"])
    on_host = {p.name: p for p in directory.iterdir()}
    assert sorted(on_host) == [f["name"] for f in adapter["files"]]
    for planned in adapter["files"]:
        path = on_host[planned["name"]]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == planned["sha256"]
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid) == (0o600, owner["uid"])
    inside = f"{owner['data_mount']}/adapters/{adapter['name']}/adapter_config.json"
    own = docker_client.containers.get(owner["names"]["engine"]).exec_run(["test", "-r", inside])
    assert own.exit_code == 0, "the tenant's own engine cannot read its adapter (the control)"
    for other in tenants.values():
        if other["name"] != owner["name"]:
            seen = docker_client.containers.get(other["names"]["engine"]).exec_run(["test", "-e", inside])
            assert seen.exit_code != 0, f"{other['name']}'s engine has {inside}"
