"""Record what a GPU machine can tell without Docker or vLLM (make device-check).

For a machine with an NVIDIA driver, nvidia-ml-py and PyTorch, and nothing else: no
Docker, no vLLM, no network. Reads and changes nothing else on the machine; the MIG mode
is left as it is. In a few minutes it writes to OUT:

  fixtures/nvml/<gpu>.json   NVML's raw answers, in the shape tests/unit/fake_nvml.py
                             replays: copy it to tests/unit/fixtures/nvml/ and the unit
                             tests read it as they read the hand-written ones (facts,
                             planning in shared, MPS and MIG mode)
  fixtures/mig/<family>.txt  `nvidia-smi mig -lgip`, when a GPU is in MIG mode: copy it
                             to tests/unit/fixtures/mig/ and the MIG tables are checked
                             against it
  device-check.json          per GPU: NVML's total next to torch's mem_get_info total,
                             and per budget (0 = CUDA context only) what NVML reports for
                             a torch process that allocated it: the context overhead
  summary.txt                the same for people

What only a full GPU host shows (vLLM's own memory under load, CUDA graphs, MPS limits,
isolation between tenants) is tests/gpu's, after site.yml.

Usage: python3 scripts/device_check.py --out DIR [--budgets-gib 0,1,4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
# The probe a budget runs in: allocate the budget on one GPU, report, wait to be measured.
PROBE = r"""
import os, sys, time, torch
index, budget = int(sys.argv[1]), int(sys.argv[2])
torch.cuda.set_device(index)
torch.cuda.init()
free, total = torch.cuda.mem_get_info(index)
block = torch.empty(budget, dtype=torch.uint8, device=f"cuda:{index}") if budget else None
torch.cuda.synchronize()
print(f"{os.getpid()} {free} {total} {torch.cuda.memory_reserved(index)}", flush=True)
sys.stdin.readline()
"""


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def record(nvml: Any, source: str) -> dict[str, Any]:
    """NVML's answers in fake_nvml.py's fixture shape (what FakeNVML replays)."""
    data: dict[str, Any] = {
        "source": source,
        "driver_version": text(nvml.nvmlSystemGetDriverVersion()),
        "cuda_driver_version": int(nvml.nvmlSystemGetCudaDriverVersion()),
        "gpus": [],
    }
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        gpu: dict[str, Any] = {
            "name": text(nvml.nvmlDeviceGetName(handle)),
            "uuid": text(nvml.nvmlDeviceGetUUID(handle)),
            "memory_total": int(memory.total),
            "memory_used": int(memory.used),
        }
        try:
            gpu["mig_mode"] = [int(m) for m in nvml.nvmlDeviceGetMigMode(handle)]
        except nvml.NVMLError:
            gpu["mig_mode"] = None
        try:
            gpu["processes"] = [
                {"pid": int(p.pid), "used": int(p.usedGpuMemory or 0)}
                for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            ]
        except nvml.NVMLError:
            gpu["processes"] = []
        if gpu["mig_mode"] is not None:
            try:
                gpu["max_mig_devices"] = int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))
            except nvml.NVMLError:
                gpu["max_mig_devices"] = 0
        if gpu["mig_mode"] and gpu["mig_mode"][0]:
            gpu["mig_devices"] = []
            for slot in range(gpu["max_mig_devices"]):
                try:
                    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                except nvml.NVMLError:
                    continue
                mig_memory = nvml.nvmlDeviceGetMemoryInfo(mig)
                device = {
                    "slot": slot,
                    "name": text(nvml.nvmlDeviceGetName(mig)),
                    "uuid": text(nvml.nvmlDeviceGetUUID(mig)),
                    "memory_total": int(mig_memory.total),
                    "memory_used": int(mig_memory.used),
                }
                for key, call in (
                    ("gpu_instance_id", nvml.nvmlDeviceGetGpuInstanceId),
                    ("compute_instance_id", nvml.nvmlDeviceGetComputeInstanceId),
                ):
                    with contextlib.suppress(nvml.NVMLError):
                        device[key] = int(call(mig))
                gpu["mig_devices"].append(device)
        data["gpus"].append(gpu)
    return data


def process_memory(nvml: Any, index: int, pid: int) -> int | None:
    """What NVML reports a process uses on GPU `index` (None where it does not say:
    per-process figures are not available inside MIG on every driver)."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    try:
        for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if int(process.pid) == pid:
                return int(process.usedGpuMemory) if process.usedGpuMemory is not None else None
    except nvml.NVMLError:
        return None
    return None


def probe(nvml: Any, index: int, budget: int) -> dict[str, Any]:
    """Run a torch process that allocates `budget` bytes on GPU `index` and measure it."""
    child = subprocess.Popen(
        [sys.executable, "-c", PROBE, str(index), str(budget)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        if not line:
            return {"budget_bytes": budget, "error": child.stderr.read()[-500:]}
        pid, free, total, reserved = (int(v) for v in line.split())
        used = None
        for _ in range(10):  # NVML's process list can lag the allocation by a moment
            used = process_memory(nvml, index, pid)
            if used:
                break
            time.sleep(0.3)
        return {
            "budget_bytes": budget,
            "torch_free_bytes": free,
            "torch_total_bytes": total,
            "torch_reserved_bytes": reserved,
            "nvml_process_bytes": used,
            "overhead_bytes": None if used is None else used - reserved,
        }
    finally:
        if child.poll() is None:
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait(timeout=60)


def lgip() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "mig", "-lgip"], text=True, capture_output=True, check=False)
    return result.stdout if result.returncode == 0 and "MIG " in result.stdout else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--budgets-gib", default="0,1,4", help="torch allocations to measure, in GiB (0: context)")
    args = parser.parse_args()
    try:
        import pynvml as nvml
    except ImportError:
        print("device-check: pynvml (nvidia-ml-py) is not installed here; nothing to record", file=sys.stderr)
        return 2
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        print(f"device-check: NVML cannot be read here ({exc}); nothing to record", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "filter_plugins"))
    import tenancy_mig  # stdlib only: no Ansible needed on the GPU machine

    out = args.out
    (out / "fixtures" / "nvml").mkdir(parents=True, exist_ok=True)
    host = os.uname().nodename
    try:
        recorded = record(nvml, f"recorded by make device-check on {host}, {time.strftime('%Y-%m-%d')}")
        first = recorded["gpus"][0]["name"] if recorded["gpus"] else "no_gpu"
        fixture = out / "fixtures" / "nvml" / f"{slug(first)}.json"
        fixture.write_text(json.dumps(recorded, indent=2) + "\n")
        report: dict[str, Any] = {"host": host, "driver": recorded["driver_version"], "gpus": []}
        budgets = [int(float(b) * GIB) for b in args.budgets_gib.split(",") if b.strip()]
        for index, gpu in enumerate(recorded["gpus"]):
            in_mig = bool(gpu["mig_mode"] and gpu["mig_mode"][0])
            entry: dict[str, Any] = {
                "index": index,
                "name": gpu["name"],
                "nvml_total_bytes": gpu["memory_total"],
                "mig_mode": gpu["mig_mode"],
                "mig_family": tenancy_mig.family(gpu["name"], gpu["memory_total"]),
                "probes": [],
            }
            if in_mig:
                entry["note"] = "MIG mode on: CUDA sees MIG devices, not the GPU; probes skipped"
            else:
                entry["probes"] = [probe(nvml, index, budget) for budget in budgets]
            report["gpus"].append(entry)
        listing = lgip()
        if listing:
            families = {g["mig_family"] for g in report["gpus"] if g["mig_family"]}
            (out / "fixtures" / "mig").mkdir(parents=True, exist_ok=True)
            for family in families or {"unknown"}:
                (out / "fixtures" / "mig" / f"{family}.txt").write_text(listing)
            report["lgip"] = tenancy_mig.parse_lgip(listing)
    finally:
        nvml.nvmlShutdown()
    (out / "device-check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"host {host}, driver {report['driver']}, fixture {fixture.relative_to(out)}"]
    for gpu in report["gpus"]:
        lines.append(
            f"GPU {gpu['index']} {gpu['name']}: NVML total {gpu['nvml_total_bytes'] / GIB:.2f} GiB, "
            f"MIG mode {gpu['mig_mode']}, MIG table {gpu['mig_family'] or 'none'}"
        )
        for p in gpu["probes"]:
            if "error" in p:
                lines.append(f"  budget {p['budget_bytes'] / GIB:.0f} GiB: probe failed: {p['error']}")
                continue
            nvml_used = "n/a" if p["nvml_process_bytes"] is None else f"{p['nvml_process_bytes'] / GIB:.3f}"
            overhead = "n/a" if p["overhead_bytes"] is None else f"{p['overhead_bytes'] / 2**20:.0f} MiB"
            lines.append(
                f"  budget {p['budget_bytes'] / GIB:.0f} GiB: torch total {p['torch_total_bytes'] / GIB:.2f} GiB "
                f"(NVML - torch = {(gpu['nvml_total_bytes'] - p['torch_total_bytes']) / 2**20:.0f} MiB), "
                f"torch reserved {p['torch_reserved_bytes'] / GIB:.3f} GiB, NVML for the process {nvml_used} GiB, "
                f"context overhead {overhead}"
            )
    if report.get("lgip"):
        lines.append("nvidia-smi mig -lgip: " + ", ".join(f"{k} {v:.2f} GiB" for k, v in report["lgip"].items()))
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
