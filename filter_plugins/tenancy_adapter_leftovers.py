"""What of a tenant's adapters directory the plan no longer has (roles/tenant/tasks/adapters.yml)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DOCUMENTATION = r"""
name: tenancy_adapter_leftovers
short_description: The paths under a tenant's adapters directory that its plan does not name
version_added: "0.1.0"
description:
  - Takes the paths C(ansible.builtin.find) reported under the tenant's adapters directory
    (recursive, any type) and the plan record's C(adapters), and returns what to delete - an
    adapter directory the plan no longer lists (once, not its files), a file an adapter no
    longer has, anything deeper than an adapter's own files.
  - Sorted, so a run deletes in the same order every time.
positional: _input, adapters_dir, adapters
options:
  _input:
    description: Paths under O(adapters_dir), as C(find) returned them.
    type: list
    elements: str
    required: true
  adapters_dir:
    description: The tenant's adapters directory on the host.
    type: str
    required: true
  adapters:
    description: The plan record's C(adapters) (C(name) and C(files), each with its C(name)).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Delete adapters and files the plan no longer has
  ansible.builtin.file:
    path: "{{ item }}"
    state: absent
  loop: "{{ found.files | map(attribute='path') | tenancy_adapter_leftovers(adapters_dir, tenant_plan.adapters) }}"
"""

RETURN = r"""
_value:
  description: Absolute paths to delete, top-most first within each adapter.
  type: list
  elements: str
"""


def tenancy_adapter_leftovers(
    paths: Sequence[str], adapters_dir: str, adapters: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The paths to delete: see DOCUMENTATION."""
    root = adapters_dir.rstrip("/")
    wanted = {a["name"]: {f["name"] for f in a.get("files", [])} for a in adapters}
    leftovers = set()
    for path in paths:
        relative = path[len(root) + 1 :].split("/") if path.startswith(root + "/") else None
        if not relative or not relative[0]:
            continue
        adapter = relative[0]
        if adapter not in wanted:
            leftovers.add(f"{root}/{adapter}")
        elif len(relative) == 2 and relative[1] not in wanted[adapter]:
            leftovers.add(path)
        elif len(relative) > 2:
            leftovers.add(f"{root}/{adapter}/{relative[1]}")
    return sorted(leftovers)


class FilterModule:
    """The adapters' clean-up."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_adapter_leftovers": tenancy_adapter_leftovers}
