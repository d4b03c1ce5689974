"""Which tenants a change to the tenants list touches: the lifecycle verbs converge only
those, so their cost follows what they change, not how many tenants there are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.plan_records import plan_records

DOCUMENTATION = r"""
name: tenancy_plan_diff
short_description: Names of the tenants whose plan records differ between two plans
version_added: "0.1.0"
description:
  - Compares two plans (lists of C(tenancy_plan) records) by tenant name and returns, sorted,
    the names of tenants that are new, gone, or whose record differs in any key
    (host, cpuset, engine arguments, limits, state...).
  - The lifecycle verbs plan the tenants list before and after their edit and converge only
    these tenants; a tenant whose record is the same needs nothing done.
  - Input that is not a list of mappings with a C(name) raises C(AnsibleFilterError).
positional: _input, after
options:
  _input:
    description: The plan before the change.
    type: list
    elements: dict
    required: true
  after:
    description: The plan after the change.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Note which tenants the edit touches
  ansible.builtin.set_fact:
    tenancy_converge_tenants: "{{ plan_before | tenancy_plan_diff(tenancy_plan) }}"
"""

RETURN = r"""
_value:
  description: Sorted names of the tenants that differ.
  type: list
  elements: str
"""


def _by_name(plan: Any, label: str) -> dict[str, Mapping[str, Any]]:
    return {str(r["name"]): r for r in plan_records(plan, "tenancy_plan_diff", f"the {label}")}


def tenancy_plan_diff(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of tenants new, gone or changed between two plans (see DOCUMENTATION)."""
    old, new = _by_name(before, "first"), _by_name(after, "second")
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


class FilterModule:
    """Plan comparison for the lifecycle verbs."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_plan_diff": tenancy_plan_diff}
