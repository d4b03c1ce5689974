"""The multi-host path, from the controller: tenants spread over two hosts that are
reached only over SSH (mh1 as root, mh2 as a sudo user), each host with its own Docker
engine installed by the docker role. The tests run in file order: read-only checks
first, then the verbs, which add a tenant on mh2 and take it away again."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
import requests
from multihost_env import INVENTORY, TEST_HOSTS, containers_on, on_host, playbook, recap, ssh_as_login_user
from tenancy_inventory import api_key, base_url, key_file, run_ansible

HOSTS = [h["name"] for h in TEST_HOSTS["multihost_hosts"]]
ADDED = "delta"


def client(tenant: dict, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=tenant["endpoint"], api_key=key, max_retries=0, timeout=60)


# --- the hosts and the converge ------------------------------------------------------


def test_inventory_reaches_the_hosts_over_ssh_only():
    for spec in TEST_HOSTS["multihost_hosts"]:
        variables = json.loads(run_ansible("ansible-inventory", "-i", INVENTORY, "--host", spec["name"]).stdout)
        assert variables.get("ansible_connection", "ssh") == "ssh", spec
        assert variables["ansible_host"] == spec["address"], "inventory/multihost and tests/multihost/hosts.yml differ"
        assert variables["ansible_user"] == spec["user"]


def test_mh2_is_managed_by_a_sudo_user():
    assert ssh_as_login_user("mh2", "id", "-u").strip() != "0"
    assert ssh_as_login_user("mh2", "sudo", "-n", "id", "-u").strip() == "0"
    assert on_host("mh2", "id", "-u").strip() == "0"
    assert ssh_as_login_user("mh1", "id", "-u").strip() == "0"


@pytest.mark.parametrize("host", HOSTS)
def test_each_host_runs_its_own_docker_engine_from_the_role(host):
    # The docker role installed Debian's docker.io and the library community.docker needs.
    assert "docker.io" in on_host(host, "dpkg-query", "--show", "docker.io")
    assert on_host(host, "dpkg-query", "--show", "--showformat", "${Status}", "python3-requests") == (
        "install ok installed"
    )
    assert on_host(host, "docker", "info", "--format", "{{.Name}}").strip() == host


def test_tenants_are_spread_over_both_hosts(tenants):
    where = {name: t["host"] for name, t in tenants.items()}
    assert len(where) >= 3
    assert set(where.values()) == set(HOSTS), where
    assert where["bravo"] == "mh2", "bravo is pinned to mh2 in the inventory"


@pytest.mark.parametrize("host", HOSTS)
def test_each_host_runs_exactly_its_planned_tenants(tenants, host):
    planned = {f"tenancy-{n}-{role}" for n, t in tenants.items() if t["host"] == host for role in ("engine", "gateway")}
    assert set(containers_on(host)) == planned


def test_second_site_run_changes_nothing_on_any_host():
    result = playbook("site.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    rows = recap(result.stdout)
    assert set(HOSTS) <= set(rows), rows
    assert {h: r["changed"] for h, r in rows.items()} == dict.fromkeys(rows, 0), result.stdout[-6000:]


@pytest.mark.parametrize("host", HOSTS)
def test_images_were_loaded_from_archives_not_built(tenants, host):
    # images_source: archive: no build context, no archive copy left over (the build
    # directory holds only the tiny model's generator script).
    left = on_host(host, "sh", "-c", "ls /var/lib/tenancy/build 2>/dev/null || true").split()
    assert not {"base", "gateway", "engine-cpu", "archives"} & set(left), left
    images = on_host(host, "docker", "images", "--format", "{{.Repository}}")
    assert "tenancy/engine-cpu" in images and "tenancy/gateway" in images
    assert "tenancy/base" not in images


# --- serving, through each host's address ---------------------------------------------------


def test_every_tenant_answers_chat_completion_and_stream(tenants, inventory):
    for name, tenant in tenants.items():
        assert tenant["endpoint"].startswith("http://10.203.0."), tenant["endpoint"]
        api = client(tenant, api_key(inventory, name))
        chat = api.chat.completions.create(
            model=tenant["served_model_name"], messages=[{"role": "user", "content": "Hi"}], max_tokens=8
        )
        assert chat.usage.completion_tokens >= 1, name
        completion = api.completions.create(model=tenant["served_model_name"], prompt="Hello", max_tokens=8)
        assert completion.usage.completion_tokens >= 1, name
        chunks = list(
            api.chat.completions.create(
                model=tenant["served_model_name"],
                messages=[{"role": "user", "content": "Stream"}],
                max_tokens=8,
                stream=True,
            )
        )
        assert len(chunks) >= 2, f"{name}: a stream of one chunk was buffered"


def test_a_tenants_key_is_refused_by_every_other_tenant_across_hosts(tenants, inventory):
    crossed = 0
    for source in tenants.values():
        for target in tenants.values():
            if source["name"] == target["name"]:
                continue
            with pytest.raises(openai.AuthenticationError) as excinfo:
                client(target, api_key(inventory, source["name"])).models.list()
            assert excinfo.value.status_code == 401
            crossed += source["host"] != target["host"]
    assert crossed >= 2, "no pair of tenants on different hosts was tried"


def test_tenants_list_shows_each_tenants_host_and_endpoint(tenants, tmp_path):
    output = tmp_path / "tenants.json"
    listed = playbook("tenants-list.yml", "-e", "output=json", "-e", f"list_output={output}")
    assert listed.returncode == 0, listed.stdout[-4000:]
    rows = {row["name"]: row for row in json.loads(output.read_text())}
    assert set(rows) == set(tenants)
    for name, row in rows.items():
        assert row["host"] == tenants[name]["host"]
        assert row["endpoint"] == tenants[name]["endpoint"]
        assert row["engine"]["health"] == "healthy" and row["gateway"]["health"] == "healthy"
    table = playbook("tenants-list.yml")
    assert all(t["endpoint"] in table.stdout for t in tenants.values())


# --- the verbs, on the second host --------------------------------------------------------


@pytest.fixture(scope="module")
def tenants_file():
    """The verbs edit the inventory's tenants file: give it back byte for byte."""
    path = INVENTORY / "group_vars" / "all" / "tenants.yml"
    original = path.read_text()
    yield path
    path.write_text(original)


def chat_status(tenant: dict, key: str, session=None) -> int:
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return (
        (session or requests)
        .post(
            f"{base_url(tenant)}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        .status_code
    )


def test_rotation_on_the_second_host_fails_no_request(tenants, inventory, tenants_file):
    """Keep-alive clients without retries use whatever key the controller's file holds."""
    bravo = tenants["bravo"]
    old = api_key(inventory, "bravo")
    gateway_before = containers_on("mh2")["tenancy-bravo-gateway"]
    stop, results = threading.Event(), []

    def keep_alive_client() -> None:
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
        while not stop.is_set():
            results.append(chat_status(bravo, key_file(inventory, "bravo").read_text().strip(), session))
            time.sleep(0.5)

    threads = [threading.Thread(target=keep_alive_client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    rotated = playbook("rotate-keys.yml", "-e", "tenant=bravo")
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    assert rotated.returncode == 0, rotated.stdout[-4000:]
    new = api_key(inventory, "bravo")
    assert new != old
    assert len(results) > 20
    assert set(results) == {200}, f"{len(results) - results.count(200)} of {len(results)} requests failed"
    assert chat_status(bravo, old) == 401 and chat_status(bravo, new) == 200
    assert containers_on("mh2")["tenancy-bravo-gateway"] == gateway_before, "the gateway was restarted"
    assert old not in rotated.stdout and new not in rotated.stdout


def test_add_update_remove_on_one_host_leave_the_other_alone(tenants, inventory, tenants_file):
    mh1_before = containers_on("mh1")
    mh2_before = containers_on("mh2")

    added = playbook("tenant-add.yml", "-e", f"tenant={ADDED}", "-e", "port=30104", "-e", "served_model_name=tiny-chat")
    assert added.returncode == 0, added.stdout[-4000:]
    mh2_now = containers_on("mh2")
    # Spread: mh2 held one tenant, mh1 two.
    assert {f"tenancy-{ADDED}-engine", f"tenancy-{ADDED}-gateway"} <= set(mh2_now)
    assert containers_on("mh1") == mh1_before
    assert {k: v for k, v in mh2_now.items() if not k.startswith(f"tenancy-{ADDED}-")} == mh2_before
    delta = {**tenants["bravo"], "name": ADDED, "port": 30104, "endpoint": tenants["bravo"]["endpoint"]}
    delta["endpoint"] = delta["endpoint"].replace(":30102/", ":30104/")
    assert chat_status(delta, api_key(inventory, ADDED)) == 200

    engine = f"tenancy-{ADDED}-engine"
    updated = playbook("tenant-update.yml", "-e", f"tenant={ADDED}", "-e", "max_model_len=256")
    assert updated.returncode == 0, updated.stdout[-4000:]
    after_update = containers_on("mh2")
    assert after_update[engine] != mh2_now[engine], "the changed tenant's engine was not recreated"
    assert containers_on("mh1") == mh1_before
    assert {k: v for k, v in after_update.items() if not k.startswith(f"tenancy-{ADDED}-")} == mh2_before

    removed = playbook("tenant-remove.yml", "-e", f"tenant={ADDED}", "-e", "confirm=yes")
    assert removed.returncode == 0, removed.stdout[-4000:]
    assert containers_on("mh2") == mh2_before
    assert containers_on("mh1") == mh1_before
    leftovers = on_host(
        "mh2", "sh", "-c", f"ls -d /etc/tenancy/{ADDED} /var/lib/tenancy/data/{ADDED} 2>/dev/null || true"
    )
    assert leftovers.strip() == ""
    networks = on_host("mh2", "docker", "network", "ls", "--format", "{{.Name}}")
    assert f"tenancy-{ADDED}" not in networks
    assert not key_file(inventory, ADDED).exists()
    assert ADDED not in tenants_file.read_text()
