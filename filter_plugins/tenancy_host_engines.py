"""What a host's running engines tell the planner: which tenants are there, on which cores.

plan.yml lists the host's engine containers (community.docker.docker_host_info with
verbose output) and hands them to this filter; the planner keeps those tenants on that
host and their engines on their cores, so changing one tenant never moves another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_host_engines
short_description: The tenants whose engines exist on a host, and the cores each engine holds
version_added: "0.1.0"
description:
  - Reads the labels of a host's engine containers (C(tenancy.tenant), C(tenancy.cpuset)),
    as C(community.docker.docker_host_info) lists them with C(verbose_output), running or not.
  - Returns C(tenancy_tenants_running) (sorted tenant names) and C(tenancy_cpusets_in_use)
    (tenant to cpuset, for engines that have one), the host facts the C(tenancy_plan)
    filter reads.
  - Containers without a C(tenancy.tenant) label are ignored. Input that is not a list of
    container mappings raises C(AnsibleFilterError).
positional: _input
options:
  _input:
    description: The C(containers) list of C(community.docker.docker_host_info); null or missing means none.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Note what the running engines hold
  ansible.builtin.set_fact:
    __engines: "{{ __tenancy_engines.containers | default([]) | tenancy_host_engines }}"
"""

RETURN = r"""
_value:
  description: The host facts for the planner.
  type: dict
  contains:
    tenancy_tenants_running: {description: Tenants with an engine container on the host, type: list}
    tenancy_cpusets_in_use: {description: Tenant to the cpuset of its engine, type: dict}
"""


def tenancy_host_engines(containers: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Tenants and cpusets of a host's engine containers (see DOCUMENTATION)."""
    if containers is None:
        containers = []
    if isinstance(containers, (str, bytes, Mapping)) or not isinstance(containers, Sequence):
        raise AnsibleFilterError(
            f"tenancy_host_engines: expected the list of containers, got {type(containers).__name__}"
        )
    running: set[str] = set()
    cpusets: dict[str, str] = {}
    for container in containers:
        if not isinstance(container, Mapping):
            raise AnsibleFilterError(f"tenancy_host_engines: a container is {type(container).__name__}, not a mapping")
        labels = container.get("Labels") or {}
        tenant = labels.get("tenancy.tenant")
        if not tenant:
            continue
        running.add(str(tenant))
        if labels.get("tenancy.cpuset"):
            cpusets[str(tenant)] = str(labels["tenancy.cpuset"])
    return {"tenancy_tenants_running": sorted(running), "tenancy_cpusets_in_use": cpusets}


class FilterModule:
    """Host engine facts for the planner."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_host_engines": tenancy_host_engines}
