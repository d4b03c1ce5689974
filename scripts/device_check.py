"""Record what a GPU machine can tell without Docker or vLLM (make device-check).

For a machine with an NVIDIA driver, nvidia-ml-py and PyTorch, and nothing else: no
Docker, no vLLM, no network. Changes nothing on the machine: the MIG mode is left as it
is, and the MPS check runs its own control daemon in a temporary directory and stops it.
In a few minutes it writes to OUT:

  fixtures/nvml/<gpu>.json   NVML's raw answers, in the shape tests/unit/fake_nvml.py
                             replays: copy it to tests/unit/fixtures/nvml/ and the unit
                             tests read it as they read the hand-written ones (facts,
                             planning in shared, MPS and MIG mode)
  fixtures/facts/<gpu>.json  what library/tenancy_gpu_facts.py itself returned on the
                             GPU (needs ansible-core importable, see below): copy it to
                             tests/unit/fixtures/facts/ and a unit test checks that the
                             module gives the same facts on the replayed recording
  fixtures/mig/<family>.txt  `nvidia-smi mig -lgip` (it answers with MIG mode off too,
                             on driver 580 at least): copy it
                             to tests/unit/fixtures/mig/ and the MIG tables are checked
                             against it
  plans.txt                  the sample inventory's tenants planned on this GPU in
                             shared, MPS and (on paper, from the MIG table) MIG mode
                             (needs ansible-core importable)
  device-check.json          per GPU: NVML's total next to torch's mem_get_info total;
                             per stage of one torch process (CUDA context, cuBLAS, then
                             each budget, the last one a tenant's quota less the planner's
                             context term) torch's reserved bytes and what NVML charges
                             the process: the context overhead, checked against
                             tenancy_sizing.CONTEXT_BYTES; and, where MPS is installed,
                             whether CUDA_MPS_PINNED_DEVICE_MEM_LIMIT holds a client to
                             its limit and what torch sees as the total under it;
                             and what the GPU exporter (roles/monitoring) reports for
                             the probe as a made-up tenant, read as root and as nobody
  summary.txt                the same for people

ansible-core is pure Python: `make device-pack` copies it from the venv into
.device/site, which the device tool can carry; `make device-check` puts that folder on
PYTHONPATH. Without it the facts and plans are left out and said so.

What only a full GPU host shows (vLLM's own memory under load, CUDA graphs, MPS limits
under a real engine, isolation between tenants) is tests/gpu's, after site.yml.

Usage: python3 scripts/device_check.py --out DIR [--budgets-gib 1,4]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZING_SOURCE = ROOT / "collections/ansible_collections/tenancy/core/plugins/plugin_utils/sizing.py"
GIB = 1024**3
# One torch process, in stages: after each it prints "<stage> <torch reserved bytes>"
# and waits for a line on stdin while the parent reads NVML. Stages: the bare CUDA
# context, then cuBLAS (a bf16 matrix product: its handles and workspaces, as every
# engine has), then each budget in turn (the previous block freed first).
PROBE = r"""
import os, sys, torch
index, budgets = int(sys.argv[1]), [int(b) for b in sys.argv[2:]]
torch.cuda.set_device(index)
free, total = torch.cuda.mem_get_info(index)
print(f"{os.getpid()} {free} {total}", flush=True)
def stage(name):
    torch.cuda.synchronize()
    print(f"{name} {torch.cuda.memory_reserved(index)}", flush=True)
    sys.stdin.readline()
torch.zeros(1, device=f"cuda:{index}")
stage("context")
a = torch.randn(4096, 4096, dtype=torch.bfloat16, device=f"cuda:{index}")
(a @ a).float().sum().item()
del a
torch.cuda.empty_cache()
stage("cublas")
block = None
for budget in budgets:
    block = None
    torch.cuda.empty_cache()
    block = torch.empty(budget, dtype=torch.uint8, device=f"cuda:{index}")
    block.fill_(1)
    stage(f"budget:{budget}")
"""
# Under MPS: a client limited to LIMIT MiB (a tenant's quota) says what torch sees as the
# GPU's free and total memory (vLLM refuses to start when free < fraction x total),
# allocates half the limit (must work), then the whole limit more (must fail).
MPS_PROBE = r"""
import sys, torch
limit = int(sys.argv[1]) * 1024**2
free, total = torch.cuda.mem_get_info(0)
print(f"seen {free} {total}", flush=True)
within = torch.empty(limit // 2, dtype=torch.uint8, device="cuda:0")
within.fill_(1)
torch.cuda.synchronize()
print("within ok", flush=True)
try:
    beyond = torch.empty(limit, dtype=torch.uint8, device="cuda:0")
    beyond.fill_(1)
    torch.cuda.synchronize()
    print("beyond allowed", flush=True)
except torch.OutOfMemoryError as exc:
    print("beyond refused " + str(exc).splitlines()[0][:200], flush=True)
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


def context_bytes() -> int:
    """The planner's CONTEXT_BYTES, read from the source: its module needs ansible-core,
    which the GPU machine may lack."""
    tree = ast.parse(SIZING_SOURCE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONTEXT_BYTES" for t in node.targets):
            return int(eval(compile(ast.Expression(node.value), "CONTEXT_BYTES", "eval"), {"__builtins__": {}}))
    raise LookupError(f"CONTEXT_BYTES not found in {SIZING_SOURCE}")


def device_used(nvml: Any, index: int) -> int:
    return int(nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(index)).used)


def probe(nvml: Any, index: int, budgets: list[int], limit: int) -> dict[str, Any]:
    """One torch process on GPU `index`, measured at each stage (PROBE). `limit` is the
    quota the last budget stands for: NVML's figure for the process must stay within it."""
    baseline = device_used(nvml, index)
    child = subprocess.Popen(
        [sys.executable, "-c", PROBE, str(index), *map(str, budgets)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = {"stages": []}
    try:
        header = child.stdout.readline()
        if not header:
            return {"error": child.stderr.read()[-800:]}
        pid, free, total = (int(v) for v in header.split())
        result.update(pid=pid, torch_free_bytes=free, torch_total_bytes=total)
        for line in child.stdout:
            name, reserved = line.split()
            time.sleep(0.5)  # NVML's figures can lag the allocation by a moment
            used = None
            for _ in range(10):
                used = process_memory(nvml, index, pid)
                if used:
                    break
                time.sleep(0.3)
            delta = device_used(nvml, index) - baseline
            entry = {
                "stage": name,
                "torch_reserved_bytes": int(reserved),
                "nvml_process_bytes": used,
                "nvml_device_delta_bytes": delta,
                "overhead_bytes": None if used is None else used - int(reserved),
            }
            result["stages"].append(entry)
            if name == f"budget:{budgets[-1]}":
                result["exporter"] = exporter_check(nvml, index, pid, limit)
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait(timeout=60)
        if child.returncode:
            result["error"] = child.stderr.read()[-800:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    last = result["stages"][-1] if result["stages"] else None
    if last and last["stage"] == f"budget:{budgets[-1]}":
        charged = last["nvml_process_bytes"] or last["nvml_device_delta_bytes"]
        result["quota_bytes"] = limit
        result["within_quota"] = charged <= limit
    return result


EXPORTER = ROOT / "roles" / "monitoring" / "files" / "tenancy_gpu_exporter.py"


def load_exporter() -> Any:
    """The GPU exporter as a module (it is a role's file, not on any import path)."""
    spec = importlib.util.spec_from_file_location("tenancy_gpu_exporter", EXPORTER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def exporter_check(nvml: Any, index: int, pid: int, quota: int) -> dict[str, Any]:
    """The GPU exporter (roles/monitoring/files/tenancy_gpu_exporter.py) on the real GPU,
    while the probe holds its last budget: the probe's pid is given a made-up container
    (a fake /proc/<pid>/cgroup) that a made-up tenant's record names. Read in this
    process, and by the exporter itself as user nobody (can an unprivileged service see
    other users' GPU memory?)."""
    exporter = load_exporter()
    script = EXPORTER
    work = Path(tempfile.mkdtemp(prefix="device-check-exporter-"))
    container = "d" * 64
    (work / "proc" / str(pid)).mkdir(parents=True)
    (work / "proc" / str(pid) / "cgroup").write_text(f"0::/system.slice/docker-{container}.scope\n")
    (work / "tenants").mkdir()
    record = {"tenant": "probe", "engine_id": container, "gpu": index, "mode": "shared", "quota_bytes": quota}
    (work / "tenants" / "probe.json").write_text(json.dumps(record))
    for path in (work, work / "proc", work / "proc" / str(pid), work / "tenants"):
        path.chmod(0o755)
    for path in (work / "proc" / str(pid) / "cgroup", work / "tenants" / "probe.json"):
        path.chmod(0o644)
    key = f'tenancy_gpu_memory_used_bytes{{tenant="probe",gpu="{index}",mode="shared"}}'
    result: dict[str, Any] = {}
    try:
        text = exporter.render(
            exporter.collect(nvml, exporter.load_tenants(str(work / "tenants")), str(work / "proc")), 0
        )
        result["used_bytes"] = next(
            (int(float(line.split()[-1])) for line in text.splitlines() if line.startswith(key)), None
        )
        as_nobody = subprocess.run(
            [
                sys.executable,
                str(script),
                "--once",
                "--tenants-dir",
                str(work / "tenants"),
                "--proc",
                str(work / "proc"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            user=65534,
            group=65534,
            extra_groups=[],
        )
        found = [line for line in as_nobody.stdout.splitlines() if line.startswith(key)]
        result["as_nobody_used_bytes"] = int(float(found[0].split()[-1])) if found else None
        if as_nobody.returncode:
            result["as_nobody_error"] = as_nobody.stderr[-500:]
    except Exception as exc:  # a report, not a crash: the rest of the check still runs
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def mps_check(index: int, limit_mib: int, fractions: dict[str, float]) -> dict[str, Any]:
    """Start a private MPS control daemon for GPU `index`, run MPS_PROBE as its client
    with CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, and stop the daemon again. For each named
    --gpu-memory-utilization in `fractions`: would vLLM's start-up check pass there?"""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        return {"skipped": "nvidia-cuda-mps-control is not installed here"}
    work = Path(tempfile.mkdtemp(prefix="device-check-mps-"))
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": str(index),
        "CUDA_MPS_PIPE_DIRECTORY": str(work / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(work / "log"),
    }
    (work / "pipe").mkdir()
    (work / "log").mkdir()
    result: dict[str, Any] = {"limit_mib": limit_mib}
    started = subprocess.run([control, "-d"], env=env, capture_output=True, text=True, timeout=60, check=False)
    if started.returncode:
        return {**result, "error": f"nvidia-cuda-mps-control -d: {(started.stderr or started.stdout).strip()}"}
    try:
        client = subprocess.run(
            [sys.executable, "-c", MPS_PROBE, str(limit_mib)],
            env={**env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": f"0={limit_mib}M"},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        lines = client.stdout.splitlines()
        for line in lines:
            if line.startswith("seen "):
                free, total = (int(v) for v in line.split()[1:3])
                result.update(torch_free_bytes=free, torch_total_bytes=total)
        result["within_ok"] = "within ok" in lines
        result["beyond"] = next((line for line in lines if line.startswith("beyond")), None)
        result["holds"] = (
            result["within_ok"] and bool(result["beyond"]) and result["beyond"].startswith("beyond refused")
        )
        if client.returncode:
            result["error"] = client.stderr[-800:]
        if "torch_total_bytes" in result:
            result["vllm_startup_check"] = {
                label: {
                    "fraction": fraction,
                    "asks_bytes": int(fraction * result["torch_total_bytes"]),
                    "passes": fraction * result["torch_total_bytes"] <= result["torch_free_bytes"],
                }
                for label, fraction in fractions.items()
            }
    finally:
        subprocess.run([control], input="quit\n", env=env, capture_output=True, text=True, timeout=60, check=False)
        log = work / "log" / "control.log"
        if log.exists():
            result["control_log_tail"] = log.read_text()[-1500:]
        shutil.rmtree(work, ignore_errors=True)
    return result


def facts_and_plans(nvml: Any) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
    """The GPU facts module's own answer and the sample inventory's tenants planned on
    this GPU in every mode; (None, [reason], {}) without ansible-core."""
    sys.path.insert(0, str(ROOT / "library"))
    try:
        import tenancy_gpu_facts
        import tenancy_plan
        import tenancy_plan_table
        import yaml
    except ImportError as exc:
        return None, [f"facts and plans left out: {exc} (make device-pack, then carry .device)"], {}
    facts = tenancy_gpu_facts.gather(nvml)
    sample = ROOT / "inventory" / "sample" / "group_vars" / "all"
    defaults = yaml.safe_load((sample / "tenancy.yml").read_text())["tenancy_tenant_defaults"]
    tenants = [
        {k: v for k, v in t.items() if k != "host"}
        for t in yaml.safe_load((sample / "tenants.yml").read_text())["tenants"]
    ]
    lines = [f"tenants of inventory/sample on this machine's GPUs, defaults {defaults}"]
    plans: dict[str, Any] = {}
    for mode in ("shared", "mps", "mig"):
        gpus = [
            {"index": g["index"], "name": g["name"], "memory": g["memory_total"], "mode": mode} for g in facts["gpus"]
        ]
        try:
            plan = tenancy_plan.tenancy_plan(
                tenants, defaults, {"gpuhost": {"tenancy_gpus": gpus}}, None, "/nonexistent"
            )
        except Exception as exc:  # the planner's refusal is a result too
            plans[mode] = {"refused": str(exc)}
            lines += [f"\n{mode}: refused: {exc}"]
            continue
        plans[mode] = [
            {k: r[k] for k in ("name", "gpu", "mode", "memory_bytes", "gpu_memory_utilization", "kv_cache_bytes")}
            | {"mig_profile": r.get("mig_profile"), "engine_args": r["engine_args"], "engine_env": r["engine_env"]}
            for r in plan
        ]
        lines += [f"\n{mode}:", *tenancy_plan_table.tenancy_plan_table(plan)]
    return facts, lines, plans


def lgip() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "mig", "-lgip"], text=True, capture_output=True, check=False)
    return result.stdout if result.returncode == 0 and "MIG " in result.stdout else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--budgets-gib", default="1,4", help="torch allocations to measure, in GiB")
    parser.add_argument(
        "--quota-gib",
        type=float,
        default=26,
        help="a tenant's quota (default: the sample inventory's): the last budget is it less the context term",
    )
    parser.add_argument("--no-mps", action="store_true", help="leave out the MPS check")
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
    sys.path[:0] = [str(ROOT / "filter_plugins"), str(ROOT / "collections")]
    # stdlib only: no Ansible needed on the GPU machine
    from ansible_collections.tenancy.core.plugins.plugin_utils import mig as tenancy_mig

    out = args.out
    (out / "fixtures" / "nvml").mkdir(parents=True, exist_ok=True)
    host = os.uname().nodename
    quota = int(args.quota_gib * GIB)
    budgets = [int(float(b) * GIB) for b in args.budgets_gib.split(",") if b.strip()]
    budgets.append(quota - context_bytes())
    try:
        recorded = record(nvml, f"recorded by make device-check on {host}, {time.strftime('%Y-%m-%d')}")
        first = recorded["gpus"][0]["name"] if recorded["gpus"] else "no_gpu"
        name = slug(first)
        fixture = out / "fixtures" / "nvml" / f"{name}.json"
        fixture.write_text(json.dumps(recorded, indent=2) + "\n")
        report: dict[str, Any] = {
            "host": host,
            "driver": recorded["driver_version"],
            "context_bytes_planned": context_bytes(),
            "gpus": [],
        }
        facts, plan_lines, plans = facts_and_plans(nvml)
        with contextlib.suppress(ImportError):
            import torch

            report["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda})"
        for index, gpu in enumerate(recorded["gpus"]):
            in_mig = bool(gpu["mig_mode"] and gpu["mig_mode"][0])
            entry: dict[str, Any] = {
                "index": index,
                "name": gpu["name"],
                "nvml_total_bytes": gpu["memory_total"],
                "mig_mode": gpu["mig_mode"],
                "mig_family": tenancy_mig.family(gpu["name"], gpu["memory_total"]),
            }
            if in_mig:
                entry["note"] = "MIG mode on: CUDA sees MIG devices, not the GPU; probes skipped"
            else:
                entry["probe"] = probe(nvml, index, budgets, quota)
                if not args.no_mps:
                    fractions = {
                        "quota / NVML total (before 2026-11-30)": math.floor(quota * 100 / gpu["memory_total"]) / 100
                    }
                    planned = [
                        r
                        for r in plans.get("mps", [])
                        if isinstance(r, dict) and r["memory_bytes"] == quota and r["gpu"] == index
                    ]
                    if planned:
                        fractions["planned"] = planned[0]["gpu_memory_utilization"]
                    entry["mps"] = mps_check(index, quota // 2**20, fractions)
            report["gpus"].append(entry)
        listing = lgip()
        if listing:
            families = {g["mig_family"] for g in report["gpus"] if g["mig_family"]}
            (out / "fixtures" / "mig").mkdir(parents=True, exist_ok=True)
            for family in families or {"unknown"}:
                (out / "fixtures" / "mig" / f"{family}.txt").write_text(listing)
            report["lgip"] = tenancy_mig.parse_lgip(listing)
        if facts is not None:
            (out / "fixtures" / "facts").mkdir(parents=True, exist_ok=True)
            (out / "fixtures" / "facts" / f"{name}.json").write_text(json.dumps(facts, indent=2) + "\n")
            report["plans"] = plans
        (out / "plans.txt").write_text("\n".join(plan_lines) + "\n")
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
    (out / "device-check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = summary(report, fixture.relative_to(out))
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\n{(out / 'plans.txt').read_text()}")
    return 0


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def summary(report: dict[str, Any], fixture: Path) -> list[str]:
    mib = 2**20
    lines = [f"host {report['host']}, driver {report['driver']}, torch {report.get('torch', 'n/a')}, fixture {fixture}"]
    for gpu in report["gpus"]:
        lines.append(
            f"GPU {gpu['index']} {gpu['name']}: NVML total {gpu['nvml_total_bytes'] / GIB:.2f} GiB, "
            f"MIG mode {gpu['mig_mode']}, MIG table {gpu['mig_family'] or 'none'}"
        )
        run = gpu.get("probe")
        if run is None:
            lines.append(f"  {gpu.get('note', '')}")
            continue
        if "torch_total_bytes" in run:
            lines.append(
                f"  torch mem_get_info total {run['torch_total_bytes'] / GIB:.2f} GiB "
                f"(NVML - torch = {(gpu['nvml_total_bytes'] - run['torch_total_bytes']) / mib:.0f} MiB)"
            )
        for st in run.get("stages", []):
            nvml_used = "n/a" if st["nvml_process_bytes"] is None else f"{st['nvml_process_bytes'] / mib:.0f} MiB"
            overhead = "n/a" if st["overhead_bytes"] is None else f"{st['overhead_bytes'] / mib:.0f} MiB"
            lines.append(
                f"  {st['stage']:<20} torch reserved {st['torch_reserved_bytes'] / mib:8.0f} MiB, NVML for the process "
                f"{nvml_used}, device used +{st['nvml_device_delta_bytes'] / mib:.0f} MiB, outside torch {overhead}"
            )
        if "within_quota" in run:
            lines.append(
                f"  a {run['quota_bytes'] / GIB:.0f} GiB quota less the planned context term "
                f"({report['context_bytes_planned'] / mib:.0f} MiB), allocated by torch: "
                + ("WITHIN the quota" if run["within_quota"] else "OVER the quota: raise CONTEXT_BYTES")
            )
        if run.get("error"):
            lines.append(f"  probe failed: {run['error']}")
        seen = run.get("exporter")
        if seen:
            last = run["stages"][-1]
            nobody = seen.get("as_nobody_used_bytes")
            lines.append(
                f"  GPU exporter, the probe as a tenant: {_mib(seen.get('used_bytes'))} "
                f"(NVML for the process {_mib(last['nvml_process_bytes'])}); "
                f"run as nobody: {_mib(nobody)}"
                + (f" ({seen['as_nobody_error'].strip().splitlines()[-1]})" if seen.get("as_nobody_error") else "")
                + (f"; failed: {seen['error']}" if seen.get("error") else "")
            )
        mps = gpu.get("mps")
        if mps:
            if "skipped" in mps or "holds" not in mps:
                lines.append(f"  MPS: {mps.get('skipped') or mps.get('error')}")
            else:
                lines.append(
                    f"  MPS, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT={mps['limit_mib']}M: torch sees total "
                    f"{mps.get('torch_total_bytes', 0) / mib:.0f} MiB, "
                    f"free {mps.get('torch_free_bytes', 0) / mib:.0f} MiB; "
                    f"half the limit {'allocated' if mps['within_ok'] else 'FAILED'}; beyond it: {mps['beyond']}; "
                    + ("the limit HOLDS" if mps["holds"] else "the limit does NOT hold")
                )
                for label, check in mps.get("vllm_startup_check", {}).items():
                    lines.append(
                        f"  MPS, vLLM's start-up check, --gpu-memory-utilization {check['fraction']:.2f} ({label}): "
                        f"asks {check['asks_bytes'] / mib:.0f} MiB, {mps['torch_free_bytes'] / mib:.0f} MiB free: "
                        + ("passes" if check["passes"] else "REFUSES to start")
                    )
    if report.get("lgip"):
        lines.append("nvidia-smi mig -lgip: " + ", ".join(f"{k} {v:.2f} GiB" for k, v in report["lgip"].items()))
    return lines


if __name__ == "__main__":
    sys.exit(main())
