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
  - Also lists the NVIDIA display/3D controllers on the PCI bus (C(nvidia_pci_devices), from
    sysfs, no library needed), so a host that has a GPU NVML cannot read is told apart from
    a host with no GPU.
  - With no GPU, no driver or no pynvml, the facts say so (C(available=false) and a
    C(reason)); the module fails for that only with O(fail_if_unreadable).
  - Read-only; supports check mode.
options:
  nvml_path:
    description:
      - Directory searched for C(pynvml) when the host's Python does not have it; the
        nvidia_driver role installs the binding there (C(nvidia_driver_nvml_path)).
    type: path
    default: /opt/tenancy/nvml
  fail_if_unreadable:
    description:
      - Fail, naming the PCI devices and the reason, when the host has an NVIDIA GPU on the
        PCI bus but NVML cannot be read (no binding, driver not loaded, reboot pending).
    type: bool
    default: false
requirements:
  - nvidia-ml-py (pynvml) on the managed host, or in O(nvml_path)
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
  description: C(tenancy_gpu_facts) with available, reason, driver_version, cuda_version, gpus and nvidia_pci_devices.
  returned: always
  type: dict
"""

import importlib.util  # noqa: E402  (Ansible's convention: the doc blocks come first)
import os  # noqa: E402  (same)
import re  # noqa: E402  (same)

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


def nvidia_pci_devices(sysfs="/sys/bus/pci/devices"):
    """PCI addresses of NVIDIA (vendor 0x10de) display/3D controllers (class 0x03xxxx);
    NVSwitch bridges share the vendor id but are not GPUs."""
    found = []
    try:
        entries = sorted(os.listdir(sysfs))
    except OSError:
        return found
    for entry in entries:
        try:
            with open(os.path.join(sysfs, entry, "vendor")) as vendor, open(os.path.join(sysfs, entry, "class")) as cls:
                if vendor.read().strip() == "0x10de" and cls.read().strip().startswith("0x03"):
                    found.append(entry)
        except OSError:
            continue
    return found


def import_nvml(nvml_path):
    """pynvml from the host's Python, else from nvml_path; None when neither has it."""
    try:
        import pynvml

        return pynvml
    except ImportError:
        pass
    candidate = os.path.join(nvml_path, "pynvml.py") if nvml_path else ""
    if not os.path.isfile(candidate):
        return None
    spec = importlib.util.spec_from_file_location("pynvml", candidate)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gather(nvml=None, proc="/proc", nvml_path=None):
    """Facts for this host; never raises for a missing GPU, driver or library."""
    if nvml is None:
        nvml = import_nvml(nvml_path)
        if nvml is None:
            return unavailable(f"pynvml (nvidia-ml-py) is not installed (nor in {nvml_path})")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return unavailable(f"NVML did not start: {exc}")
    try:
        return collect(nvml, proc)
    finally:
        nvml.nvmlShutdown()


def unreadable_message(facts):
    """The failure for a host whose NVIDIA GPU NVML cannot read, or None."""
    if facts["available"] or not facts["nvidia_pci_devices"]:
        return None
    return (
        f"this host has NVIDIA GPU(s) on the PCI bus ({', '.join(facts['nvidia_pci_devices'])}) but NVML cannot "
        f"be read: {facts['reason']}. The nvidia_driver role installs the driver and the NVML binding; a new "
        "driver needs a reboot (nvidia_driver_reboot: true lets the role do it)."
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "nvml_path": {"type": "path", "default": "/opt/tenancy/nvml"},
            "fail_if_unreadable": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    facts = gather(nvml_path=module.params["nvml_path"])
    facts["nvidia_pci_devices"] = nvidia_pci_devices()
    message = unreadable_message(facts)
    if message and module.params["fail_if_unreadable"]:
        module.fail_json(msg=message, ansible_facts={"tenancy_gpu_facts": facts})
    module.exit_json(changed=False, ansible_facts={"tenancy_gpu_facts": facts})


if __name__ == "__main__":
    main()
