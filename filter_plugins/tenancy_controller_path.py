"""Where a report file named on the command line goes: relative to the directory
ansible-playbook was started in, as a user expects, not to the playbook's directory
(where Ansible runs a task delegated to the controller)."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_controller_path
short_description: A file path on the controller, relative to where ansible-playbook was started
version_added: "0.1.0"
description:
  - Returns O(_input) unchanged when it is absolute (after C(~) expansion), else joined to
    the directory the controller's ansible-playbook runs in (its current directory;
    ansible-playbook never changes it).
  - Without it, C(ansible.builtin.copy) delegated to the controller resolves a relative
    C(dest) against the playbook's directory, so C(-e usage_output=usage.csv) from the
    repository's root would land in C(playbooks/).
  - An empty or non-string path raises C(AnsibleFilterError).
positional: _input
options:
  _input:
    description: The path as the user gave it.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Write the plan as JSON
  ansible.builtin.copy:
    content: "{{ tenancy_plan | to_nice_json }}"
    dest: "{{ plan_output | tenancy_controller_path }}"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: An absolute path.
  type: str
"""


def tenancy_controller_path(path: Any) -> str:
    """The absolute path of ``path`` on the controller (see DOCUMENTATION)."""
    if not isinstance(path, str) or not path.strip():
        raise AnsibleFilterError(f"tenancy_controller_path: expected a file path, got {path!r}")
    return os.path.abspath(os.path.expanduser(path))


class FilterModule:
    """Controller file paths."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_controller_path": tenancy_controller_path}
