"""End to end: the two demo tenants, deployed by site.yml, through their gateways.

The session fixture converges inventory/local once; these tests then talk to the
tenants the way a user does (the official openai client) and inspect the real
Docker objects.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
from pathlib import Path

import openai
import pytest
import requests
from gateway_probe import post_refused_early
from helpers import TENANT_DEFAULTS, run_site
from tenancy_inventory import ROOT, ansible_bin, api_key, base_url, key_file, recap_changed, run_ansible

TENANTS = ["companyA", "companyB"]


def client_for(tenant: dict, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url(tenant)}/v1", api_key=key or "", max_retries=0, timeout=60)


# --- idempotence ------------------------------------------------------------------


def test_second_site_run_changes_nothing_and_prints_no_key(first_converge, inventory):
    """One -vvv run serves two checks: the second run changes nothing, and not even
    Ansible's most verbose output (module arguments and results) holds a key."""
    result = run_site("-vvv")
    assert result.returncode == 0, result.stdout[-4000:]
    changed = recap_changed(result.stdout)
    assert changed, f"no PLAY RECAP in output:\n{result.stdout[-2000:]}"
    assert all(n == 0 for n in changed.values()), f"second run changed something: {changed}\n{result.stdout[-6000:]}"
    for name in TENANTS:
        key = api_key(inventory, name)
        assert key not in result.stdout
        assert key not in result.stderr
    # Nor any TLS private key (the bundle CA's, the gateways'): a line of its PEM body.
    for path in (key_file(inventory, "x").parent / "tls").glob("*.key"):
        body = path.read_text().splitlines()[1]
        assert body not in result.stdout and body not in result.stderr, path.name
    # The fast path (roles/tenant/tasks/converged.yml): nothing changed, so no tenant was
    # converged task by task.
    assert "converging in full" not in " ".join(result.stdout.split()), result.stdout[-6000:]
    assert result.stdout.count("converged | Compare the host with the record") == len(TENANTS)
    # ... and site.yml's wait for the CPU engines (ready_wait.yml) has nothing to wait for.
    assert "route_wait | Wait for the gateway" not in result.stdout, result.stdout[-6000:]


def test_a_tenant_changed_behind_ansibles_back_is_converged_in_full(first_converge, tenants, docker_client):
    """The fast path skips only tenants that are as their last full converge left them.
    Planted on companyA: its engine moved onto other cores (`docker update`, as an
    operator might) and its key map made world-readable. The next run converges companyA
    in full, naming the first difference, and puts both back without restarting
    anything; companyB, untouched, is skipped. (Each kind of difference the record
    catches: tests/unit/test_converge_stamp.py.)"""
    engine = docker_client.containers.get(tenants["companyA"]["names"]["engine"])
    keys_map = f"{tenants['companyA']['names']['config_dir']}/gateway/keys.map"
    planned_cpuset = tenants["companyA"]["cpuset"]
    started = {
        name: docker_client.containers.get(tenants[t]["names"][role]).attrs["State"]["StartedAt"]
        for t in TENANTS
        for role in ("engine", "gateway")
        for name in [tenants[t]["names"][role]]
    }
    other_cores = f"0-{os.cpu_count() - 1}"
    assert other_cores != planned_cpuset, "the test needs a host with more than one core"
    mode = stat.S_IMODE(os.stat(keys_map).st_mode)
    try:
        engine.update(cpuset_cpus=other_cores)
        os.chmod(keys_map, 0o644)
        result = run_site("--tags", "tenant")
        assert result.returncode == 0, result.stdout[-4000:]
        said = " ".join(result.stdout.split())  # the YAML callback folds long messages
        reasons = [line for line in said.split("msg: ")[1:] if "converging in full" in line]
        assert f"tenant companyA: container {engine.name} was recreated, restarted or reconfigured" in said, reasons
        assert len(reasons) == 1, reasons
        # site.yml waits for the tenant it converged in full, and for it alone.
        assert result.stdout.count("route_wait | Wait for the gateway to mark the engine up") == 1
        engine.reload()
        assert engine.attrs["HostConfig"]["CpusetCpus"] == planned_cpuset
        assert stat.S_IMODE(os.stat(keys_map).st_mode) == 0o640
        for name, when in started.items():
            assert docker_client.containers.get(name).attrs["State"]["StartedAt"] == when, f"{name} was restarted"
    finally:
        engine.update(cpuset_cpus=planned_cpuset)
        os.chmod(keys_map, mode)


def test_a_tenant_whose_files_belong_to_another_uid_is_handed_them_alone(first_converge, tenants, docker_client):
    """Planted on companyB: every file of its volume given to 1000:1000, the one uid all
    engines ran as before each tenant had its own (an upgraded host). A full run stops
    companyB's engine, hands every file to companyB's uid with its content, and starts
    the engine again as that uid; nothing of companyA restarts. The fast path stays on:
    the data directory's owner is in companyB's converge record, so the run itself finds
    the change (and leaves companyA, unchanged, to the fast path)."""
    b = tenants["companyB"]
    volume = Path(TENANT_DEFAULTS["tenant_data_dir"]) / "companyB"
    probe, content = volume / "migration-probe", secrets.token_hex(16)
    probe.write_text(content)
    subprocess.run(["chown", "-R", "1000:1000", str(volume)], check=True)
    others = [tenants["companyA"]["names"]["engine"], tenants["companyA"]["names"]["gateway"], b["names"]["gateway"]]
    started = {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in others}
    engine_started = docker_client.containers.get(b["names"]["engine"]).attrs["State"]["StartedAt"]
    try:
        result = run_site("--tags", "tenant")
        assert result.returncode == 0, result.stdout[-4000:]
        said = " ".join(result.stdout.split())  # the YAML callback folds long messages
        reasons = [line for line in said.split("msg: ")[1:] if "converging in full" in line]
        assert f"tenant companyB: the owner or mode of {volume} changed: converging in full" in said, reasons
        assert len(reasons) == 1, reasons
        uid = str(b["uid"])
        strays = subprocess.run(
            ["find", str(volume), "(", "!", "-uid", uid, "-o", "!", "-gid", uid, ")", "-print"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert strays == [], f"files of companyB not handed to uid {uid}: {strays[:5]}"
        assert probe.read_text() == content
        engine = docker_client.containers.get(b["names"]["engine"])
        assert engine.attrs["Config"]["User"] == f"{uid}:{uid}"
        assert engine.attrs["State"]["Running"] and engine.attrs["State"]["StartedAt"] != engine_started
        for name, when in started.items():
            assert docker_client.containers.get(name).attrs["State"]["StartedAt"] == when, f"{name} was restarted"
    finally:
        probe.unlink(missing_ok=True)


# --- serving through the gateway -----------------------------------------------------


@pytest.mark.parametrize("name", TENANTS)
def test_completion(tenants, inventory, name):
    tenant = tenants[name]
    reply = client_for(tenant, api_key(inventory, name)).completions.create(
        model=tenant["served_model_name"], prompt="Hello tenant", max_tokens=8
    )
    assert reply.choices[0].text is not None
    assert reply.usage.completion_tokens >= 1


@pytest.mark.parametrize("name", TENANTS)
def test_chat(tenants, inventory, name):
    tenant = tenants[name]
    reply = client_for(tenant, api_key(inventory, name)).chat.completions.create(
        model=tenant["served_model_name"], messages=[{"role": "user", "content": "Hi"}], max_tokens=8
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens >= 1


@pytest.mark.parametrize("name", TENANTS)
def test_streamed_chat(tenants, inventory, name):
    tenant = tenants[name]
    stream = client_for(tenant, api_key(inventory, name)).chat.completions.create(
        model=tenant["served_model_name"],
        messages=[{"role": "user", "content": "Stream please"}],
        max_tokens=8,
        stream=True,
    )
    chunks = list(stream)
    assert len(chunks) >= 2, "a stream of one chunk was buffered, not streamed"
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason is not None


@pytest.mark.parametrize("name", TENANTS)
def test_health_needs_no_key(tenants, name):
    assert requests.get(f"{base_url(tenants[name])}/health", timeout=10).status_code == 200


# --- authentication -----------------------------------------------------------------


def test_foreign_key_is_rejected(tenants, inventory):
    a, b = tenants["companyA"], tenants["companyB"]
    with pytest.raises(openai.AuthenticationError) as excinfo:
        client_for(b, api_key(inventory, a["name"])).models.list()
    assert excinfo.value.status_code == 401


@pytest.mark.parametrize("name", TENANTS)
def test_missing_key_is_rejected(tenants, name):
    response = requests.get(f"{base_url(tenants[name])}/v1/models", timeout=10)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("name", TENANTS)
def test_wrong_scheme_and_garbage_keys_are_rejected(tenants, inventory, name):
    url = f"{base_url(tenants[name])}/v1/models"
    key = api_key(inventory, name)
    for header in (f"Basic {key}", f"Bearer {key}x", "Bearer ", key):
        assert requests.get(url, headers={"Authorization": header}, timeout=10).status_code == 401, header


# --- path allowlist -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/engine/metrics",
        "/invocations",
        "/tokenize",
        "/pause",
        "/version",
        "/v1/../tokenize",
        "/v1/%2e%2e/tokenize",
        "/",
    ],
)
def test_only_v1_and_health_are_exposed(tenants, inventory, path):
    tenant = tenants["companyA"]
    # Raw request: requests would normalise the dots away before sending.
    session = requests.Session()
    request = requests.Request(
        "POST" if path in ("/invocations", "/tokenize", "/pause") else "GET",
        f"{base_url(tenant)}{path}",
        headers={"Authorization": f"Bearer {api_key(inventory, tenant['name'])}"},
        json={} if path in ("/invocations", "/tokenize", "/pause") else None,
    ).prepare()
    request.url = f"{base_url(tenant)}{path}"
    # send() alone skips the environment: take its CA bundle as request() would.
    verify = session.merge_environment_settings(request.url, {}, None, None, None)["verify"]
    response = session.send(request, timeout=10, verify=verify)
    assert response.status_code == 404, f"{path}: {response.status_code} {response.text[:200]}"


def test_body_above_cap_gets_413(tenants, inventory):
    tenant = tenants["companyA"]
    too_big = b"x" * (tenant["max_body_size"] + 1)
    status, answer = post_refused_early(
        f"{base_url(tenant)}/v1/chat/completions",
        {"Authorization": f"Bearer {api_key(inventory, tenant['name'])}", "Content-Type": "application/json"},
        too_big,
    )
    assert status == 413, answer[:200]
    assert json.loads(answer)["error"]["code"] == 413


# --- network isolation ----------------------------------------------------------------
# Whether one engine can reach another (and that the probe catches a planted break) is
# tests/infra's test_isolation, run with its planted breaks on the multi-host stage.


@pytest.mark.parametrize("name", TENANTS)
def test_engine_joins_only_its_internal_network(docker_client, tenants, name):
    tenant = tenants[name]
    engine = docker_client.containers.get(tenant["names"]["engine"])
    assert list(engine.attrs["NetworkSettings"]["Networks"]) == [tenant["names"]["network"]]
    assert docker_client.networks.get(tenant["names"]["network"]).attrs["Internal"] is True
    assert engine.attrs["HostConfig"]["PortBindings"] in (None, {})


@pytest.mark.parametrize("name", TENANTS)
def test_gateway_publishes_exactly_the_tenant_port(docker_client, tenants, name):
    """The tenant's port, and the operator-only metrics port on the loopback only."""
    tenant = tenants[name]
    gateway = docker_client.containers.get(tenant["names"]["gateway"])
    bindings = gateway.attrs["HostConfig"]["PortBindings"]
    assert bindings == {
        "8080/tcp": [{"HostIp": tenant["bind_address"], "HostPort": str(tenant["port"])}],
        "9101/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(tenant["metrics_port"])}],
    }
    assert sorted(gateway.attrs["NetworkSettings"]["Networks"]) == sorted(
        [tenant["names"]["network"], tenant["names"]["edge_network"]]
    )


# --- hardening, labels, secrets ---------------------------------------------------------


@pytest.mark.parametrize("name", TENANTS)
@pytest.mark.parametrize("role", ["engine", "gateway"])
def test_containers_are_hardened(docker_client, tenants, name, role):
    attrs = docker_client.containers.get(tenants[name]["names"][role]).attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in (host["SecurityOpt"] or [])
    assert host["Memory"] > 0
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["Privileged"] is False
    sources = [m.get("Source", "") for m in attrs["Mounts"]]
    assert not any("docker.sock" in s for s in sources)


@pytest.mark.parametrize("name", TENANTS)
def test_engine_mounts_only_its_model_and_its_volume(docker_client, tenants, name):
    tenant = tenants[name]
    mounts = {m["Destination"]: m for m in docker_client.containers.get(tenant["names"]["engine"]).attrs["Mounts"]}
    (model,) = tenant["model_mounts"]
    assert set(mounts) == {model["target"], "/data"}
    assert mounts[model["target"]]["Source"] == model["source"]
    assert mounts[model["target"]]["RW"] is False
    data = mounts["/data"]
    assert data["Type"] == "bind" and data["RW"] is True
    assert data["Source"] == f"{TENANT_DEFAULTS['tenant_data_dir']}/{name}"
    info = os.stat(data["Source"])
    assert stat.S_IMODE(info.st_mode) == 0o700, "a tenant's data directory must be private"
    assert (info.st_uid, info.st_gid) == (tenant["uid"], tenant["uid"]), "a tenant's files are its own uid's"
    assert len({t["uid"] for t in tenants.values()}) == len(tenants), "no two tenants share a uid"


def test_unencrypted_volumes_are_announced(first_converge):
    """inventory/local runs without dm-crypt; every run must say so loudly."""
    said = " ".join(first_converge.stdout.split())
    assert "tenant_volume_encryption is false" in said
    assert "stored UNENCRYPTED" in said


@pytest.mark.parametrize("name", TENANTS)
def test_every_docker_object_is_labelled(docker_client, tenants, name):
    tenant = tenants[name]
    names = tenant["names"]
    label = {"tenancy.tenant": name}
    objects = [
        docker_client.containers.get(names["engine"]).labels,
        docker_client.containers.get(names["gateway"]).labels,
        docker_client.networks.get(names["network"]).attrs["Labels"],
        docker_client.networks.get(names["edge_network"]).attrs["Labels"],
    ]
    for labels in objects:
        assert label.items() <= (labels or {}).items()


@pytest.mark.parametrize("name", TENANTS)
def test_key_is_private_and_absent_from_docker(docker_client, tenants, inventory, name):
    key = api_key(inventory, name)
    assert len(key) >= 43
    assert key_file(inventory, name).stat().st_mode & 0o777 == 0o600
    for role in ("engine", "gateway"):
        container = docker_client.containers.get(tenants[name]["names"][role])
        assert key not in str(container.attrs)
        assert key not in container.logs(tail=500).decode(errors="replace")


# --- load: Locust's thresholds fail a run (the scenarios themselves: make loadtest-short) ---


def run_locust(inventory, tmp_path, run_time: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            ansible_bin("locust"),
            "-f",
            str(ROOT / "loadtests" / "locustfiles" / "qps.py"),
            "--config",
            str(ROOT / "loadtests" / "locust.conf"),
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            run_time,
            "--csv",
            str(tmp_path / "qps"),
            "--html",
            str(tmp_path / "qps.html"),
        ],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**os.environ, "TENANCY_INVENTORY": str(inventory), **extra_env},
        timeout=300,
    )


def test_locust_threshold_fails_the_run(first_converge, inventory, tmp_path):
    """The same scenario with an unreachable threshold must exit non-zero."""
    result = run_locust(inventory, tmp_path, "5s", {"QPS_MIN_RPS": "1000000"})
    assert result.returncode != 0
    assert "THRESHOLD FAILED" in result.stdout


# --- secrets never leak --------------------------------------------------------------------


def test_keys_are_not_read_as_inventory(inventory):
    """The credentials directory sits inside the inventory directory; it must never be
    parsed as an inventory source (the ini plugin would make each key a host name)."""
    listing = run_ansible("ansible-inventory", "-i", inventory, "--list", check=True).stdout
    for name in TENANTS:
        assert api_key(inventory, name) not in listing


def test_no_process_shows_a_key(inventory):
    """Neither the host's process list nor the containers' command lines hold a key."""
    processes = subprocess.run(["ps", "-eo", "args"], text=True, capture_output=True, check=True).stdout
    for name in TENANTS:
        assert api_key(inventory, name) not in processes
