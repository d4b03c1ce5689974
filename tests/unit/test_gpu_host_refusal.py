"""A host with an NVIDIA GPU that NVML cannot read yet (a fresh GPU host: no driver, or a
new driver waiting for its reboot) is refused by the plan, naming the host and its GPU,
instead of being planned as a CPU host. The GPU facts come from a clearly named fake
module (tests/unit/fake_modules); plan.yml runs unchanged."""

from __future__ import annotations

import json

from tenancy_inventory import ROOT, run_ansible


def plan_with_fake_gpu(output, monkeypatch, *extra: str):
    """plan.yml on inventory/local with the fake facts module in place of the real one."""
    monkeypatch.setenv("ANSIBLE_LIBRARY", str(ROOT / "tests" / "unit" / "fake_modules"))
    return run_ansible(
        "ansible-playbook",
        "-i",
        ROOT / "inventory" / "local",
        ROOT / "playbooks" / "plan.yml",
        "-e",
        f"plan_output={output}",
        *extra,
        timeout=180,
    )


def test_plan_refuses_a_gpu_host_it_cannot_read(tmp_path, monkeypatch):
    output = tmp_path / "plan.json"
    result = plan_with_fake_gpu(output, monkeypatch)
    assert result.returncode != 0
    assert "host localhost: field 'tenancy_gpus' is not set" in result.stdout
    assert "0000:17:00.0" in result.stdout and "Driver Not Loaded" in result.stdout
    assert "tenancy_prepare_only=true" in result.stdout
    assert not output.exists()


def test_the_same_host_plans_when_the_inventory_lists_its_gpus(tmp_path, monkeypatch):
    output = tmp_path / "plan.json"
    gpus = json.dumps({"tenancy_gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB"}]})
    defaults = '{"tenancy_tenant_defaults": {"model": "tiny-qwen3", "gpu_memory": "2G", "cpus": null}}'
    result = plan_with_fake_gpu(output, monkeypatch, "-e", gpus, "-e", defaults)
    assert result.returncode == 0, result.stdout[-3000:]
    assert {t["mode"] for t in json.loads(output.read_text())} == {"shared"}
