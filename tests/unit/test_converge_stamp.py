"""The tenant role's fast path: the fingerprint filter and the record module's comparisons
(roles/tenant/tasks/converged.yml). Each way a tenant can drift sends it down the full
converge; only an unchanged tenant is skipped."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pytest
import tenancy_converge_stamp as stamp
import yaml
from ansible.errors import AnsibleFilterError
from tenancy_converge_fingerprint import tenancy_converge_fingerprint
from tenancy_inventory import ROOT

ROLE = ROOT / "roles" / "tenant"
RECORD = {"name": "companyA", "cpuset": "0", "rpm_limit": 600}
INPUTS = {"tenant_gateway_memory": "256m", "api_key_sha256": "ab" * 32}
# Options of the main entry point that are not in the fingerprint's inputs, and why:
# tenant_plan is digested whole; the passphrases are secrets (rotate-keys.yml changes
# them); the last two shape nothing on the host.
NOT_INPUTS = {
    "tenant_plan",
    "tenant_volume_passphrases",
    "tenant_volume_old_passphrases",
    "tenant_engine_wait",
    "tenant_fast_path",
    # rotate_volume.yml's alone (rotate-keys.yml -e reencrypt=true); site.yml never re-encrypts.
    "tenant_volume_reencrypt",
    "tenant_volume_reencrypt_log_dir",
    "tenant_volume_reencrypt_timeout",
}


def test_the_fingerprint_covers_every_option_of_the_role():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = set(specs["main"]["options"])
    inputs = set(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__tenant_stamp_inputs"])
    assert inputs == options - NOT_INPUTS, (
        f"in argument_specs, not digested: {sorted(options - NOT_INPUTS - inputs)}; "
        f"digested, not an option: {sorted(inputs - options)}"
    )


def test_the_fingerprint_changes_with_the_plan_the_inputs_and_the_code(tmp_path):
    code = tmp_path / "role"
    (code / "tasks").mkdir(parents=True)
    (code / "tasks" / "main.yml").write_text("---\n")
    base = tenancy_converge_fingerprint(RECORD, INPUTS, [str(code)])
    assert base == tenancy_converge_fingerprint(copy.deepcopy(RECORD), dict(INPUTS), [str(code)])
    assert base != tenancy_converge_fingerprint({**RECORD, "rpm_limit": 601}, INPUTS, [str(code)])
    assert base != tenancy_converge_fingerprint(RECORD, {**INPUTS, "api_key_sha256": "cd" * 32}, [str(code)])
    (code / "tasks" / "main.yml").write_text("---\n# edited\n")
    edited = tenancy_converge_fingerprint(RECORD, INPUTS, [str(code)])
    assert edited != base
    # Docs, byte-code and Molecule scenarios are not code that converges a tenant.
    (code / "README.md").write_text("docs")
    (code / "molecule").mkdir()
    (code / "molecule" / "converge.yml").write_text("---\n")
    assert tenancy_converge_fingerprint(RECORD, INPUTS, [str(code)]) == edited


def test_the_sizing_account_is_not_part_of_the_fingerprint():
    """A fresh host's first run sizes from the known-models table (the images role writes
    the tiny models later in that run), every later run from their config.json: the
    terms differ by a few bytes, nothing the role applies does. Seen in a cold CI run,
    where the second site.yml converged both tenants in full for it."""
    first = {**RECORD, "sizing": {"source": "known models table", "weights_bytes": 1446144}}
    later = {**RECORD, "sizing": {"source": "/var/lib/tenancy/models/tiny-qwen3/config.json", "weights_bytes": 1446112}}
    assert tenancy_converge_fingerprint(first, INPUTS, []) == tenancy_converge_fingerprint(later, INPUTS, [])
    # ... and the tenant role indeed never reads it.
    for path in ROLE.rglob("*.yml"):
        if "molecule" not in path.parts:
            assert "tenant_plan.sizing" not in path.read_text(), path


def test_the_fingerprint_holds_no_input_in_clear():
    fingerprint = tenancy_converge_fingerprint(RECORD, INPUTS, [])
    assert len(fingerprint) == 64 and INPUTS["api_key_sha256"] not in fingerprint


def test_the_fingerprint_refuses_what_is_not_a_plan_record(tmp_path):
    with pytest.raises(AnsibleFilterError, match="tenancy_plan record"):
        tenancy_converge_fingerprint({"cpuset": "0"}, INPUTS, [])
    with pytest.raises(AnsibleFilterError, match="companyA: inputs must be a mapping"):
        tenancy_converge_fingerprint(RECORD, ["not", "a", "mapping"], [])
    with pytest.raises(AnsibleFilterError, match="not a directory"):
        tenancy_converge_fingerprint(RECORD, INPUTS, [str(tmp_path / "missing")])


def test_the_role_code_digest_reads_the_real_role():
    dirs = [str(ROLE), str(ROOT / "filter_plugins"), str(ROOT / "collections/ansible_collections/tenancy/core/plugins")]
    assert len(tenancy_converge_fingerprint(RECORD, INPUTS, dirs)) == 64


# --- the record module -------------------------------------------------------------


def container(started: str = "2026-12-01T00:00:00Z", cpuset: str = "0", health: str | None = "healthy") -> dict:
    state = {"Running": True, "Restarting": False, "StartedAt": started}
    if health:
        state["Health"] = {"Status": health}
    return {
        "Id": "c1",
        "Image": "sha256:img",
        "Config": {"Image": "tenancy/engine:cpu", "Env": ["A=1"]},
        "HostConfig": {"CpusetCpus": cpuset, "Memory": 1 << 30},
        "State": state,
        "NetworkSettings": {"Networks": {"tenancy-companyA": {}}},
    }


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A tenant's config dir and the module's view of Docker, both under test control."""
    config = tmp_path / "etc" / "companyA"
    (config / "gateway").mkdir(parents=True)
    (config / "gateway" / "haproxy.cfg").write_text("global\n")
    keys = config / "gateway" / "keys.map"
    keys.write_text("aa primary\n")
    docker = {
        "container": {"tenancy-companyA-engine": container()},
        "image": {"tenancy/engine:cpu": {"Id": "sha256:img"}},
    }
    monkeypatch.setattr(stamp, "inspect", lambda kind, names: {n: docker[kind][n] for n in names if n in docker[kind]})
    monkeypatch.setattr(stamp, "boot_id", lambda: "boot-1")
    params = {
        "fingerprint": "f" * 64,
        "containers": {"tenancy-companyA-engine": "tenancy/engine:cpu"},
        "trees": [str(config)],
        "mounts": [],
        "owners": [],
        "key_map": str(keys),
    }
    return params, docker, config


def verdict(params: dict, recorded: dict) -> str | None:
    containers = stamp.inspect("container", sorted(params["containers"]))
    now = stamp.observe(params, containers)
    recorded = json.loads(json.dumps(recorded))  # as read back from the file
    return stamp.liveness_problem(params, containers) or stamp.first_difference(recorded, now)


def record(params: dict) -> dict:
    return stamp.observe(params, stamp.inspect("container", sorted(params["containers"])))


def test_an_unchanged_tenant_is_current(host):
    params, _docker, _config = host
    assert verdict(params, record(params)) is None


@pytest.mark.parametrize(
    ("drift", "reason"),
    [
        ("fingerprint", "plan, the role's inputs or code, or its key changed"),
        ("reboot", "the host rebooted"),
        ("docker_update", "was recreated, restarted or reconfigured"),
        ("restart", "was recreated, restarted or reconfigured"),
        ("unhealthy", "is unhealthy"),
        ("stopped", "is not running"),
        ("removed", "does not exist"),
        ("rebuilt_image", "does not run the current image"),
        ("edited_file", "haproxy.cfg changed"),
        ("chmod", "keys.map changed"),
        ("new_file", "stray changed"),
        ("expired_key", "a retired key has expired"),
    ],
)
def test_each_drift_sends_the_tenant_down_the_full_converge(host, monkeypatch, drift, reason):
    params, docker, config = host
    recorded = record(params)
    engine = docker["container"]["tenancy-companyA-engine"]
    if drift == "fingerprint":
        params = {**params, "fingerprint": "e" * 64}
    elif drift == "reboot":
        monkeypatch.setattr(stamp, "boot_id", lambda: "boot-2")
    elif drift == "docker_update":
        engine["HostConfig"]["CpusetCpus"] = "1"
    elif drift == "restart":
        engine["State"]["StartedAt"] = "2026-12-01T01:00:00Z"
    elif drift == "unhealthy":
        engine["State"]["Health"]["Status"] = "unhealthy"
    elif drift == "stopped":
        engine["State"]["Running"] = False
    elif drift == "removed":
        del docker["container"]["tenancy-companyA-engine"]
    elif drift == "rebuilt_image":
        docker["image"]["tenancy/engine:cpu"]["Id"] = "sha256:new"
    elif drift == "edited_file":
        (config / "gateway" / "haproxy.cfg").write_text("global\n# by hand\n")
    elif drift == "chmod":
        os.chmod(config / "gateway" / "keys.map", 0o666)
    elif drift == "new_file":
        (config / "stray").write_text("x")
    elif drift == "expired_key":
        # A retired key written with the record (so the file itself is as recorded)
        # whose time has passed since.
        keys = config / "gateway" / "keys.map"
        keys.write_text(f"aa primary\nbb retired-{int(time.time()) - 1}\n")
        recorded = record(params)
    problem = verdict(params, recorded)
    assert problem is not None and reason in problem, problem


def test_a_retired_key_still_in_its_grace_keeps_the_tenant_current(host):
    params, _docker, config = host
    (config / "gateway" / "keys.map").write_text(f"aa primary\nbb retired-{int(time.time()) + 3600}\n")
    assert verdict(params, record(params)) is None


def test_an_unmounted_volume_is_not_current(host, tmp_path):
    params, _docker, _config = host
    params = {**params, "mounts": [str(tmp_path)]}  # a plain directory, not a mount point
    assert "is not a mount point" in verdict(params, record(params))


def test_a_data_dir_handed_to_another_owner_or_mode_is_not_current(host, tmp_path):
    params, _docker, _config = host
    data = tmp_path / "data-companyA"
    data.mkdir(mode=0o700)
    params = {**params, "owners": [str(data)]}
    recorded = record(params)
    assert verdict(params, recorded) is None
    data.chmod(0o755)
    assert verdict(params, recorded) == f"the owner or mode of {data} changed"


def test_a_record_from_before_owners_were_kept_is_not_current(host, tmp_path):
    params, _docker, _config = host
    recorded = record({**params, "owners": []})
    params = {**params, "owners": [str(tmp_path)]}
    assert "the owner or mode of" in verdict(params, recorded)


def test_the_record_is_written_root_only_and_read_back(host, tmp_path, monkeypatch):
    params, _docker, _config = host
    path = tmp_path / "converged" / "companyA.json"
    exits = []

    class Module:
        def __init__(self, **_kwargs):
            self.params = {**params, "path": str(path), "state": "write"}
            self.check_mode = False

        def exit_json(self, **result):
            exits.append(result)
            raise SystemExit(0)

    monkeypatch.setattr(stamp, "AnsibleModule", Module)
    with pytest.raises(SystemExit):
        stamp.main()
    assert exits[-1]["changed"] is False
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    Module.__init__ = lambda self, **_k: (
        setattr(self, "params", {**params, "path": str(path), "state": "check"}) or setattr(self, "check_mode", False)
    )
    with pytest.raises(SystemExit):
        stamp.main()
    assert exits[-1] == {"changed": False, "current": True, "reason": "unchanged"}
    path.unlink()
    with pytest.raises(SystemExit):
        stamp.main()
    assert exits[-1]["current"] is False and "no record" in exits[-1]["reason"]


def test_the_record_holds_no_secret(host):
    params, _docker, config = host
    secret = "the-luks-key-itself"
    (config / "volume").mkdir()
    (config / "volume" / "luks.key").write_text(secret)
    assert secret not in json.dumps(record(params))
    assert Path(config / "volume" / "luks.key").read_text() == secret


def test_a_host_without_the_docker_cli_gets_a_clear_error(monkeypatch):
    def no_docker(*_args, **_kwargs):
        raise FileNotFoundError(2, "No such file or directory", "docker")

    monkeypatch.setattr(stamp.subprocess, "run", no_docker)
    with pytest.raises(stamp.DockerMissing, match=r"cannot run the docker CLI .*\(the docker role\)"):
        stamp.inspect("container", ["tenancy-companyA-engine"])


def test_a_data_dir_handed_over_with_its_files_is_named_for_the_dir(host, tmp_path):
    """`chown -R` of a volume changes its root and every tracked file under it (the
    adapters' copies): the reason names the root, the cause, not the first file."""
    params, _docker, _config = host
    data = tmp_path / "data-companyA"
    (data / "adapters").mkdir(parents=True, mode=0o700)
    (data / "adapters" / "adapter_config.json").write_text("{}")
    params = {**params, "owners": [str(data)], "trees": [*params["trees"], str(data / "adapters")]}
    recorded = record(params)
    for path in (data, data / "adapters", data / "adapters" / "adapter_config.json"):
        path.chmod(0o750)
    assert verdict(params, recorded) == f"the owner or mode of {data} changed"
