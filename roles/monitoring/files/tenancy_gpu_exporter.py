#!/usr/bin/env python3
"""GPU memory per tenant, from NVML, for Prometheus (roles/monitoring, GPU hosts only).

Each GPU tenant's engine is one container. The tenant role writes one file per GPU
tenant into TENANTS_DIR (`<tenant>.json`: tenant, engine container id, GPU index, mode,
quota in bytes, MIG device UUID). At each scrape this program asks NVML which processes
use each GPU and how much memory, maps every process to its container through
/proc/<pid>/cgroup, and so to its tenant, and answers:

  tenancy_gpu_memory_used_bytes{tenant,gpu,mode}   what NVML charges the tenant's
                                                   processes (MIG: its instance's used)
  tenancy_gpu_memory_quota_bytes{tenant,gpu,mode}  the planned quota
  tenancy_gpu_memory_total_bytes{gpu,name}         the GPU's memory, as NVML counts it
  tenancy_gpu_memory_device_used_bytes{gpu}        all memory in use on the GPU
  tenancy_gpu_memory_unattributed_bytes{gpu}       processes that belong to no tenant
  tenancy_gpu_exporter_errors_total                NVML reads that failed (a scrape, or one
                                                   MIG tenant's instance)

Standard library and pynvml (nvidia-ml-py) only; pynvml comes from --nvml-path (the
directory the nvidia_driver role installs it in) or else this Python. Listens on the
loopback; no tenant can reach it. Reads only: NVML, /proc/<pid>/cgroup, TENANTS_DIR.

Usage: tenancy_gpu_exporter.py --listen 127.0.0.1:9401 --tenants-dir DIR [--nvml-path DIR]
       tenancy_gpu_exporter.py --once --tenants-dir DIR   (print one scrape and exit)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

CONTAINER_RE = re.compile(r"(?:docker[-/]|/)([0-9a-f]{64})(?:\.scope)?\s*$")


@dataclass(frozen=True)
class Tenant:
    name: str
    engine_id: str
    gpu: int
    mode: str
    quota_bytes: int
    mig_uuid: str | None = None


def container_of(pid: int, proc: str = "/proc") -> str | None:
    """The Docker container id of a process, from its cgroup path (cgroup v1 or v2,
    cgroupfs or systemd driver); None for a process outside any container."""
    try:
        with open(os.path.join(proc, str(pid), "cgroup")) as cgroup:
            for line in cgroup:
                found = CONTAINER_RE.search(line.strip())
                if found:
                    return found.group(1)
    except OSError:
        return None
    return None


def load_tenants(directory: str) -> list[Tenant]:
    """The GPU tenants the tenant role recorded; a file that does not parse is skipped
    (and named on stderr), so one bad file never hides the others."""
    tenants = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return tenants
    for name in names:
        try:
            with open(os.path.join(directory, name)) as handle:
                data = json.load(handle)
            tenants.append(
                Tenant(
                    name=str(data["tenant"]),
                    engine_id=str(data.get("engine_id") or ""),
                    gpu=int(data["gpu"]),
                    mode=str(data["mode"]),
                    quota_bytes=int(data["quota_bytes"]),
                    mig_uuid=data.get("mig_uuid") or None,
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"tenancy_gpu_exporter: skipping {name}: {exc}", file=sys.stderr)
    return tenants


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def collect(nvml: Any, tenants: list[Tenant], proc: str = "/proc") -> dict[str, Any]:
    """One scrape's figures from an initialised NVML-like object."""
    by_container = {t.engine_id: t for t in tenants if t.engine_id}
    used: dict[str, int | None] = {t.name: 0 for t in tenants}
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        unattributed = 0
        try:
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except nvml.NVMLError:
            processes = []
        for process in processes:
            amount = int(process.usedGpuMemory or 0)
            tenant = by_container.get(container_of(int(process.pid), proc) or "")
            if tenant is not None and tenant.gpu == index and tenant.mode != "mig":
                used[tenant.name] += amount
            elif tenant is None:
                unattributed += amount
        gpus.append(
            {
                "index": index,
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "total": int(memory.total),
                "used": int(memory.used),
                "unattributed": unattributed,
            }
        )
    # A MIG tenant owns its instance: what the instance has in use is the tenant's
    # (per-process figures inside MIG are not reported by every driver). Not yet read on
    # a GPU in MIG mode; a failed read is counted as an error and its series left out,
    # never reported as 0.
    problems = []
    for tenant in tenants:
        if tenant.mode == "mig":
            try:
                instance = nvml.nvmlDeviceGetHandleByUUID(tenant.mig_uuid or "")
                used[tenant.name] = int(nvml.nvmlDeviceGetMemoryInfo(instance).used)
            except nvml.NVMLError as exc:
                used[tenant.name] = None
                problems.append(f"tenant {tenant.name}: MIG device {tenant.mig_uuid}: {exc}")
    return {"gpus": gpus, "tenants": [(t, used[t.name]) for t in tenants], "problems": problems}


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def render(figures: dict[str, Any] | None, errors: int) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    if figures is not None:
        tenants = figures["tenants"]
        gpus = figures["gpus"]
        family(
            "tenancy_gpu_memory_used_bytes",
            "gauge",
            "GPU memory NVML charges the tenant's engine (MIG: its instance's memory in use).",
            [(_labels(tenant=t.name, gpu=t.gpu, mode=t.mode), used) for t, used in tenants if used is not None],
        )
        family(
            "tenancy_gpu_memory_quota_bytes",
            "gauge",
            "The tenant's planned GPU memory quota.",
            [(_labels(tenant=t.name, gpu=t.gpu, mode=t.mode), t.quota_bytes) for t, _ in tenants],
        )
        family(
            "tenancy_gpu_memory_total_bytes",
            "gauge",
            "The GPU's memory as NVML counts it.",
            [(_labels(gpu=g["index"], name=g["name"]), g["total"]) for g in gpus],
        )
        family(
            "tenancy_gpu_memory_device_used_bytes",
            "gauge",
            "All memory in use on the GPU.",
            [(_labels(gpu=g["index"]), g["used"]) for g in gpus],
        )
        family(
            "tenancy_gpu_memory_unattributed_bytes",
            "gauge",
            "GPU memory of processes that belong to no tenant's engine.",
            [(_labels(gpu=g["index"]), g["unattributed"]) for g in gpus],
        )
    family("tenancy_gpu_exporter_errors_total", "counter", "NVML reads that failed.", [("", errors)])
    return "\n".join(lines) + "\n"


def import_nvml(nvml_path: str | None) -> Any:
    """pynvml from nvml_path (the nvidia_driver role's binding, mounted at /nvml) when it
    is there, else from this Python."""
    candidate = os.path.join(nvml_path, "pynvml.py") if nvml_path else ""
    if os.path.isfile(candidate):
        spec = importlib.util.spec_from_file_location("pynvml", candidate)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        import pynvml

        return pynvml
    except ImportError:
        raise SystemExit(f"tenancy_gpu_exporter: pynvml (nvidia-ml-py) is not in {nvml_path}, nor installed") from None


class Exporter:
    def __init__(self, nvml: Any, tenants_dir: str, proc: str = "/proc") -> None:
        self.nvml = nvml
        self.tenants_dir = tenants_dir
        self.proc = proc
        self.errors = 0
        nvml.nvmlInit()

    def scrape(self) -> str:
        try:
            figures = collect(self.nvml, load_tenants(self.tenants_dir), self.proc)
        except self.nvml.NVMLError as exc:
            self.errors += 1
            print(f"tenancy_gpu_exporter: NVML: {exc}", file=sys.stderr)
            figures = None
        for problem in (figures or {}).get("problems", []):
            self.errors += 1
            print(f"tenancy_gpu_exporter: NVML: {problem}", file=sys.stderr)
        return render(figures, self.errors)


def make_server(exporter: Exporter, address: str, port: int) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics")
                return
            body = exporter.scrape().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # one line per scrape would only fill the journal
            pass

    return HTTPServer((address, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9401", help="ADDRESS:PORT")
    parser.add_argument("--tenants-dir", required=True)
    parser.add_argument("--nvml-path", default="/opt/tenancy/nvml")
    parser.add_argument("--proc", default="/proc", help=argparse.SUPPRESS)
    parser.add_argument("--once", action="store_true", help="print one scrape and exit")
    args = parser.parse_args(argv)
    exporter = Exporter(import_nvml(args.nvml_path), args.tenants_dir, args.proc)
    if args.once:
        sys.stdout.write(exporter.scrape())
        return 0
    address, _, port = args.listen.rpartition(":")
    make_server(exporter, address, int(port)).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
