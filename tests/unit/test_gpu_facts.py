"""GPU facts on recorded NVML answers (a fake NVML layer; no GPU needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fake_nvml import FIXTURES, FakeNVML
from tenancy_gpu_facts import gather, import_nvml, nvidia_pci_devices, unreadable_message


def test_a100_without_mig():
    facts = gather(FakeNVML("a100_80gb"))
    assert facts["available"] is True
    assert (facts["driver_version"], facts["cuda_version"]) == ("535.261.03", "12.2")
    (gpu,) = facts["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-80GB"
    assert gpu["memory_total"] == 80 * 1024**3
    assert (gpu["mig_capable"], gpu["mig_current"], gpu["mig_pending"], gpu["mig_devices"]) == (True, False, False, [])


def test_a100_with_seven_1g_10gb():
    (gpu,) = gather(FakeNVML("a100_80gb_mig_7x1g"))["gpus"]
    assert gpu["mig_current"] is True
    assert [d["index"] for d in gpu["mig_devices"]] == list(range(7))
    assert all(d["name"].endswith("MIG 1g.10gb") and d["uuid"].startswith("MIG-") for d in gpu["mig_devices"])


def test_h100():
    facts = gather(FakeNVML("h100_80gb"))
    assert facts["cuda_version"] == "12.4"
    assert facts["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


def test_no_driver_is_a_fact_not_a_failure():
    facts = gather(FakeNVML("no_driver"))
    assert facts["available"] is False
    assert "NVML did not start" in facts["reason"]
    assert facts["gpus"] == []


def test_nvml_is_shut_down_after_reading():
    nvml = FakeNVML("h100_80gb")
    gather(nvml)
    assert nvml.started is False


# Every recording, hand-written or from a GPU machine (make device-check writes them).
RECORDINGS = sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem != "no_driver")


@pytest.mark.parametrize("fixture", RECORDINGS)
@pytest.mark.parametrize("mode", ["shared", "mps", "mig"])
def test_facts_feed_the_planner_in_every_mode(fixture, mode, tmp_path):
    """The tenancy_gpus shape that playbooks/tasks/plan.yml builds from these facts plans
    a 20 GiB tenant on the recorded GPU in each mode (MIG on paper: from the GPU's table)."""
    from ansible_collections.tenancy.core.plugins.plugin_utils.mig import profiles
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import CONTEXT_BYTES
    from tenancy_plan import tenancy_plan

    facts = gather(FakeNVML(fixture))["gpus"]
    gpus = [{"index": g["index"], "name": g["name"], "memory": g["memory_total"], "mode": mode} for g in facts]
    if mode == "mig" and not profiles(facts[0]["name"], facts[0]["memory_total"]):
        pytest.skip(f"{facts[0]['name']} has no MIG table")
    plan = tenancy_plan(
        [{"name": "a", "port": 30001, "gpu_memory": "20G"}], {}, {"h": {"tenancy_gpus": gpus}}, None, str(tmp_path)
    )
    record = plan[0]
    assert record["gpu"] == 0 and record["mode"] == mode
    if mode == "mig":
        assert record["mig_profile"] and 0 < record["gpu_memory_utilization"] <= 0.95
    else:
        usable = 20 * 1024**3 - CONTEXT_BYTES
        assert record["gpu_memory_utilization"] == int(usable * 100 / facts[0]["memory_total"]) / 100


def test_processes_are_mapped_to_their_containers(tmp_path):
    container = "a" * 64
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(
        f"12:memory:/docker/{container}\n0::/system.slice/docker-{container}.scope\n"
    )
    (tmp_path / "4343").mkdir()
    (tmp_path / "4343" / "cgroup").write_text("0::/user.slice/session-1.scope\n")
    (gpu,) = gather(FakeNVML("a100_80gb"), proc=str(tmp_path))["gpus"]
    assert gpu["processes"] == [
        {"pid": 4242, "used_memory": 20 * 1024**3, "container_id": container},
        {"pid": 4343, "used_memory": 1024**3, "container_id": None},
    ]


def fake_sysfs(root, devices):
    for address, (vendor, cls) in devices.items():
        (root / address).mkdir(parents=True)
        (root / address / "vendor").write_text(vendor + "\n")
        (root / address / "class").write_text(cls + "\n")
    return root


def test_nvidia_gpus_on_the_pci_bus_are_found_without_nvml(tmp_path):
    sysfs = fake_sysfs(
        tmp_path,
        {
            "0000:17:00.0": ("0x10de", "0x030200"),  # an A100 (3D controller)
            "0000:65:00.0": ("0x10de", "0x068000"),  # an NVSwitch bridge: not a GPU
            "0000:00:1f.0": ("0x8086", "0x060100"),  # an Intel bridge
        },
    )
    assert nvidia_pci_devices(str(sysfs)) == ["0000:17:00.0"]
    assert nvidia_pci_devices(str(tmp_path / "missing")) == []


def test_a_gpu_nvml_cannot_read_is_reported_with_its_pci_address():
    facts = {**gather(FakeNVML("no_driver")), "nvidia_pci_devices": ["0000:17:00.0"]}
    message = unreadable_message(facts)
    assert "0000:17:00.0" in message and "NVML cannot be read" in message and facts["reason"] in message
    assert unreadable_message({**facts, "nvidia_pci_devices": []}) is None
    assert unreadable_message({**gather(FakeNVML("a100_80gb")), "nvidia_pci_devices": ["0000:17:00.0"]}) is None


def test_the_binding_is_found_in_nvml_path_when_python_lacks_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as on a host without nvidia-ml-py
    assert import_nvml(str(tmp_path)) is None
    (tmp_path / "pynvml.py").write_text("INSTALLED_BY = 'nvidia_driver role'\n")
    assert import_nvml(str(tmp_path)).INSTALLED_BY == "nvidia_driver role"
    assert gather(nvml_path=str(tmp_path / "empty"))["reason"].startswith("pynvml (nvidia-ml-py) is not installed")


def test_the_module_looks_where_the_driver_role_installs_the_binding():
    import yaml
    from tenancy_gpu_facts import DOCUMENTATION

    root = Path(__file__).resolve().parents[2]
    role_default = yaml.safe_load((root / "roles" / "nvidia_driver" / "defaults" / "main.yml").read_text())
    module_default = yaml.safe_load(DOCUMENTATION)["options"]["nvml_path"]["default"]
    assert module_default == role_default["nvidia_driver_nvml_path"]


# What the module itself returned on a GPU machine (make device-check writes
# fixtures/facts/<gpu>.json beside the NVML recording of the same run).
FACTS = Path(__file__).parent / "fixtures" / "facts"
RECORDED_FACTS = sorted(p.stem for p in FACTS.glob("*.json"))


@pytest.mark.parametrize("fixture", RECORDED_FACTS)
def test_the_replayed_recording_gives_the_facts_the_gpu_gave(fixture, tmp_path):
    """The fake NVML layer replays a real GPU faithfully: on the recording, the module
    returns what it returned on the GPU itself (memory in use and the process list are
    left out: they were read a few seconds apart, around the torch probes)."""
    on_gpu = json.loads((FACTS / f"{fixture}.json").read_text())
    replayed = gather(FakeNVML(fixture), proc=str(tmp_path))

    def stable(facts):
        return {
            **facts,
            "gpus": [{k: v for k, v in g.items() if k not in ("memory_used", "processes")} for g in facts["gpus"]],
        }

    assert stable(replayed) == stable(on_gpu)
    assert on_gpu["available"] is True and on_gpu["gpus"]
