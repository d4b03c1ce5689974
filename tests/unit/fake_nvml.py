"""A clearly named FAKE of the pynvml API, replaying recorded NVML answers.

Stands in for the GPU only: tenancy_gpu_facts.collect() runs unchanged on it. Each
fixture in fixtures/nvml/ is one machine's answers (which GPU, and where it came from, is
in the fixture's "source").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "nvml"


class NVMLError(Exception):
    """Like pynvml.NVMLError."""


@dataclass
class Memory:
    total: int
    used: int


@dataclass
class Process:
    pid: int
    usedGpuMemory: int


class FakeNVML:
    NVMLError = NVMLError

    def __init__(self, fixture: str | None = None, data: dict | None = None) -> None:
        """Replay fixtures/nvml/<fixture>.json, or `data` in the same shape."""
        self.data = data if data is not None else json.loads((FIXTURES / f"{fixture}.json").read_text())
        self.started = False

    def nvmlInit(self) -> None:
        if self.data.get("init_error"):
            raise NVMLError(self.data["init_error"])
        self.started = True

    def nvmlShutdown(self) -> None:
        self.started = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.data["driver_version"]

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.data["cuda_driver_version"]

    def nvmlDeviceGetCount(self) -> int:
        return len(self.data["gpus"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict:
        return self.data["gpus"][index]

    def nvmlDeviceGetName(self, handle: dict) -> str:
        return handle["name"]

    def nvmlDeviceGetUUID(self, handle: dict) -> str:
        return handle["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle: dict) -> Memory:
        return Memory(handle["memory_total"], handle["memory_used"])

    def nvmlDeviceGetMigMode(self, handle: dict) -> list[int]:
        if handle.get("mig_mode") is None:
            raise NVMLError("Not Supported")
        return handle["mig_mode"]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict) -> list[Process]:
        return [Process(p["pid"], p["used"]) for p in handle.get("processes", [])]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: dict) -> int:
        return handle.get("max_mig_devices", 0)

    def nvmlDeviceGetGpuInstanceId(self, handle: dict) -> int:
        if "gpu_instance_id" not in handle:
            raise NVMLError("Not Supported")
        return handle["gpu_instance_id"]

    def nvmlDeviceGetComputeInstanceId(self, handle: dict) -> int:
        if "compute_instance_id" not in handle:
            raise NVMLError("Not Supported")
        return handle["compute_instance_id"]

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: dict, index: int) -> dict:
        devices = {d["slot"]: d for d in handle.get("mig_devices", [])}
        if index not in devices:
            raise NVMLError("Not Found")
        return devices[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> dict:
        for gpu in self.data["gpus"]:
            for handle in [gpu, *gpu.get("mig_devices", [])]:
                if handle["uuid"] == uuid:
                    return handle
        raise NVMLError("Not Found")
