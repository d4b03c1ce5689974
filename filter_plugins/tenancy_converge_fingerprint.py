"""The digest of everything the controller decides for one tenant: the tenant role's
fast path (tasks/converged.yml) compares it with the one its last full converge recorded
on the host (module tenancy_converge_stamp)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.schema import NOT_APPLIED

DOCUMENTATION = r"""
name: tenancy_converge_fingerprint
short_description: Digest of a tenant's plan record, the role's inputs and the code that converges it
version_added: "0.1.0"
description:
  - SHA-256 over the plan record (less the keys the tenant schema marks as not applied,
    C(sizing), the planner's account of numbers that are keys of their own), the role
    inputs (a mapping; the tenant role passes
    every option of its C(main) entry point but the vault passphrases, and the SHA-256 of
    the API key) and the content of every file under C(code_dirs) (the role itself, the
    filters and the shared planner code), skipping byte-code, Molecule scenarios and docs.
  - Any change to one of them changes the digest, and the tenant goes down the full
    converge once. Secrets stay out (a key enters only as its own digest), and the result
    is a digest.
positional: _input, inputs, code_dirs
options:
  _input:
    description: The tenant's plan record (tenancy_plan).
    type: dict
    required: true
  inputs:
    description: The role's inputs that shape the tenant (name to value).
    type: dict
    required: true
  code_dirs:
    description: Directories whose files are part of the digest.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Digest what the controller decided for this tenant
  ansible.builtin.set_fact:
    fingerprint: "{{ tenant_plan | tenancy_converge_fingerprint(inputs, [role_path]) }}"
"""

RETURN = r"""
_value:
  description: Hex SHA-256.
  type: str
"""

# Not code that converges a tenant: test scenarios, docs and byte-code.
SKIPPED_DIRS = {"__pycache__", "molecule", "tests"}
SKIPPED_SUFFIXES = (".md", ".pyc")


def code_digest(directories: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for directory in directories:
        if not os.path.isdir(directory):
            raise AnsibleFilterError(f"tenancy_converge_fingerprint: {directory} is not a directory")
        for top, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                if name.endswith(SKIPPED_SUFFIXES):
                    continue
                path = os.path.join(top, name)
                digest.update(os.path.relpath(path, directory).encode() + b"\0")
                with open(path, "rb") as handle:
                    digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def tenancy_converge_fingerprint(
    record: Mapping[str, Any], inputs: Mapping[str, Any], code_dirs: Sequence[str] = ()
) -> str:
    if not isinstance(record, Mapping) or "name" not in record:
        raise AnsibleFilterError("tenancy_converge_fingerprint: the input must be a tenancy_plan record")
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError(f"tenancy_converge_fingerprint: tenant {record['name']}: inputs must be a mapping")
    try:
        applied = {key: value for key, value in record.items() if key not in NOT_APPLIED}
        decided = json.dumps({"plan": applied, "inputs": inputs}, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"tenancy_converge_fingerprint: tenant {record['name']}: {exc}") from None
    return hashlib.sha256(decided.encode() + b"\0" + code_digest(list(code_dirs)).encode()).hexdigest()


class FilterModule:
    """Tenancy converge fingerprint filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_converge_fingerprint": tenancy_converge_fingerprint}
