"""MIG profiles and placement: give each tenant the smallest profile that fits, on a
legal start slice, placing as many tenants as possible.

Placement rules come from NVIDIA's MIG user guide ("Supported MIG Profiles", the
placement tables of A100 and H100) and mig-parted's built-in configs: a GPU has 8 memory
slices and 7 compute slices; a profile occupies `size` memory slices starting at one of
its legal start slices, and instances on one GPU may not overlap.

| A100/H100 80GB | A100 40GB | H200 141GB | starts (memory slice) : size |
|---|---|---|---|
| 1g.10gb | 1g.5gb  | 1g.18gb  | 0,1,2,3,4,5,6 : 1 |
| 1g.20gb | 1g.10gb | 1g.35gb  | 0,2,4,6 : 2 |
| 2g.20gb | 2g.10gb | 2g.35gb  | 0,2,4 : 2 |
| 3g.40gb | 3g.20gb | 3g.71gb  | 0,4 : 4 |
| 4g.40gb | 4g.20gb | 4g.71gb  | 0 : 4 |
| 7g.80gb | 7g.40gb | 7g.141gb | 0 : 8 |

The usable memory of each profile is what `nvidia-smi mig -lgip` reports (see _TABLES).

Why smallest-first is optimal on one GPU: in the order above every profile can start
wherever any larger one can and occupies a subset of its slices, so in any feasible set
of k instances each one can be swapped for a smaller profile in place. Hence if any k
tenants fit, the k tenants with the smallest profiles fit; placing tenants smallest
first and checking each addition exactly (backtracking over start slices) places the
maximum number. A property test compares this with brute force.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GIB = 1024**3


MEMORY_SLICES = 8


COMPUTE_SLICES = 7


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


# Per GPU family: the NVML name marker, the nominal size in GiB (to tell 40 from 80 GB),
# and each profile of _LAYOUT as (name, usable GiB). Usable GiB is the "Memory GiB"
# column of `nvidia-smi mig -lgip` on that GPU (profiles with the same memory slices
# report the same figure), not the nominal size. Where listings disagree (drivers
# differ), the smallest figure wins: overstating a slice is what breaks a quota. Sources
# (found 2026-12-01 by searching public repositories for -lgip listings; none of these
# GPUs has been at hand, so every figure but the H200's is someone else's reading):
# - A100-SXM4-80GB: two independent full -lgip listings (an EKS GPU-sharing write-up and
#   a Chinese MIG set-up note, GPU 7 of an 8-GPU node) agree: 1g.10gb 9.50,
#   1g.20gb/2g.20gb 19.50, 3g.40gb/4g.40gb 39.25, 7g.80gb 79.00.
# - A100-SXM4-40GB: three full listings (a Kubernetes GPU-sharing blog post with the
#   listing before and after creating instances, and two set-up notes) give 1g.5gb 4.75,
#   1g.10gb/2g.10gb 9.75, 3g.20gb/4g.20gb 19.62, 7g.40gb 39.38; a fourth (a test fixture
#   of a public tool) gives 39.50 for 7g.40gb, probably another driver, so 39.38.
# - H100 80GB HBM3: -lgip in https://jbarrow.ai/field_notes/nvidia-mig/ (1g.10gb 9.75,
#   1g.20gb/2g.20gb 19.62, 3g.40gb 39.50), and two listings in public set-up guides of an
#   SXM5 (132 SMs) and a PCIe card (114 SMs) that agree and add 4g.40gb 39.50, 7g.80gb 79.25.
# - H200 141GB (NVIDIA H200, driver 580.159.04): `nvidia-smi mig -lgip` read by
#   `make device-check` on 2026-11-30 (tests/unit/fixtures/mig/H200-141GB.txt; the
#   listing is there with MIG mode off too): 1g.18gb 16.00, 1g.35gb/2g.35gb 32.50,
#   3g.71gb/4g.71gb 69.75, 7g.141gb 140.00.
# tests/unit/fixtures/mig/*.txt may hold -lgip output read on a GPU; a unit test checks
# the table against every such file.
_TABLES: dict[str, tuple[str, int, tuple[tuple[str, float], ...]]] = {
    "A100-40GB": (
        "A100",
        40,
        (
            ("1g.5gb", 4.75),
            ("1g.10gb", 9.75),
            ("2g.10gb", 9.75),
            ("3g.20gb", 19.62),
            ("4g.20gb", 19.62),
            ("7g.40gb", 39.38),
        ),
    ),
    "A100-80GB": (
        "A100",
        80,
        (
            ("1g.10gb", 9.50),
            ("1g.20gb", 19.50),
            ("2g.20gb", 19.50),
            ("3g.40gb", 39.25),
            ("4g.40gb", 39.25),
            ("7g.80gb", 79.00),
        ),
    ),
    "H100-80GB": (
        "H100",
        80,
        (
            ("1g.10gb", 9.75),
            ("1g.20gb", 19.62),
            ("2g.20gb", 19.62),
            ("3g.40gb", 39.50),
            ("4g.40gb", 39.50),
            ("7g.80gb", 79.25),
        ),
    ),
    "H200-141GB": (
        "H200",
        141,
        (
            ("1g.18gb", 16.00),
            ("1g.35gb", 32.50),
            ("2g.35gb", 32.50),
            ("3g.71gb", 69.75),
            ("4g.71gb", 69.75),
            ("7g.141gb", 140.00),
        ),
    ),
}


def family(gpu_name: str, memory_bytes: int) -> str | None:
    """Which MIG table applies to a GPU, from its NVML name and memory."""
    name = gpu_name.upper()
    total_gib = memory_bytes / GIB
    for key, (marker, nominal, _) in _TABLES.items():
        if marker in name and abs(total_gib - nominal) <= nominal * 0.1:
            return key
    return None


def known_tables() -> list[str]:
    """The GPUs with a MIG table, as their keys read ("A100-40GB", ...)."""
    return list(_TABLES)


def profiles(gpu_name: str, memory_bytes: int) -> list[Profile]:
    """The MIG profiles of a GPU, smallest first; [] if it has no known table."""
    key = family(gpu_name, memory_bytes)
    if key is None:
        return []
    named = _TABLES[key][2]
    return [
        Profile(name, compute, slices, starts, int(usable_gib * GIB))
        for (compute, slices, starts), (name, usable_gib) in zip(_LAYOUT, named, strict=True)
    ]


_LGIP_ROW = re.compile(r"^\|\s*\d+\s+MIG\s+(\d+g\.\d+gb)\s+\d+\s+\d+/\d+\s+([\d.]+)\s")


def parse_lgip(text: str) -> dict[str, float]:
    """Profile name -> usable GiB from `nvidia-smi mig -lgip` output (+me variants left out)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _LGIP_ROW.match(line.strip())
        if match:
            found.setdefault(match.group(1), float(match.group(2)))
    return found


def table(key: str) -> dict[str, float]:
    """Profile name -> usable GiB of one family of _TABLES."""
    return dict(_TABLES[key][2])


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
