"""What the planner knows of a host: its GPUs, its cores, its address, and which tenants
its running engines hold, on which cores.

plan.yml reads the host (NVML through the GPU facts module, the core count, the engine
containers through community.docker.docker_host_info with verbose output) and hands it
all to this filter; the planner keeps running tenants on their host and their engines on
their cores, so changing one tenant never moves another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_host_facts
short_description: The host facts the planner reads, from what plan.yml found on the host
version_added: "0.1.0"
description:
  - Reads the labels of a host's engine containers (C(tenancy.tenant), C(tenancy.cpuset)),
    as C(community.docker.docker_host_info) lists them with C(verbose_output), running or not.
    Containers without a C(tenancy.tenant) label are ignored.
  - The host's GPUs are the inventory's O(gpus) when it lists them, else the GPUs of the
    C(tenancy_gpu_facts) module's answer O(gpu_facts), each in mode O(gpu_mode).
  - Returns the host facts the C(tenancy_plan) filter reads. GPU facts without C(gpus)
    (NVML unreadable; plan.yml refuses a host with NVIDIA devices it cannot read before
    this) mean no GPUs. Input that is not a list of container mappings, or a GPU entry
    without its C(index), C(name), C(memory_total) or C(mig_capable), raises
    C(AnsibleFilterError).
positional: _input
options:
  _input:
    description: The C(containers) list of C(community.docker.docker_host_info); null or missing means none.
    type: list
    elements: dict
    required: true
  gpus:
    description: The inventory's C(tenancy_gpus) for the host; null when it does not list them.
    type: list
    elements: dict
  gpu_facts:
    description:
      - The C(tenancy_gpu_facts) module's answer (C(gpus), each with C(index), C(name),
        C(memory_total) and C(mig_capable)).
    type: dict
  gpu_mode:
    description: The mode of GPUs found through NVML (C(tenancy_gpu_mode)).
    type: str
    default: shared
  cpus:
    description: The host's core count (C(tenancy_cpus), or the probed C(processor_nproc)); 0 when unknown.
    type: int
    default: 0
  address:
    description: The address clients reach the host at (C(ansible_host), else the inventory name).
    type: str
"""

EXAMPLES = r"""
- name: Collect each host's GPUs, CPUs, engines and address for the planner
  ansible.builtin.set_fact:
    __tenancy_host_facts: >-
      {{ __tenancy_engines.containers | default([])
         | tenancy_host_facts(gpus=tenancy_gpus | default(none),
                              gpu_facts=ansible_facts['tenancy_gpu_facts'] | default({}),
                              gpu_mode=tenancy_gpu_mode, cpus=tenancy_cpus | default(0), address=ansible_host) }}
"""

RETURN = r"""
_value:
  description: The host facts for the planner.
  type: dict
  contains:
    tenancy_tenants_running: {description: Tenants with an engine container on the host, type: list}
    tenancy_cpusets_in_use: {description: Tenant to the cpuset of its engine, type: dict}
    tenancy_gpus: {description: "The host's GPUs (index, name, memory, mig, mode); empty on a CPU host", type: list}
    tenancy_cpus: {description: The host's core count, 0 when unknown, type: int}
    tenancy_address: {description: The host's address, type: str}
"""


def host_gpus(gpu_facts: Mapping[str, Any] | None, gpu_mode: str) -> list[dict[str, Any]]:
    """The planner's GPU list from the tenancy_gpu_facts module's answer."""
    gpus = (gpu_facts or {}).get("gpus") or []
    if not isinstance(gpus, Sequence) or isinstance(gpus, (str, bytes)):
        raise AnsibleFilterError(f"tenancy_host_facts: gpu_facts.gpus is {type(gpus).__name__}, not a list")
    try:
        return [
            {
                "index": gpu["index"],
                "name": gpu["name"],
                "memory": gpu["memory_total"],
                "mig": gpu["mig_capable"],
                "mode": gpu_mode,
            }
            for gpu in gpus
        ]
    except (KeyError, TypeError) as error:
        raise AnsibleFilterError(f"tenancy_host_facts: a GPU of gpu_facts lacks {error}: {list(gpus)!r}") from None


def tenancy_host_facts(
    containers: Sequence[Mapping[str, Any]] | None,
    gpus: Sequence[Mapping[str, Any]] | None = None,
    gpu_facts: Mapping[str, Any] | None = None,
    gpu_mode: str = "shared",
    cpus: int = 0,
    address: str | None = None,
) -> dict[str, Any]:
    """The host facts the planner reads (see DOCUMENTATION)."""
    return {
        **tenancy_host_engines(containers),
        "tenancy_gpus": list(gpus) if gpus is not None else host_gpus(gpu_facts, gpu_mode),
        "tenancy_cpus": int(cpus or 0),
        "tenancy_address": address,
    }


def tenancy_host_engines(containers: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Tenants and cpusets of a host's engine containers."""
    if containers is None:
        containers = []
    if isinstance(containers, (str, bytes, Mapping)) or not isinstance(containers, Sequence):
        raise AnsibleFilterError(
            f"tenancy_host_facts: expected the list of containers, got {type(containers).__name__}"
        )
    running: set[str] = set()
    cpusets: dict[str, str] = {}
    for container in containers:
        if not isinstance(container, Mapping):
            raise AnsibleFilterError(f"tenancy_host_facts: a container is {type(container).__name__}, not a mapping")
        labels = container.get("Labels") or {}
        tenant = labels.get("tenancy.tenant")
        if not tenant:
            continue
        running.add(str(tenant))
        if labels.get("tenancy.cpuset"):
            cpusets[str(tenant)] = str(labels["tenancy.cpuset"])
    return {"tenancy_tenants_running": sorted(running), "tenancy_cpusets_in_use": cpusets}


class FilterModule:
    """Host facts for the planner."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_host_facts": tenancy_host_facts}
