"""The filter tenancy_mig; the MIG tables and placement are plugin_utils/mig.py."""

from __future__ import annotations

from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.mig import tenancy_mig

DOCUMENTATION = r"""
name: tenancy_mig
short_description: The MIG profiles of a GPU, and a legal placement of a list of profiles
version_added: "0.1.0"
description:
  - Given a GPU name and total memory, returns its MIG profiles (name, compute slices,
    memory slices, legal start slices, usable bytes), smallest first.
  - Used by tenancy_plan for GPUs whose mode is mig.
positional: _input, memory_bytes
options:
  _input:
    description: The GPU's name as NVML reports it, e.g. "NVIDIA A100-SXM4-80GB".
    type: str
    required: true
  memory_bytes:
    description: The GPU's total memory in bytes.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Show the MIG profiles of an A100 80GB
  ansible.builtin.debug:
    msg: "{{ 'NVIDIA A100-SXM4-80GB' | tenancy_mig(85899345920) }}"
"""

RETURN = r"""
_value:
  description: The profiles, smallest first; empty when the GPU has no known MIG table.
  type: list
  elements: dict
"""


class FilterModule:
    """MIG profile tables."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_mig": tenancy_mig}
