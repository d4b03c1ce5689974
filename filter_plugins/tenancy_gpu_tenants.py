"""Which tenants of a host have a GPU engine: site.yml runs the GPU exporter on hosts that
have any, and the monitoring role keeps only their records (roles/monitoring)."""

from __future__ import annotations

from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.plan_records import host_tenants

DOCUMENTATION = r"""
name: tenancy_gpu_tenants
short_description: Names of a host's present tenants that have a GPU engine
version_added: "0.1.0"
description:
  - From a plan (C(tenancy_plan) records), the names of the tenants planned on C(host),
    present, with a GPU (shared, MPS or MIG), in plan order.
  - Anything but a list of records with names raises C(AnsibleFilterError) (C(tenancy_host_tenants)).
positional: _input, host
options:
  _input:
    description: The plan.
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Monitor this host's GPU tenants
  ansible.builtin.include_role:
    name: monitoring
  vars:
    monitoring_gpu_tenants: "{{ tenancy_plan | tenancy_gpu_tenants(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: Tenant names.
  type: list
  elements: str
"""


def tenancy_gpu_tenants(plan: Any, host: str) -> list[str]:
    return [
        str(record["name"])
        for record in host_tenants(plan, host)
        if record.get("host") == host and record.get("state") == "present" and isinstance(record.get("gpu"), int)
    ]


class FilterModule:
    """A host's GPU tenants."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_gpu_tenants": tenancy_gpu_tenants}
