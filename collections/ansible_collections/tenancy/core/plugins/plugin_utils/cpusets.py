"""CPU sets for CPU engines: sticky, never promising one core to two tenants unless
the operator says so."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.common import field_error


def cpu_sets(
    tenants: list[dict[str, Any]],
    placed: Mapping[str, Any],
    hosts: Mapping[str, Mapping[str, Any]],
    oversubscribe: bool = False,
) -> tuple[dict[str, str], set[str]]:
    """CPU sets for the CPU-engine tenants of each host whose core count is known.

    Sticky: a tenant that already runs keeps its cores (hosts report them as
    ``tenancy_cpusets_in_use``), as long as it still asks for as many and nobody kept
    them first, so adding, changing or removing a tenant never moves (and so never
    restarts) another. New tenants take free cores in list order. A tenant with
    ``cpus: N`` gets N cores; tenants without share the host equally. A core promised
    to one tenant is never handed to another: with more demand than cores the plan
    fails, unless ``oversubscribe``, where tenants share the least used cores (spread
    out, but no longer isolated). Returns the cpusets and the tenants that share a core.
    """
    result: dict[str, str] = {}
    shared: set[str] = set()
    for host, facts in hosts.items():
        cores = int((facts or {}).get("tenancy_cpus") or 0)
        here = [t for t in tenants if t["host"] == host and placed[t["name"]] is None and t["state"] == "present"]
        if cores < 1 or not here:
            continue
        in_use = (facts or {}).get("tenancy_cpusets_in_use") or {}
        fixed = sum(t["cpus"] for t in here if t["cpus"])
        automatic = [t for t in here if not t["cpus"]]
        auto_size = max(1, (cores - fixed) // len(automatic)) if automatic else 0
        size = {t["name"]: min(t["cpus"] or auto_size, cores) for t in here}
        users = [0] * cores
        blocks: dict[str, list[int]] = {}
        pending = []
        for tenant in here:
            kept = parse_cpu_list(in_use.get(tenant["name"], ""), cores)
            if kept and len(kept) == size[tenant["name"]] and all(users[c] == 0 for c in kept):
                for core in kept:
                    users[core] += 1
                blocks[tenant["name"]] = kept
            else:
                pending.append(tenant)
        for tenant in pending:
            # Least used cores first, lowest numbers on ties: free cores while there are any.
            block = sorted(sorted(range(cores), key=lambda c: (users[c], c))[: size[tenant["name"]]])
            wanted = tenant["cpus"] or auto_size
            if not oversubscribe and (wanted > cores or any(users[c] for c in block)):
                holders = ", ".join(f"{name} {cpu_list(cores_)}" for name, cores_ in blocks.items())
                raise field_error(
                    tenant["name"],
                    "cpus",
                    tenant["cpus"] if tenant["cpus"] else f"{wanted} (automatic share)",
                    f"host {host} has {cores} core(s), {sum(1 for u in users if u)} promised "
                    f"({holders or 'none'}); a core promised to one tenant is never handed to another. "
                    "Lower cpus, remove a tenant, pin it to another host, or set tenancy_cpu_oversubscribe: true "
                    "to let tenants share cores (no longer isolated; the plan says SHARED)",
                )
            for core in block:
                users[core] += 1
            blocks[tenant["name"]] = block
        for name, block in blocks.items():
            result[name] = cpu_list(block)
            if any(users[c] > 1 for c in block):
                shared.add(name)
    return result, shared


def parse_cpu_list(text: str, cores: int) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5]; [] when empty or outside the host's cores."""
    result: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return []
        result.extend(range(int(first), int(last or first) + 1))
    return result if result and max(result) < cores else []


def cpu_list(cores: list[int]) -> str:
    """Render cores the way Docker's --cpuset-cpus and VLLM_CPU_OMP_THREADS_BIND read them: 0-3,6."""
    runs: list[list[int]] = []
    for core in sorted(set(cores)):
        if runs and core == runs[-1][1] + 1:
            runs[-1][1] = core
        else:
            runs.append([core, core])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
