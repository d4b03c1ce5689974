"""A tenant's entry in the tenants list, found by name as the verbs find it (ignoring
case): tenant-remove archives the key and drops the entry under the name the file uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import tenant_spec

DOCUMENTATION = r"""
name: tenancy_tenant_entry
short_description: A tenant's entry in the tenants list, found by name ignoring case
version_added: "0.1.0"
description:
  - Returns the entry of the tenants list whose C(name) is O(tenant), ignoring case, as the
    list spells it (C(-e tenant=companya) finds C(companyA)). The same match as the
    C(tenancy_tenants_edit) filter.
  - A name not in the list raises C(AnsibleFilterError) naming the tenant and listing the
    names there are.
positional: _input, tenant
options:
  _input:
    description: The tenants list (the tenants file's C(tenants)).
    type: list
    elements: dict
    required: true
  tenant:
    description: The tenant's name, in any case.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The key file of the tenant being removed, under the name the tenants file uses
  ansible.builtin.debug:
    msg: "credentials/{{ (tenants | tenancy_tenant_entry(tenant)).name }}.api_key"
"""

RETURN = r"""
_value:
  description: The tenant's entry.
  type: dict
"""


def tenancy_tenant_entry(tenants: Any, tenant: Any) -> Mapping[str, Any]:
    """The named tenant's entry (see DOCUMENTATION)."""
    if isinstance(tenants, (str, bytes, Mapping)) or not isinstance(tenants, Sequence):
        raise AnsibleFilterError(f"tenancy_tenant_entry: the tenants list is {type(tenants).__name__}, not a list")
    if not isinstance(tenant, str) or not tenant:
        raise AnsibleFilterError("Name the tenant with -e tenant=NAME.")
    matches = tenant_spec.find_tenant(tenants, tenant)
    if len(matches) != 1:
        raise AnsibleFilterError(tenant_spec.unknown_tenant(tenants, tenant))
    return matches[0]


class FilterModule:
    """A tenant's entry in the tenants list."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_tenant_entry": tenancy_tenant_entry}
