#!/usr/bin/python
"""GPU facts from NVML (nvidia-ml-py), for the planner.

The collection logic is a plain function over an NVML-like object, so unit tests run it
on recorded answers (tests/unit/fake_nvml.py) and a GPU host runs it on pynvml itself.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: tenancy_gpu_facts
short_description: Read the host's NVIDIA GPUs through NVML
version_added: "0.1.0"
description:
  - Reads every GPU with pynvml (the nvidia-ml-py package) - index, UUID, name, total and
    used memory, MIG mode (current and pending) and MIG devices - plus the driver and
    CUDA versions.
  - With no GPU, no driver or no pynvml, the facts say so (C(available=false) and a
    C(reason)); the module never fails for that.
  - Read-only; supports check mode.
options: {}
requirements:
  - nvidia-ml-py (pynvml) on the managed host
author: tenancy maintainers
"""

EXAMPLES = r"""
- name: Read the GPUs
  tenancy_gpu_facts:

- name: Show them
  ansible.builtin.debug:
    var: ansible_facts.tenancy_gpu_facts
"""

RETURN = r"""
ansible_facts:
  description: C(tenancy_gpu_facts) with available, reason, driver_version, cuda_version and gpus.
  returned: always
  type: dict
"""

import re  # noqa: E402  (Ansible's convention: the doc blocks come first)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402  (same)


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(nvml, call, handle):
    """An NVML answer that older drivers may not give: None instead of an error."""
    try:
        return int(call(handle))
    except nvml.NVMLError:
        return None


def _mig_devices(nvml, handle):
    devices = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:
            continue  # an empty slot
        memory = nvml.nvmlDeviceGetMemoryInfo(mig)
        devices.append(
            {
                "index": slot,
                "uuid": _text(nvml.nvmlDeviceGetUUID(mig)),
                "name": _text(nvml.nvmlDeviceGetName(mig)),
                "memory_total": int(memory.total),
                "memory_used": int(memory.used),
                # The GPU/compute instance ids tie a MIG device to `nvidia-smi mig -lgi`
                # (the nvidia_mig role maps each tenant's planned instance to its UUID).
                "gpu_instance_id": _optional(nvml, nvml.nvmlDeviceGetGpuInstanceId, mig),
                "compute_instance_id": _optional(nvml, nvml.nvmlDeviceGetComputeInstanceId, mig),
            }
        )
    return devices


def container_of(pid, proc="/proc"):
    """The Docker container id a process runs in (from its cgroup), or None."""
    try:
        with open(f"{proc}/{pid}/cgroup") as cgroup:
            text = cgroup.read()
    except OSError:
        return None
    match = re.search(r"(?:docker[-/])([0-9a-f]{64})", text)
    return match.group(1) if match else None


def _processes(nvml, handle, proc):
    """Compute processes on a GPU (or MIG device) with the memory each one uses."""
    try:
        running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except nvml.NVMLError:
        return []
    return [
        {"pid": int(p.pid), "used_memory": int(p.usedGpuMemory or 0), "container_id": container_of(p.pid, proc)}
        for p in running
    ]


def collect(nvml, proc="/proc"):
    """Facts from an initialised NVML-like object (pynvml, or a recorded fake)."""
    cuda = nvml.nvmlSystemGetCudaDriverVersion()
    facts = {
        "available": True,
        "reason": "",
        "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
        "cuda_version": f"{cuda // 1000}.{cuda % 1000 // 10}",
        "gpus": [],
    }
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            current, pending = nvml.nvmlDeviceGetMigMode(handle)
            mig_capable = True
        except nvml.NVMLError:
            current = pending = 0
            mig_capable = False
        facts["gpus"].append(
            {
                "index": index,
                "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "memory_total": int(memory.total),
                "memory_used": int(memory.used),
                "mig_capable": mig_capable,
                "mig_current": bool(current),
                "mig_pending": bool(pending),
                "mig_devices": _mig_devices(nvml, handle) if current else [],
                "processes": _processes(nvml, handle, proc),
            }
        )
    return facts


def unavailable(reason):
    return {"available": False, "reason": reason, "driver_version": None, "cuda_version": None, "gpus": []}


def gather(nvml=None, proc="/proc"):
    """Facts for this host; never raises for a missing GPU, driver or library."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return unavailable("pynvml (nvidia-ml-py) is not installed")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return unavailable(f"NVML did not start: {exc}")
    try:
        return collect(nvml, proc)
    finally:
        nvml.nvmlShutdown()


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts={"tenancy_gpu_facts": gather()})


if __name__ == "__main__":
    main()
