"""GPU checks against a deployed GPU inventory (make test-gpu INVENTORY=inventory/<prod>).

Run on the GPU host itself (the controller and the host are the same machine), after
site.yml. Without an NVIDIA driver the whole module is skipped, saying why: these
machines and CI have no GPU, so none of this has run yet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from ansible_collections.tenancy.core.plugins.plugin_utils import mig
from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import quota_terms
from tenancy_inventory import ROOT, api_key, base_url, load_plan, run_ansible, trust_bundle_ca

INVENTORY = Path(os.environ.get("TENANCY_INVENTORY", ROOT / "inventory" / "local"))
trust_bundle_ca(INVENTORY)

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


def slice_bytes(tenant: dict) -> int:
    """The usable memory of the tenant's MIG profile on its GPU, as the planner's tables
    hold it (`nvidia-smi mig -lgip`'s figure, plugin_utils/mig.py): the profile's name
    ("1g.10gb") is decimal GB and smaller than what the slice really has."""
    name = subprocess.run(
        ["nvidia-smi", "-i", str(tenant["gpu"]), "--query-gpu=name", "--format=csv,noheader"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    profile = mig.profile_by_name(mig.profiles(name, host_gpu_total_bytes(tenant["gpu"])), tenant["mig_profile"])
    assert profile is not None, f"{tenant['name']}: no {tenant['mig_profile']} in the planner's table for {name}"
    return profile.memory_bytes


def test_only_a_mig_tenant_sees_just_its_own_memory(gpu_tenants):
    for tenant in gpu_tenants:
        seen = seen_total_bytes(tenant["names"]["engine"])
        whole = host_gpu_total_bytes(tenant["gpu"])
        if tenant["mode"] == "mig":
            usable = slice_bytes(tenant)
            assert abs(seen - usable) <= usable * 0.02 and seen < whole, (
                f"{tenant['name']} ({tenant['mig_profile']}) sees {seen} bytes, its slice {usable}, GPU total {whole}"
            )
        else:
            assert abs(seen - whole) <= whole * 0.02, (
                f"{tenant['name']} ({tenant['mode']}) sees {seen} bytes, GPU total {whole}"
            )


# What plain `nvidia-smi` shows inside a tenant: a MIG tenant's "MIG devices" table has
# its one instance, whose Memory-Usage total is the slice's; a shared or MPS tenant's GPU
# row shows the whole GPU (every tenant's use in "used"). docs/reference.md says so where
# the mode is chosen.
MEMORY_USAGE = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def nvidia_smi_memory(engine: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(used, total) MiB of the GPU rows and of the MIG device rows nvidia-smi prints in `engine`."""
    result = subprocess.run(["docker", "exec", engine, "nvidia-smi"], text=True, capture_output=True, check=False)
    assert result.returncode == 0, f"nvidia-smi failed in {engine}: {result.stderr}"
    gpu_part, _, mig_part = result.stdout.partition("MIG devices:")
    mig_part = mig_part.split("Processes:")[0]
    gpu_rows = [(int(u), int(t)) for u, t in MEMORY_USAGE.findall(gpu_part)]
    # Each MIG row has two usages (memory, then BAR1); the memory one comes first.
    mig_rows = [(int(u), int(t)) for u, t in MEMORY_USAGE.findall(mig_part)][::2]
    return gpu_rows, mig_rows


def test_nvidia_smi_in_a_tenant_shows_only_its_own_memory_only_with_mig(gpu_tenants):
    for tenant in gpu_tenants:
        gpu_rows, mig_rows = nvidia_smi_memory(tenant["names"]["engine"])
        whole_mib = host_gpu_total_bytes(tenant["gpu"]) // 1024**2
        if tenant["mode"] == "mig":
            usable_mib = slice_bytes(tenant) // 1024**2
            assert len(mig_rows) == 1, f"{tenant['name']} sees MIG devices {mig_rows}"
            used, total = mig_rows[0]
            assert abs(total - usable_mib) <= usable_mib * 0.02 and used <= total, (
                f"{tenant['name']}: {used}/{total} MiB, its slice {usable_mib} MiB"
            )
        else:
            assert len(gpu_rows) == 1 and not mig_rows, f"{tenant['name']}: GPU rows {gpu_rows}, MIG rows {mig_rows}"
            assert abs(gpu_rows[0][1] - whole_mib) <= whole_mib * 0.02, f"{tenant['name']} sees {gpu_rows[0]}"


# --- memory under a saturating load ----------------------------------------------------
LOAD_SECONDS = float(os.environ.get("GPU_LOAD_SECONDS", "60"))
LOAD_USERS = int(os.environ.get("GPU_LOAD_USERS", "32"))


def engine_pids(engine: str) -> set[int]:
    """Host PIDs of every process of an engine container (API server, engine core...)."""
    result = subprocess.run(["docker", "top", engine, "-eo", "pid"], text=True, capture_output=True, check=True)
    return {int(line) for line in result.stdout.split()[1:] if line.strip().isdigit()}


def gpu_memory_of(pids: set[int]) -> int:
    """What NVML charges those processes, summed over every GPU and MIG device. A driver
    that cannot say ([N/A], as some do per process on MIG) is an error, not 0 bytes."""
    result = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        text=True,
        capture_output=True,
        check=True,
    )
    total = 0
    for line in result.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) not in pids:
            continue
        if not parts[1].isdigit():
            pytest.fail(f"nvidia-smi reports {parts[1]!r} as process {parts[0]}'s GPU memory: {line!r}")
        total += int(parts[1]) * 1024**2
    return total


def saturate(tenant: dict, stop: threading.Event, answered: dict[str, int]) -> None:
    """Long generations, as many at once as the engine takes and more; counts the 200s."""
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
            response = requests.post(url, json=body, headers=headers, timeout=600)
        except requests.RequestException:
            time.sleep(1)
            continue
        if response.status_code == 200:
            answered[tenant["name"]] += 1


def terms(tenant: dict) -> str:
    """What the quota is made of, as the plan states it (sizing.quota_terms)."""
    return quota_terms(tenant) or "model not sized by the planner: the quota is vLLM's fraction of the GPU only"


def test_each_tenant_stays_within_its_quota_under_a_saturating_load(gpu_tenants):
    """Every GPU tenant at once, flooded with long generations for GPU_LOAD_SECONDS; the
    peak NVML memory of each engine's processes must stay within its quota."""
    stop = threading.Event()
    answered = {t["name"]: 0 for t in gpu_tenants}
    threads = [
        threading.Thread(target=saturate, args=(tenant, stop, answered), daemon=True)
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
    for thread in threads:
        thread.join(timeout=660)
    over = []
    for tenant in gpu_tenants:
        name = tenant["name"]
        print(f"{name}: peak {peaks[name] / 1024**3:.2f} GiB under load, {answered[name]} answers; {terms(tenant)}")
        if not 0 < peaks[name] <= tenant["memory_bytes"]:
            over.append(f"{name} peaked at {peaks[name]} bytes, quota {tenant['memory_bytes']}")
        if answered[name] == 0:
            over.append(f"{name} answered no request under load, so its peak says nothing")
    assert not over, "; ".join(over)
