"""Which plan records a host converges in this run: site.yml's tenant loop reads them."""

from __future__ import annotations

from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.plan_records import host_tenants

DOCUMENTATION = r"""
name: tenancy_host_tenants
short_description: The plan records one host converges in this run
version_added: "0.1.0"
description:
  - From a plan (a list of C(tenancy_plan) records), the records that C(host) converges,
    in plan order. Unplaced tenants are left out.
  - A tenant being removed (state C(absent)) is removed from the host it runs on, or from
    every host when none reports it (its record's C(host) is null).
  - With C(names) (the lifecycle verbs set C(tenancy_converge_tenants)), only those
    tenants; null means every tenant.
  - With C(mode), only records of that mode (C(cpu), C(shared), C(mps), C(mig)) whose
    state is C(present) - site.yml waits for its CPU engines this way, after starting them
    side by side.
  - A plan that is not a list of mappings with a C(name), or names that are not a list,
    raise C(AnsibleFilterError).
positional: _input, host, names, mode
options:
  _input:
    description: The plan.
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host name.
    type: str
    required: true
  names:
    description: Tenant names to keep, or null for all.
    type: list
    elements: str
    default: null
  mode:
    description: Keep only present tenants of this mode; null for every record.
    type: str
    default: null
"""

EXAMPLES = r"""
- name: Converge each planned tenant of this host
  ansible.builtin.include_role:
    name: tenant
  vars:
    tenant_plan: "{{ item }}"
  loop: "{{ tenancy_plan | tenancy_host_tenants(inventory_hostname, tenancy_converge_tenants | default(none)) }}"
"""

RETURN = r"""
_value:
  description: The records, in plan order.
  type: list
  elements: dict
"""


tenancy_host_tenants = host_tenants


class FilterModule:
    """Per-host selection of plan records for site.yml."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_host_tenants": tenancy_host_tenants}
