"""GPU checks against a deployed GPU inventory (make test-gpu INVENTORY=inventory/<prod>).

Run on the GPU host itself (the controller and the host are the same machine), after
site.yml. Without an NVIDIA driver the whole module is skipped, saying why: these
machines and CI have no GPU, so none of this has run yet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from tenancy_inventory import ROOT, api_key, base_url, load_plan, run_ansible

INVENTORY = Path(os.environ.get("TENANCY_INVENTORY", ROOT / "inventory" / "local"))

pytestmark = pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA driver on this machine")


@pytest.fixture(scope="module")
def gpu_tenants() -> list[dict]:
    tenants = [t for t in load_plan(INVENTORY) if t["state"] == "present" and t["mode"] != "cpu"]
    if not tenants:
        pytest.skip(f"no GPU tenant planned in {INVENTORY}")
    return tenants


@pytest.fixture(scope="module")
def listed(tmp_path_factory) -> dict[str, dict]:
    output = tmp_path_factory.mktemp("list") / "tenants.json"
    result = run_ansible(
        "ansible-playbook",
        "-i",
        INVENTORY,
        ROOT / "playbooks" / "tenants-list.yml",
        "-e",
        "output=json",
        "-e",
        f"list_output={output}",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return {row["name"]: row for row in json.loads(output.read_text())}


def visible_devices(engine: str) -> list[str]:
    result = subprocess.run(["docker", "exec", engine, "nvidia-smi", "-L"], text=True, capture_output=True, check=False)
    assert result.returncode == 0, f"nvidia-smi failed in {engine}: {result.stderr}"
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def test_each_mig_tenant_sees_only_its_own_slice(gpu_tenants):
    mig = [t for t in gpu_tenants if t["mode"] == "mig"]
    if not mig:
        pytest.skip("no mig tenant in this inventory")
    seen: dict[str, str] = {}
    for tenant in mig:
        lines = visible_devices(tenant["names"]["engine"])
        slices = [line for line in lines if line.startswith("MIG ")]
        assert len(slices) == 1, f"{tenant['name']} sees {lines}"
        assert tenant["mig_profile"] in slices[0], (
            f"{tenant['name']}: expected {tenant['mig_profile']}, got {slices[0]}"
        )
        seen[tenant["name"]] = slices[0].split("UUID: ")[-1].rstrip(")")
    assert len(set(seen.values())) == len(seen), f"two tenants share a MIG device: {seen}"


def test_each_shared_or_mps_tenant_sees_only_its_gpu(gpu_tenants):
    for tenant in (t for t in gpu_tenants if t["mode"] in ("shared", "mps")):
        gpus = [line for line in visible_devices(tenant["names"]["engine"]) if line.startswith("GPU ")]
        assert len(gpus) == 1, f"{tenant['name']} sees {gpus}"


def test_nvml_memory_of_each_tenant_stays_within_its_quota(gpu_tenants, listed):
    for tenant in gpu_tenants:
        row = listed[tenant["name"]]
        used = row["gpu_memory_used_bytes"]
        assert used is not None and used > 0, f"{tenant['name']}: NVML shows no process of its engine"
        assert used <= row["quota_bytes"], f"{tenant['name']} uses {used} bytes, quota {row['quota_bytes']}"


# What a tenant's own process sees as "the GPU's memory": torch's mem_get_info inside its
# engine (the vLLM image has torch). Only a MIG instance hides the rest of the GPU; a
# shared or MPS tenant sees the whole GPU's total (and its free memory moves with every
# other tenant's use), which is what docs/reference.md says where the mode is chosen.
SEEN_TOTAL = "import torch; print(torch.cuda.mem_get_info()[1])"


def seen_total_bytes(engine: str) -> int:
    result = subprocess.run(
        ["docker", "exec", engine, "python3", "-c", SEEN_TOTAL], text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, f"torch in {engine}: {result.stderr[-500:]}"
    return int(result.stdout.strip().splitlines()[-1])


def host_gpu_total_bytes(index: int) -> int:
    result = subprocess.run(
        ["nvidia-smi", "-i", str(index), "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(result.stdout.strip()) * 1024**2


def test_only_a_mig_tenant_sees_just_its_own_memory(gpu_tenants):
    for tenant in gpu_tenants:
        seen = seen_total_bytes(tenant["names"]["engine"])
        whole = host_gpu_total_bytes(tenant["gpu"])
        if tenant["mode"] == "mig":
            nominal = int(tenant["mig_profile"].split(".")[1].removesuffix("gb")) * 10**9
            assert seen <= nominal * 1.02 and seen < whole, (
                f"{tenant['name']} ({tenant['mig_profile']}) sees {seen} bytes, GPU total {whole}"
            )
        else:
            assert abs(seen - whole) <= whole * 0.02, (
                f"{tenant['name']} ({tenant['mode']}) sees {seen} bytes, GPU total {whole}"
            )


# --- memory under a saturating load ----------------------------------------------------
LOAD_SECONDS = float(os.environ.get("GPU_LOAD_SECONDS", "60"))
LOAD_USERS = int(os.environ.get("GPU_LOAD_USERS", "32"))


def engine_pids(engine: str) -> set[int]:
    """Host PIDs of every process of an engine container (API server, engine core...)."""
    result = subprocess.run(["docker", "top", engine, "-eo", "pid"], text=True, capture_output=True, check=True)
    return {int(line) for line in result.stdout.split()[1:] if line.strip().isdigit()}


def gpu_memory_of(pids: set[int]) -> int:
    """What NVML charges those processes, summed over every GPU and MIG device."""
    result = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        text=True,
        capture_output=True,
        check=True,
    )
    total = 0
    for line in result.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids and parts[1].isdigit():
            total += int(parts[1]) * 1024**2
    return total


def saturate(tenant: dict, stop: threading.Event) -> None:
    """Long generations, as many at once as the engine takes and more."""
    url = f"{base_url(tenant)}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {api_key(INVENTORY, tenant['name'])}"}
    body = {
        "model": tenant["served_model_name"],
        "messages": [{"role": "user", "content": "Write a long story. " * 50}],
        "max_tokens": max(16, tenant["max_model_len"] // 2),
        "ignore_eos": True,
    }
    while not stop.is_set():
        try:
            requests.post(url, json=body, headers=headers, timeout=600)
        except requests.RequestException:
            time.sleep(1)


def terms(tenant: dict) -> str:
    sizing = tenant.get("sizing") or {}
    if not sizing.get("known"):
        return "model not sized by the planner: the quota is vLLM's fraction of the GPU only"
    gib = 1024**3
    return (
        f"quota {tenant['memory_bytes'] / gib:.1f} GiB = weights {sizing['weights_bytes'] / gib:.1f} + activations "
        f"and CUDA graphs {sizing['reserve_bytes'] / gib:.1f} + CUDA context {sizing['context_bytes'] / gib:.1f} + "
        f"KV cache {(tenant.get('kv_cache_bytes') or 0) / gib:.1f} (--kv-cache-memory-bytes)"
    )


def test_each_tenant_stays_within_its_quota_under_a_saturating_load(gpu_tenants):
    """Every GPU tenant at once, flooded with long generations for GPU_LOAD_SECONDS; the
    peak NVML memory of each engine's processes must stay within its quota."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=saturate, args=(tenant, stop), daemon=True)
        for tenant in gpu_tenants
        for _ in range(LOAD_USERS)
    ]
    for thread in threads:
        thread.start()
    peaks = {t["name"]: 0 for t in gpu_tenants}
    pids = {t["name"]: engine_pids(t["names"]["engine"]) for t in gpu_tenants}
    deadline = time.monotonic() + LOAD_SECONDS
    try:
        while time.monotonic() < deadline:
            for tenant in gpu_tenants:
                peaks[tenant["name"]] = max(peaks[tenant["name"]], gpu_memory_of(pids[tenant["name"]]))
            time.sleep(1)
    finally:
        stop.set()
    over = []
    for tenant in gpu_tenants:
        print(f"{tenant['name']}: peak {peaks[tenant['name']] / 1024**3:.2f} GiB under load; {terms(tenant)}")
        if not 0 < peaks[tenant["name"]] <= tenant["memory_bytes"]:
            over.append(f"{tenant['name']} peaked at {peaks[tenant['name']]} bytes, quota {tenant['memory_bytes']}")
    assert not over, "; ".join(over)
