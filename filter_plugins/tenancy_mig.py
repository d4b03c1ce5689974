"""MIG profiles and placement: give each tenant the smallest profile that fits, on a
legal start slice, placing as many tenants as possible.

Placement rules come from NVIDIA's MIG user guide ("Supported MIG Profiles", the
placement tables of A100 and H100) and mig-parted's built-in configs: a GPU has 8 memory
slices and 7 compute slices; a profile occupies `size` memory slices starting at one of
its legal start slices, and instances on one GPU may not overlap.

| A100/H100 80GB | A100 40GB | starts (memory slice) : size |
|---|---|---|
| 1g.10gb | 1g.5gb  | 0,1,2,3,4,5,6 : 1 |
| 1g.20gb | 1g.10gb | 0,2,4,6 : 2 |
| 2g.20gb | 2g.10gb | 0,2,4 : 2 |
| 3g.40gb | 3g.20gb | 0,4 : 4 |
| 4g.40gb | 4g.20gb | 0 : 4 |
| 7g.80gb | 7g.40gb | 0 : 8 |

Why smallest-first is optimal on one GPU: in the order above every profile can start
wherever any larger one can and occupies a subset of its slices, so in any feasible set
of k instances each one can be swapped for a smaller profile in place. Hence if any k
tenants fit, the k tenants with the smallest profiles fit; placing tenants smallest
first and checking each addition exactly (backtracking over start slices) places the
maximum number. A property test compares this with brute force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

GIB = 1024**3
MEMORY_SLICES = 8
COMPUTE_SLICES = 7
# A MIG instance reports a little less than its nominal slices (1g.10gb shows about
# 9.5 GiB): the planner counts every instance as nominal size minus this.
INSTANCE_OVERHEAD_BYTES = GIB // 2


@dataclass(frozen=True)
class Profile:
    name: str
    compute: int
    slices: int
    starts: tuple[int, ...]
    memory_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "compute": self.compute,
            "slices": self.slices,
            "starts": list(self.starts),
            "memory_bytes": self.memory_bytes,
        }


# (compute slices, memory slices, legal starts), smallest first: the order that makes
# smallest-first placement optimal (see the module docstring).
_LAYOUT = (
    (1, 1, (0, 1, 2, 3, 4, 5, 6)),
    (1, 2, (0, 2, 4, 6)),
    (2, 2, (0, 2, 4)),
    (3, 4, (0, 4)),
    (4, 4, (0,)),
    (7, 8, (0,)),
)

# GPU families with this layout, and the nominal memory of one memory slice.
_FAMILIES = {
    "A100-80GB": ("A100", 80),
    "H100-80GB": ("H100", 80),
    "A100-40GB": ("A100", 40),
}


def family(gpu_name: str, memory_bytes: int) -> str | None:
    """Which MIG table applies to a GPU, from its NVML name and memory."""
    name = gpu_name.upper()
    total_gib = memory_bytes / GIB
    for key, (marker, nominal) in _FAMILIES.items():
        if marker in name and abs(total_gib - nominal) <= nominal * 0.1:
            return key
    return None


def profiles(gpu_name: str, memory_bytes: int) -> list[Profile]:
    """The MIG profiles of a GPU, smallest first; [] if it has no known table."""
    key = family(gpu_name, memory_bytes)
    if key is None:
        return []
    nominal_gib = _FAMILIES[key][1]
    slice_gib = nominal_gib // MEMORY_SLICES
    result = []
    for compute, slices, starts in _LAYOUT:
        # The 1-compute, 2-slice profile is named after its memory (1g.20gb on 80 GB).
        name = f"{compute}g.{slice_gib * slices}gb"
        result.append(Profile(name, compute, slices, starts, slices * slice_gib * GIB - INSTANCE_OVERHEAD_BYTES))
    return result


def smallest_fitting(available: Sequence[Profile], needed_bytes: int) -> Profile | None:
    for profile in available:
        if profile.memory_bytes >= needed_bytes:
            return profile
    return None


def place(instances: Sequence[Profile]) -> list[int] | None:
    """Start slices for `instances` on one empty GPU (same order), or None if they cannot all fit."""
    if sum(p.compute for p in instances) > COMPUTE_SLICES or sum(p.slices for p in instances) > MEMORY_SLICES:
        return None
    # Largest first prunes the search; the answer is mapped back to the input order.
    order = sorted(range(len(instances)), key=lambda i: (-instances[i].slices, -instances[i].compute, i))
    used = [False] * MEMORY_SLICES
    starts: dict[int, int] = {}

    def search(position: int) -> bool:
        if position == len(order):
            return True
        index = order[position]
        profile = instances[index]
        for start in profile.starts:
            span = range(start, start + profile.slices)
            if any(used[s] for s in span):
                continue
            for s in span:
                used[s] = True
            starts[index] = start
            if search(position + 1):
                return True
            for s in span:
                used[s] = False
        return False

    return [starts[i] for i in range(len(instances))] if search(0) else None


def is_legal(layout: Iterable[tuple[Profile, int]]) -> bool:
    """True when every instance starts on a legal slice and none overlap."""
    used: set[int] = set()
    compute = 0
    for profile, start in layout:
        span = set(range(start, start + profile.slices))
        if start not in profile.starts or span & used or max(span) >= MEMORY_SLICES:
            return False
        used |= span
        compute += profile.compute
    return compute <= COMPUTE_SLICES


def tenancy_mig(gpu_name: str, memory_bytes: int) -> list[dict[str, Any]]:
    """Filter form of `profiles`: plain dicts for templates and debug output."""
    return [p.as_dict() for p in profiles(gpu_name, int(memory_bytes))]


def profile_by_name(available: Sequence[Profile], name: str) -> Profile | None:
    return next((p for p in available if p.name == name), None)


def describe(layout: Mapping[str, tuple[Profile, int]]) -> str:
    """'companyA 1g.10gb@0, companyB 3g.40gb@4' for error messages."""
    if not layout:
        return "empty"
    return ", ".join(f"{name} {profile.name}@{start}" for name, (profile, start) in sorted(layout.items()))


class FilterModule:
    """MIG profile tables."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_mig": tenancy_mig}
