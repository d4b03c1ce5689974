"""scripts/device_check.py (make device-check): what it records from NVML is exactly
what tests/unit/fake_nvml.py replays, so a recording from a GPU machine drops into
tests/unit/fixtures/nvml/ and every test that reads fixtures picks it up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from device_check import record, slug
from fake_nvml import FIXTURES, FakeNVML

RECORDINGS = sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem != "no_driver")


@pytest.mark.parametrize("fixture", RECORDINGS)
def test_a_recording_replays_as_the_fixture_it_came_from(fixture):
    nvml = FakeNVML(fixture)
    nvml.nvmlInit()
    recorded = record(nvml, "test")
    original = json.loads((FIXTURES / f"{fixture}.json").read_text())
    assert recorded["driver_version"] == original["driver_version"]
    assert recorded["cuda_driver_version"] == original["cuda_driver_version"]
    expected = [{"processes": [], **gpu} for gpu in original["gpus"]]
    assert recorded["gpus"] == expected


def test_fixture_names_come_from_the_gpu_name():
    assert slug("NVIDIA H200") == "nvidia_h200"
    assert slug("NVIDIA A100-SXM4-80GB") == "nvidia_a100_sxm4_80gb"


def test_without_a_readable_gpu_it_says_so_and_records_nothing(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parents[2] / "scripts" / "device_check.py"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        pytest.skip("this machine has a readable GPU")
    assert result.returncode == 2
    assert "nothing to record" in result.stderr
    assert not (tmp_path / "out" / "device-check.json").exists()


# What make device-check measured on real GPUs (its device-check.json, one per GPU model).
REPORTS = sorted((Path(__file__).parent / "fixtures" / "device").glob("*.json"))


def stages(report):
    return [s for gpu in report["gpus"] for s in gpu.get("probe", {}).get("stages", [])]


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_the_context_term_covers_what_a_gpu_charged_outside_torch(path):
    """The planner's CUDA context term holds the largest overhead NVML charged a torch
    process beyond torch's own reservations (context, cuBLAS, any allocation size), and
    the per-GPU reserve holds what the driver keeps out of torch's total."""
    from ansible_collections.tenancy.core.plugins.plugin_utils.placement import GPU_RESERVE_BYTES
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import CONTEXT_BYTES

    report = json.loads(path.read_text())
    overheads = [s["overhead_bytes"] for s in stages(report) if s["overhead_bytes"] is not None]
    assert overheads, f"{path.name} holds no measured stage"
    assert max(overheads) <= CONTEXT_BYTES
    for gpu in report["gpus"]:
        probe = gpu.get("probe", {})
        if "torch_total_bytes" in probe:
            assert gpu["nvml_total_bytes"] - probe["torch_total_bytes"] <= GPU_RESERVE_BYTES
        if "quota_bytes" in probe:
            last = probe["stages"][-1]
            assert last["nvml_process_bytes"] <= probe["quota_bytes"], "a quota less the context term, over it"


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_an_mps_tenant_passes_vllms_start_up_check_on_that_gpu(path):
    """Under CUDA_MPS_PINNED_DEVICE_MEM_LIMIT torch sees the whole GPU as total but only
    the limit less the client's context as free; vLLM refuses to start when
    free < --gpu-memory-utilization x total. The fraction the planner gives a tenant of
    that quota on that GPU (today's code, on the recorded figures) must pass. That the
    limit held is the hardware's answer, recorded: asserted so a recording where it
    did not stands out."""
    from tenancy_plan import tenancy_plan

    report = json.loads(path.read_text())
    checked = 0
    for gpu in report["gpus"]:
        mps = gpu.get("mps", {})
        if "torch_free_bytes" not in mps:
            continue
        assert mps["holds"] is True, mps.get("beyond")
        quota = f"{mps['limit_mib']}M"
        tenant = {"name": "a", "port": 30001, "model": "Qwen/Qwen3-VL-8B-Instruct", "gpu_memory": quota}
        gpus = [{"index": 0, "name": gpu["name"], "memory": gpu["nvml_total_bytes"], "mode": "mps"}]
        (record,) = tenancy_plan([tenant], {}, {"h": {"tenancy_gpus": gpus}}, None, "/nonexistent")
        assert record["gpu_memory_utilization"] * mps["torch_total_bytes"] <= mps["torch_free_bytes"]
        checked += 1
    if not checked:
        pytest.skip(f"{path.name} has no MPS measurement")


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_the_summary_of_a_recorded_report_says_what_held(path):
    from device_check import summary

    lines = summary(json.loads(path.read_text()), Path("fixtures/nvml/x.json"))
    assert any("WITHIN the quota" in line for line in lines)
    assert not any("OVER the quota" in line or "does NOT hold" in line for line in lines)


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_the_gpu_exporter_charges_a_tenant_what_nvml_charged_its_process(path, tmp_path):
    """roles/monitoring's GPU exporter (today's code) on the recorded NVML figure of the
    probe, given a made-up tenant: the same bytes. The report also holds what the
    exporter said on the GPU itself, as root and as an unprivileged user; those must
    agree with NVML too (so its container needs no root)."""
    from device_check import load_exporter

    exporter = load_exporter()
    report = json.loads(path.read_text())
    checked = 0
    for gpu in report["gpus"]:
        probe = gpu.get("probe", {})
        if "exporter" not in probe:
            continue
        held = probe["stages"][-1]["nvml_process_bytes"]
        nvml = FakeNVML(
            data={
                "gpus": [
                    {
                        "name": gpu["name"],
                        "uuid": "GPU-recorded",
                        "memory_total": gpu["nvml_total_bytes"],
                        "memory_used": held,
                        "processes": [{"pid": probe["pid"], "used": held}],
                    }
                ]
            }
        )
        container = "d" * 64
        (tmp_path / str(probe["pid"])).mkdir()
        (tmp_path / str(probe["pid"]) / "cgroup").write_text(f"0::/system.slice/docker-{container}.scope\n")
        tenant = exporter.Tenant("probe", container, 0, "shared", probe["quota_bytes"])
        figures = exporter.collect(nvml, [tenant], str(tmp_path))
        assert figures["tenants"] == [(tenant, held)]
        assert probe["exporter"]["used_bytes"] == held
        assert probe["exporter"]["as_nobody_used_bytes"] == held
        checked += 1
    if not checked:
        pytest.skip(f"{path.name} has no GPU exporter measurement")
