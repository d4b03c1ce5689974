"""The edit a lifecycle verb makes to the tenants list (playbooks/tasks/tenants_file.yml):
the new list, or an error that names the tenant, before the planner or any file sees it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import tenant_spec

DOCUMENTATION = r"""
name: tenancy_tenants_edit
short_description: The tenants list after a lifecycle verb's edit (add, update, remove)
version_added: "0.1.0"
description:
  - C(add) appends C({name, **fields}); the name must not exist yet (names ignore case).
  - C(update) merges C(fields) into the named tenant's entry; the tenant must exist and
    C(fields) must not be empty.
  - C(remove) sets the named tenant's C(state) to C(absent) (the converge that follows
    removes it; the verb then drops the entry).
  - The other entries are returned as they are, in their order. Whether the new list is
    valid (fields, ports, room on the GPUs) is the planner's to say, next.
  - A missing tenant name, an unknown verb, or a name that is taken (add) or unknown
    (update, remove) raises C(AnsibleFilterError) with what to do instead.
positional: _input, verb, tenant, fields, known_fields
options:
  _input:
    description: The tenants list as the tenants file holds it.
    type: list
    elements: dict
    required: true
  verb:
    description: add, update or remove.
    type: str
    required: true
  tenant:
    description: The tenant's name (-e tenant=NAME).
    type: str
    required: true
  fields:
    description: The tenant's fields given as extra vars (add, update).
    type: dict
    default: {}
  known_fields:
    description: The fields a verb takes, named in the message of an update without fields.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Work out the new tenants list
  ansible.builtin.set_fact:
    new_tenants: "{{ current_tenants | tenancy_tenants_edit('update', 'companyA', {'rpm_limit': 120}) }}"
"""

RETURN = r"""
_value:
  description: The new tenants list.
  type: list
  elements: dict
"""

VERBS = ("add", "update", "remove")


def tenancy_tenants_edit(
    current: Any,
    verb: str,
    tenant: Any,
    fields: Mapping[str, Any] | None = None,
    known_fields: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The new tenants list (see DOCUMENTATION)."""
    if verb not in VERBS:
        raise AnsibleFilterError(f"tenancy_tenants_edit: verb {verb!r} is not one of {', '.join(VERBS)}")
    if not isinstance(tenant, str) or not tenant:
        raise AnsibleFilterError("Name the tenant with -e tenant=NAME.")
    if isinstance(current, (str, bytes, Mapping)) or not isinstance(current, Sequence):
        raise AnsibleFilterError(f"tenancy_tenants_edit: the tenants list is {type(current).__name__}, not a list")
    fields = dict(fields or {})
    entries = [dict(entry) if isinstance(entry, Mapping) else entry for entry in current]
    matches = tenant_spec.find_tenant(entries, tenant)
    if verb == "add":
        if matches:
            raise AnsibleFilterError(
                f"tenant {tenant} already exists ({matches[0]['name']}); change it with playbooks/tenant-update.yml"
            )
        return [*entries, {"name": tenant, **fields}]
    if len(matches) != 1:
        raise AnsibleFilterError(tenant_spec.unknown_tenant(entries, tenant))
    if verb == "update" and not fields:
        known = f" (fields: {', '.join(known_fields)})" if known_fields else ""
        raise AnsibleFilterError(
            f"nothing to update for tenant {tenant}: give the fields to change, e.g. -e rpm_limit=120{known}"
        )
    changes = fields if verb == "update" else {"state": "absent"}
    return [{**e, **changes} if e is matches[0] else e for e in entries]


class FilterModule:
    """The lifecycle verbs' edit of the tenants list."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_tenants_edit": tenancy_tenants_edit}
