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
