"""End to end: bad input changes nothing, a broken tenant fails loudly without touching
the others, and state: absent removes everything of a tenant."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import docker
import pytest
import yaml
from helpers import INVENTORY, TENANT_DEFAULTS, run_site
from tenancy_inventory import ROOT

# The demo's own tenants, as the inventory lists them (a run with -e tenants=... must
# keep them exactly, or it would change them).
DEMO = yaml.safe_load((INVENTORY / "group_vars" / "all" / "tenants.yml").read_text())["tenants"]


def start_times(client: docker.DockerClient, tenants: dict[str, dict]) -> dict[str, str]:
    return {
        t["names"][role]: client.containers.get(t["names"][role]).attrs["State"]["StartedAt"]
        for t in tenants.values()
        for role in ("engine", "gateway")
    }


def tenants_arg(tenants: list[dict]) -> list[str]:
    return ["-e", json.dumps({"tenants": tenants})]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("companyA:1G:80", "tenant 'companyA': field 'port' has invalid value 80"),
        ("companyA:1G:30001,companya:1G:30009", "tenant 'companya': field 'name' has invalid value 'companya'"),
        ("companyA:1G:30001,companyX:1G:30001", "tenant 'companyX': field 'port' has invalid value 30001"),
        ("bad_name:1G:30005", "tenant 'bad_name': field 'name' has invalid value 'bad_name'"),
    ],
)
def test_invalid_tenants_fail_before_any_change(docker_client, tenants, spec, message):
    before = start_times(docker_client, tenants)
    result = run_site("-e", f"tenants={spec}")
    assert result.returncode != 0
    assert message in result.stdout
    assert "TASK [images" not in result.stdout, "a host task ran although the plan was invalid"
    assert start_times(docker_client, tenants) == before


def test_unknown_field_fails_before_any_change(docker_client, tenants):
    before = start_times(docker_client, tenants)
    result = run_site(*tenants_arg([*DEMO, {"name": "companyC", "port": 30003, "gpu_memroy": "1G"}]))
    assert result.returncode != 0
    assert "tenant 'companyC': field 'gpu_memroy' has invalid value '1G': unknown field" in result.stdout
    assert start_times(docker_client, tenants) == before


def test_a_tenant_that_needs_promised_cores_fails_before_any_change(docker_client, tenants):
    """A core promised to one tenant is never handed to another: companyC asks for every
    core of this host, and companyA and companyB hold one each."""
    before = start_times(docker_client, tenants)
    cores = len(os.sched_getaffinity(0))
    result = run_site(*tenants_arg([*DEMO, {"name": "companyC", "port": 30003, "cpus": cores}]))
    said = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert f"tenant 'companyC': field 'cpus' has invalid value {cores}: host " in said
    assert "a core promised to one tenant is never handed to another" in said
    assert "TASK [images" not in result.stdout, "a host task ran although the plan was invalid"
    assert start_times(docker_client, tenants) == before


def test_quota_too_small_for_max_model_len_fails_before_any_change(docker_client, tenants):
    """The oom harness's deploy-side half: a quota that cannot hold max_model_len x
    concurrency tokens is refused by the planner, naming the numbers, before any host
    changes. (An engine that fails at start anyway is test_broken_tenant_fails_with_its_log...)"""
    before = start_times(docker_client, tenants)
    small = {"name": "companyC", "port": 30003, "max_model_len": 4096, "concurrency": 400}
    result = run_site(*tenants_arg([*DEMO, small]))
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "tenant 'companyC': field 'gpu_memory' has invalid value '1GiB'" in said
    assert "max_model_len 4096 x concurrency 400 needs" in said
    assert "TASK [images" not in result.stdout, "a host task ran although the plan was invalid"
    assert start_times(docker_client, tenants) == before


@pytest.mark.skipif(
    Path("/sys/module/dm_mod").exists(), reason="this kernel has device-mapper; the refusal cannot be shown here"
)
def test_encryption_without_dm_crypt_fails_before_any_change(docker_client, tenants):
    """On a kernel without device-mapper (CI), asking for encrypted volumes stops the run
    in preflight, naming what is missing, and never falls back to plain volumes."""
    before = start_times(docker_client, tenants)
    result = run_site("-e", "tenant_volume_encryption=true")
    assert result.returncode != 0
    said = " ".join(result.stdout.split())
    assert "tenant_volume_encryption is true, but this kernel lacks device-mapper (dm_mod)" in said
    assert "Nothing was changed" in said
    assert "TASK [images" not in result.stdout, "a host task ran although preflight failed"
    assert start_times(docker_client, tenants) == before


def test_a_uid_someone_on_the_host_holds_is_refused_before_any_change(docker_client, tenants):
    """A group of the host with companyB's uid as its gid (its members would read
    companyB's files): the run stops in preflight, naming the tenant, the field, the
    value and the group, and no container restarts."""
    uid = str(tenants["companyB"]["uid"])
    subprocess.run(["groupadd", "--gid", uid, "tenancy-e2e-probe"], check=True)
    try:
        before = start_times(docker_client, tenants)
        result = run_site()
        said = " ".join(result.stdout.split())
        assert result.returncode != 0
        assert (
            f"tenant 'companyB': field 'uid' has invalid value {uid} on host localhost: it is the gid of the group "
            "'tenancy-e2e-probe'" in said
        ), said[-3000:]
        assert "tenant 'companyA': field 'uid'" not in said, "companyA's uid is nobody else's"
        assert "Nothing was changed" in said
        assert "TASK [images" not in result.stdout, "a host task ran although preflight failed"
        assert start_times(docker_client, tenants) == before
    finally:
        subprocess.run(["groupdel", "tenancy-e2e-probe"], check=True)


def test_turning_encryption_on_over_unencrypted_data_is_refused(docker_client, tenants):
    """A tenant whose data is a plain directory (the demo runs unencrypted) is not hidden
    under a new LUKS volume: the run refuses, naming it, before anything changes."""
    data_dir = Path(TENANT_DEFAULTS["tenant_data_dir"]) / "companyA"
    planted = data_dir / "customer-data.txt"
    planted.write_text("plaintext that must not be hidden\n")
    try:
        before = start_times(docker_client, tenants)
        result = run_site("-e", "tenant_volume_encryption=true")
        said = " ".join(result.stdout.split())
        assert result.returncode != 0
        assert "tenant companyA: field 'tenant_volume_encryption' has invalid value true" in said, said[-3000:]
        # Each tenant's data directory holds its engine's files (usage counters, vLLM's
        # cache); companyA's also the planted file. The message counts what is there.
        entries = {name: len(os.listdir(data_dir.parent / name)) for name in ("companyA", "companyB")}
        assert entries["companyA"] == entries["companyB"] + 1
        counted = {name: f"({n} {'entry' if n == 1 else 'entries'})" for name, n in entries.items()}
        assert f"{data_dir} on host localhost {counted['companyA']} is not encrypted" in said, said[-3000:]
        assert f"companyB on host localhost {counted['companyB']} is not encrypted" in said
        assert "Nothing was changed" in said
        assert "TASK [images" not in result.stdout, "a host task ran although preflight failed"
        assert start_times(docker_client, tenants) == before
        assert planted.read_text() == "plaintext that must not be hidden\n"
    finally:
        planted.unlink()


def test_broken_tenant_fails_with_its_log_and_leaves_others_alone(docker_client, tenants, inventory):
    """Two ways a third tenant's engine cannot serve, on the running demo. Its model is not
    on the host: the run stops before its engine is created, naming the tenant, the model
    and the path. Its model's directory is there but holds no weights (planted: the tiny
    model's config and tokenizer alone): the engine starts, fails, and the run stops with
    the engine's own last log lines. Neither run restarts companyA or companyB."""
    before = start_times(docker_client, tenants)
    defaults = yaml.safe_load((ROOT / "roles" / "tenancy" / "defaults" / "main.yml").read_text())
    models = Path(defaults["tenancy_models_dir"])
    weightless = models / "e2e-weightless"
    broken = {"name": "companyC", "port": 30003, "model": "no-such-model"}
    # Tenant-only runs (`--tags tenant`, as the loadtests' converges): the host roles add
    # nothing to what this test shows (about 27 s a run on the idle demo, more in CI).
    try:
        # A third tenant on the two-core CI machine has to share a core, by choice.
        result = run_site(*tenants_arg([*DEMO, broken]), "-e", "tenancy_cpu_oversubscribe=true", "--tags", "tenant")
        said = " ".join(result.stdout.split())
        assert result.returncode != 0
        missing = f"({models}/no-such-model is not a directory)"
        assert f"tenant companyC: model 'no-such-model' is not on host localhost {missing}" in said, said[-3000:]
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get("tenancy-companyC-engine")
        assert start_times(docker_client, tenants) == before

        weightless.mkdir(mode=0o755)
        for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(models / "tiny-qwen3" / name, weightless / name)
        broken["model"] = weightless.name
        result = run_site(*tenants_arg([*DEMO, broken]), "-e", "tenancy_cpu_oversubscribe=true", "--tags", "tenant")
        assert result.returncode != 0
        assert "tenant companyC: tenancy-companyC-engine is not healthy" in result.stdout
        errors = result.stdout.split("Errors in the log:", 1)
        assert len(errors) == 2, result.stdout[-3000:]
        # vLLM's own words for a model directory without weights: its worker's exception,
        # some hundred lines above the log's last line, picked out of the engine's log.
        cause = f"RuntimeError: Cannot find any model weights with `/models/{weightless.name}`"
        assert cause in errors[1].split("Last log lines", 1)[0], errors[1][-3000:]
        assert start_times(docker_client, tenants) == before
    finally:
        cleanup = run_site(*tenants_arg([*DEMO, {**broken, "state": "absent"}]), "--tags", "tenant")
        shutil.rmtree(weightless, ignore_errors=True)
    assert cleanup.returncode == 0, cleanup.stdout[-3000:]
    for kind, name in (
        (docker_client.containers, "tenancy-companyC-engine"),
        (docker_client.containers, "tenancy-companyC-gateway"),
        (docker_client.networks, "tenancy-companyC"),
        (docker_client.networks, "tenancy-companyC-edge"),
    ):
        with pytest.raises(docker.errors.NotFound):
            kind.get(name)
    assert not Path("/etc/tenancy/companyC").exists()
    assert not Path(TENANT_DEFAULTS["tenant_data_dir"], "companyC").exists()
    assert not (inventory / "credentials" / "companyC.api_key").exists()
    assert start_times(docker_client, tenants) == before
