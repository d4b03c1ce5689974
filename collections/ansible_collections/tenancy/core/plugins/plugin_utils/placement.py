"""The planner's placement stage: a host, a GPU and a MIG slice for every tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import mig
from ansible_collections.tenancy.core.plugins.plugin_utils.common import GIB, field_error, format_bytes, parse_size

# GPU memory kept out of every GPU's quotas (they sum to at most total - reserve): what
# the driver holds for itself, which NVML counts in the total and as used on an idle GPU
# while CUDA never hands it out (615 MiB on an H200, make device-check), and an MPS
# server's own memory. Each engine's CUDA context is inside its quota
# (sizing.CONTEXT_BYTES).
GPU_RESERVE_BYTES = 1 * GIB

GPU_MODES = ("shared", "mps", "mig")


def parse_gpus(host: str, facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Normalise a host's ``tenancy_gpus`` list: index, name, memory_bytes, mode, MIG profiles."""
    gpus = []
    for entry in facts.get("tenancy_gpus") or []:
        label = f"{host} gpu {entry.get('index', '?')}"
        if not isinstance(entry.get("index"), int) or isinstance(entry.get("index"), bool) or entry["index"] < 0:
            raise AnsibleFilterError(
                f"tenancy_gpus of host {host!r}: index {entry.get('index')!r} is not an integer >= 0"
            )
        mode = entry.get("mode", "shared")
        if mode not in GPU_MODES:
            raise AnsibleFilterError(f"tenancy_gpus of {label}: mode {mode!r} must be one of {', '.join(GPU_MODES)}")
        gpu = {
            "host": host,
            "index": entry["index"],
            "name": str(entry.get("name", "GPU")),
            "memory_bytes": parse_size(entry.get("memory"), label, "memory"),
            "mode": mode,
            "profiles": [],
        }
        if mode == "mig":
            if entry.get("mig") is False:
                raise AnsibleFilterError(f"tenancy_gpus of {label}: mode 'mig' needs a MIG-capable GPU (mig: false)")
            gpu["profiles"] = mig.profiles(gpu["name"], gpu["memory_bytes"])
            if not gpu["profiles"]:
                raise AnsibleFilterError(
                    f"tenancy_gpus of {label}: no MIG profile table for {gpu['name']!r} with "
                    f"{format_bytes(gpu['memory_bytes'])}; known: {', '.join(mig.known_tables())}"
                )
        gpus.append(gpu)
    return gpus


Slot = tuple[str, int]


class Placement:
    """What is left on each GPU while tenants are being placed."""

    def __init__(self, gpus: list[dict[str, Any]], host_names: list[str]) -> None:
        self.gpus = {(g["host"], g["index"]): g for g in gpus}
        self.free = {slot: g["memory_bytes"] - GPU_RESERVE_BYTES for slot, g in self.gpus.items() if g["mode"] != "mig"}
        self.mig: dict[Slot, dict[str, mig.Profile]] = {slot: {} for slot, g in self.gpus.items() if g["mode"] == "mig"}
        self.load = dict.fromkeys(host_names, 0)
        self.placed: dict[str, dict[str, Any] | None] = {}
        self.unplaced: dict[str, str] = {}

    def take_cpu(self, tenant: dict[str, Any], host: str) -> None:
        tenant["host"], self.placed[tenant["name"]] = host, None
        self.load[host] += 1

    def take_shared(self, tenant: dict[str, Any], slot: Slot) -> None:
        self.free[slot] -= tenant["gpu_memory"]
        tenant["host"], self.placed[tenant["name"]] = slot[0], self.gpus[slot]
        self.load[slot[0]] += 1

    def best_fit(self, tenant: dict[str, Any], slots: list[Slot]) -> Slot | None:
        fits = [slot for slot in slots if self.free[slot] >= tenant["gpu_memory"]]
        return min(fits, key=lambda slot: (self.free[slot], slot)) if fits else None

    def try_mig(self, tenant: dict[str, Any], slot: Slot) -> str | None:
        """Add the tenant's profile to a MIG GPU if it still fits; else say why not."""
        gpu = self.gpus[slot]
        if tenant["mig_profile"]:
            profile = mig.profile_by_name(gpu["profiles"], tenant["mig_profile"])
            if profile is None:
                names = [p.name for p in gpu["profiles"]]
                raise field_error(
                    tenant["name"], "mig_profile", tenant["mig_profile"], f"is not a profile of {gpu['name']}: {names}"
                )
            if profile.memory_bytes < tenant["gpu_memory"]:
                raise field_error(
                    tenant["name"],
                    "mig_profile",
                    tenant["mig_profile"],
                    f"holds {format_bytes(profile.memory_bytes)}, "
                    f"less than gpu_memory {format_bytes(tenant['gpu_memory'])}",
                )
        else:
            profile = mig.smallest_fitting(gpu["profiles"], tenant["gpu_memory"])
            if profile is None:
                largest = gpu["profiles"][-1]
                return (
                    f"{format_bytes(tenant['gpu_memory'])} is more than the largest MIG profile "
                    f"{largest.name} ({format_bytes(largest.memory_bytes)})"
                )
        layout = self.mig[slot]
        if mig.place([*layout.values(), profile]) is None:
            return f"no legal start slice left for {profile.name}"
        layout[tenant["name"]] = profile
        tenant["host"], self.placed[tenant["name"]] = slot[0], gpu
        self.load[slot[0]] += 1
        return None

    def place_mig(self, tenant: dict[str, Any], slots: list[Slot]) -> None:
        """First fit over `slots`; record why not when no GPU has room."""
        reasons: dict[str, list[Slot]] = {}
        for slot in slots:
            reason = self.try_mig(tenant, slot)
            if reason is None:
                return
            reasons.setdefault(reason, []).append(slot)
        self.unplaced[tenant["name"]] = "; ".join(
            f"{reason} on {self._describe_slots(where)}" for reason, where in reasons.items()
        )

    def _describe_slots(self, slots: list[Slot], shown: int = 3) -> str:
        """'g1 gpu 0 (a 1g.10gb@0, ...)' for the first few GPUs, then a count."""
        parts = []
        for slot in slots[:shown]:
            layout = self.mig[slot]
            starts = mig.place(list(layout.values())) or []
            taken = dict(zip(layout, zip(layout.values(), starts, strict=True), strict=True))
            parts.append(f"{slot[0]} gpu {slot[1]} ({mig.describe(taken)})")
        if len(slots) > shown:
            parts.append(f"and {len(slots) - shown} more GPUs")
        return ", ".join(parts)

    def mig_starts(self) -> dict[str, tuple[mig.Profile, int]]:
        result = {}
        for layout in self.mig.values():
            starts = mig.place(list(layout.values())) or []
            result.update(
                {name: (profile, start) for (name, profile), start in zip(layout.items(), starts, strict=True)}
            )
        return result


PLACEMENTS = ("spread", "pack")


def running_hosts(tenants: list[dict[str, Any]], hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Where each tenant's engine already exists (hosts report ``tenancy_tenants_running``).

    A tenant keeps that host: its data volume and its API key's gateway are there, and
    moving it would lose them. Pinning it elsewhere is an error naming both hosts."""
    where: dict[str, str] = {}
    for host in sorted(hosts):
        for name in (hosts.get(host) or {}).get("tenancy_tenants_running") or []:
            where.setdefault(str(name), host)
    for tenant in tenants:
        current = where.get(tenant["name"])
        if tenant["state"] == "present" and current and tenant["host"] not in (None, current):
            raise field_error(
                tenant["name"],
                "host",
                tenant["host"],
                f"the tenant runs on {current}, and its data volume is there; moving a tenant between hosts "
                f"is not supported. Remove it (playbooks/tenant-remove.yml) and add it again with host "
                f"{tenant['host']}, or pin it to {current}",
            )
    return where


def place(
    tenants: list[dict[str, Any]], hosts: Mapping[str, Mapping[str, Any]], placement: str = "spread"
) -> Placement:
    """Choose a host (and a GPU, and a MIG slice) for each tenant.

    - Pinned tenants go where they are pinned; a tenant that already runs on a host is
      pinned there (see running_hosts).
    - Unpinned tenants go to shared/MPS GPUs largest quota first. ``pack``: each onto the
      GPU with the least room that still fits it, over all hosts (best-fit decreasing).
      ``spread``: onto the host with the fewest tenants that has a GPU it fits on (ties:
      the most free GPU memory, then the name), best-fit on that host's GPUs.
    - What fits no shared GPU, and every tenant when the GPUs are all MIG, goes to MIG
      GPUs smallest first, onto the first GPU where its smallest fitting profile still
      has a legal start slice (``spread`` tries the least loaded hosts first).
    - With no GPU in the inventory, tenants go to a CPU host: ``spread`` the one with the
      fewest tenants, ``pack`` the one with the fewest free cores that still has the
      tenant's ``cpus`` (else the one with the fewest tenants).
    Ties break on names and indexes, so the same input always gives the same plan.
    """
    if placement not in PLACEMENTS:
        raise AnsibleFilterError(f"tenancy_placement: {placement!r} is not one of {', '.join(PLACEMENTS)}")
    running = running_hosts(tenants, hosts)
    for tenant in tenants:
        # A running tenant stays where it runs, and one being removed is removed there.
        if tenant["name"] in running and (tenant["host"] is None or tenant["state"] == "absent"):
            tenant["host"] = running[tenant["name"]]
    host_names = sorted(hosts) or ["localhost"]
    gpus = [gpu for host in host_names for gpu in parse_gpus(host, hosts.get(host) or {})]
    state = Placement(gpus, host_names)
    shared_slots = sorted(state.free)
    mig_slots = sorted(state.mig)
    mig_queue: list[dict[str, Any]] = []

    # Absent tenants are being removed: they take no capacity, and their removal runs on
    # every host (or on the pinned one), wherever they used to be.
    for tenant in (t for t in tenants if t["state"] == "absent"):
        state.placed[tenant["name"]] = None
    active = [t for t in tenants if t["state"] != "absent"]

    for tenant in (t for t in active if t["host"] is not None):
        if tenant["host"] not in state.load:
            raise field_error(tenant["name"], "host", tenant["host"], f"is not a tenancy host; hosts are {host_names}")
        host_slots = sorted(slot for slot in state.gpus if slot[0] == tenant["host"])
        if tenant["gpu_pin"] is not None:
            if not host_slots:
                raise field_error(tenant["name"], "gpu", tenant["gpu_pin"], f"host {tenant['host']} has no GPU")
            if (tenant["host"], tenant["gpu_pin"]) not in state.gpus:
                indexes = [slot[1] for slot in host_slots]
                raise field_error(
                    tenant["name"], "gpu", tenant["gpu_pin"], f"is not a GPU of {tenant['host']}; it has {indexes}"
                )
            host_slots = [(tenant["host"], tenant["gpu_pin"])]
        if not host_slots:
            state.take_cpu(tenant, tenant["host"])
            continue
        shared_here = [slot for slot in host_slots if slot in state.free]
        if shared_here:
            slot = state.best_fit(tenant, shared_here)
            if slot is None:
                raise over_quota(tenant, shared_here, state, tenants)
            state.take_shared(tenant, slot)
        else:
            state.place_mig(tenant, host_slots)

    unpinned = [t for t in active if t["host"] is None]
    if not state.gpus:
        for tenant in sorted(unpinned, key=lambda t: t["name"].lower()):
            state.take_cpu(tenant, cpu_host(tenant, host_names, hosts, state, tenants, placement))
        return state
    for tenant in sorted(unpinned, key=lambda t: (-t["gpu_memory"], t["name"].lower())):
        slot = state.best_fit(tenant, spread_order(shared_slots, state, tenant, placement)) if shared_slots else None
        if slot is not None:
            state.take_shared(tenant, slot)
        elif mig_slots:
            mig_queue.append(tenant)
        else:
            raise over_quota(tenant, shared_slots, state, tenants)
    for tenant in sorted(mig_queue, key=lambda t: (t["gpu_memory"], t["name"].lower())):
        order = mig_slots
        if placement == "spread":
            order = sorted(mig_slots, key=lambda slot: (state.load[slot[0]], slot))
        state.place_mig(tenant, order)
    return state


def spread_order(slots: list[Slot], state: Placement, tenant: dict[str, Any], placement: str) -> list[Slot]:
    """The GPUs best-fit may choose from: all of them (pack), or those of the least loaded
    host that has one the tenant fits on (spread)."""
    if placement == "pack":
        return slots
    fitting = [slot for slot in slots if state.free[slot] >= tenant["gpu_memory"]]
    if not fitting:
        return slots
    hosts = sorted({slot[0] for slot in fitting})
    free = {h: sum(state.free[slot] for slot in fitting if slot[0] == h) for h in hosts}
    chosen = min(hosts, key=lambda h: (state.load[h], -free[h], h))
    return [slot for slot in fitting if slot[0] == chosen]


def cpu_host(
    tenant: dict[str, Any],
    host_names: list[str],
    hosts: Mapping[str, Mapping[str, Any]],
    state: Placement,
    tenants: list[dict[str, Any]],
    placement: str,
) -> str:
    """The CPU host for an unpinned tenant (see place)."""
    least_loaded = min(host_names, key=lambda h: (state.load[h], h))
    if placement == "spread":
        return least_loaded
    free: dict[str, int] = {}
    for host in host_names:
        cores = int((hosts.get(host) or {}).get("tenancy_cpus") or 0)
        taken = sum(t["cpus"] or 1 for t in tenants if t["host"] == host and t["state"] == "present")
        if cores and cores - taken >= (tenant["cpus"] or 1):
            free[host] = cores - taken
    return min(free, key=lambda h: (free[h], h)) if free else least_loaded


def over_quota(tenant: dict[str, Any], slots: list[Slot], state: Placement, tenants: list[dict[str, Any]]):
    """The error for a tenant that fits no GPU: list each GPU's tenants and totals."""
    lines = []
    for slot in slots:
        gpu = state.gpus[slot]
        there = [t for t in tenants if state.placed.get(t["name"]) is gpu]
        used = sum(t["gpu_memory"] for t in there)
        names = ", ".join(f"{t['name']} {format_bytes(t['gpu_memory'])}" for t in there) or "no tenants"
        lines.append(
            f"{slot[0]} gpu {slot[1]} ({gpu['name']}, usable {format_bytes(gpu['memory_bytes'] - GPU_RESERVE_BYTES)}"
            f" after the {format_bytes(GPU_RESERVE_BYTES)} per-GPU reserve):"
            f" {names}, {format_bytes(used)} taken"
        )
    return field_error(
        tenant["name"],
        "gpu_memory",
        format_bytes(tenant["gpu_memory"]),
        f"{format_bytes(tenant['gpu_memory'])} fits on no GPU; " + "; ".join(lines),
    )
