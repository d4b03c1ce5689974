"""Compare a host's MIG instances (``nvidia-smi mig -lgi`` / ``-lci``) with the plan.

The nvidia_mig role runs nvidia-smi and hands its text to this filter, which decides
what to create and what is in the way, and maps each tenant to its MIG device UUID
(from the tenancy_gpu_facts module). All logic is here, in plain functions, so it is
unit-tested on sample outputs without a GPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import mig

DOCUMENTATION = r"""
name: tenancy_mig_state
short_description: What the nvidia_mig role must do to make a host's MIG instances match the plan
version_added: "0.1.0"
description:
  - Parses the tables of C(nvidia-smi mig -lgi) and C(nvidia-smi mig -lci) and compares the
    GPU instances found with the plan's MIG tenants of one host (GPU, profile, start slice).
  - A planned instance that exists (same GPU, profile and start) is kept; one that does not
    is to be created; an existing instance that is not planned and overlaps a planned one is
    a conflict; one that overlaps nothing is left alone.
  - Maps every planned tenant whose instance exists to its GPU instance id and, when the
    GPU facts list it, its MIG device UUID.
  - Malformed input raises C(AnsibleFilterError) naming it.
positional: _input, host, lgi, lci, gpus
options:
  _input:
    description: The plan (records of the tenancy_plan filter); only present C(mig) tenants of C(host) count.
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host whose instances are compared.
    type: str
    required: true
  lgi:
    description: Output of C(nvidia-smi mig -lgi); empty or "No GPU instances found" means none.
    type: str
    required: true
  lci:
    description: Output of C(nvidia-smi mig -lci); empty or "No compute instances found" means none.
    type: str
    required: true
  gpus:
    description: C(ansible_facts.tenancy_gpu_facts.gpus) of the host (name, memory, MIG devices, instance ids).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Compare the MIG instances with the plan
  ansible.builtin.set_fact:
    mig_state: >-
      {{ tenancy_plan | tenancy_mig_state(inventory_hostname, lgi.stdout, lci.stdout,
                                          ansible_facts['tenancy_gpu_facts']['gpus']) }}
"""

RETURN = r"""
_value:
  description: What to do, per GPU instance.
  type: dict
  contains:
    gpus: {description: Indexes of the GPUs that carry planned MIG tenants, type: list}
    instances: {description: Parsed GPU instances (gpu, gi, profile, profile_id, start, size, CIs), type: list}
    create: {description: Instances to create (tenant, gpu, profile, start), type: list}
    create_ci: {description: Planned instances that exist without a compute instance (tenant, gpu, gi), type: list}
    conflicts: {description: Unplanned instances overlapping a planned one (and which tenant), type: list}
    unplanned: {description: Unplanned instances in nobody's way, left alone, type: list}
    tenants: {description: Tenant name to gpu, gi, profile, start and uuid (null until NVML lists it), type: dict}
"""

# |   0  MIG 1g.10gb         19        9          2:1     |
_LGI_ROW = re.compile(r"^\|\s*(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|$")
# |   0      9       MIG 1g.10gb          0         0          0:1     |
_LCI_ROW = re.compile(r"^\|\s*(\d+)\s+(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|$")
_NONE_FOUND = re.compile(r"No (GPU|compute) instances found|No MIG-enabled devices found", re.IGNORECASE)


def _rows(text: Any, pattern: re.Pattern[str], what: str) -> list[tuple[str, ...]]:
    if not isinstance(text, str):
        raise AnsibleFilterError(f"tenancy_mig_state: {what} must be nvidia-smi's text, got {type(text).__name__}")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        match = pattern.match(line)
        if match:
            rows.append(match.groups())
        elif line.startswith("|") and "MIG" in line and not line.startswith("| GPU"):
            raise AnsibleFilterError(f"tenancy_mig_state: {what}: cannot read the row {line!r}")
    if not rows and text.strip() and not _NONE_FOUND.search(text) and "instances:" not in text:
        raise AnsibleFilterError(f"tenancy_mig_state: {what} is not an nvidia-smi mig table: {text.strip()[:200]!r}")
    return rows


def parse_lgi(text: Any) -> list[dict[str, Any]]:
    """GPU instances from ``nvidia-smi mig -lgi``."""
    return [
        {
            "gpu": int(gpu),
            "gi": int(gi),
            "profile": name,
            "profile_id": int(profile_id),
            "start": int(start),
            "size": int(size),
        }
        for gpu, name, profile_id, gi, start, size in _rows(text, _LGI_ROW, "lgi")
    ]


def parse_lci(text: Any) -> list[dict[str, Any]]:
    """Compute instances from ``nvidia-smi mig -lci``."""
    return [
        {"gpu": int(gpu), "gi": int(gi), "ci": int(ci), "profile": name}
        for gpu, gi, name, _profile_id, ci, _start, _size in _rows(text, _LCI_ROW, "lci")
    ]


def _planned(plan: Any, host: str) -> list[Mapping[str, Any]]:
    if not isinstance(plan, Sequence) or isinstance(plan, str):
        raise AnsibleFilterError("tenancy_mig_state: the plan must be a list of tenancy_plan records")
    planned = []
    for record in plan:
        if not isinstance(record, Mapping) or "name" not in record:
            raise AnsibleFilterError(f"tenancy_mig_state: plan entry {record!r} is not a tenancy_plan record")
        if record.get("host") != host or record.get("mode") != "mig" or record.get("state") != "present":
            continue
        if record.get("gpu") is None or not record.get("mig_profile") or record.get("mig_start") is None:
            raise AnsibleFilterError(
                f"tenancy_mig_state: tenant {record['name']!r} is planned for MIG without gpu, mig_profile, mig_start"
            )
        planned.append(record)
    return planned


def _profile_size(gpus: Mapping[int, Mapping[str, Any]], gpu: int, profile: str, tenant: str) -> int:
    facts = gpus.get(gpu)
    if facts is None:
        raise AnsibleFilterError(f"tenancy_mig_state: tenant {tenant!r} is planned on GPU {gpu}; NVML does not list it")
    known = mig.profiles(str(facts.get("name", "")), int(facts.get("memory_total", 0)))
    match = mig.profile_by_name(known, profile)
    if match is None:
        raise AnsibleFilterError(
            f"tenancy_mig_state: tenant {tenant!r}: profile {profile!r} is not a MIG profile of GPU {gpu} "
            f"({facts.get('name')}); known: {', '.join(p.name for p in known) or 'none'}"
        )
    return match.slices


def tenancy_mig_state(plan: Any, host: str, lgi: Any, lci: Any, gpus: Any) -> dict[str, Any]:
    """Compare the instances nvidia-smi reports with the plan's MIG tenants of ``host``."""
    if not isinstance(gpus, Sequence) or isinstance(gpus, str):
        raise AnsibleFilterError("tenancy_mig_state: gpus must be the list ansible_facts.tenancy_gpu_facts.gpus")
    by_index = {int(g["index"]): g for g in gpus}
    instances = parse_lgi(lgi)
    compute = parse_lci(lci)
    for instance in instances:
        instance["compute_instances"] = sorted(
            c["ci"] for c in compute if (c["gpu"], c["gi"]) == (instance["gpu"], instance["gi"])
        )

    planned = _planned(plan, host)
    result: dict[str, Any] = {
        "gpus": sorted({int(r["gpu"]) for r in planned}),
        "instances": instances,
        "create": [],
        "create_ci": [],
        "conflicts": [],
        "unplanned": [],
        "tenants": {},
    }
    claimed: set[tuple[int, int]] = set()
    spans: list[tuple[int, int, int, str]] = []  # gpu, first slice, end slice, tenant
    for record in sorted(planned, key=lambda r: (r["gpu"], r["mig_start"])):
        gpu, start, profile = int(record["gpu"]), int(record["mig_start"]), str(record["mig_profile"])
        size = _profile_size(by_index, gpu, profile, record["name"])
        spans.append((gpu, start, start + size, record["name"]))
        found = next(
            (i for i in instances if (i["gpu"], i["profile"], i["start"]) == (gpu, profile, start)),
            None,
        )
        if found is None:
            result["create"].append({"tenant": record["name"], "gpu": gpu, "profile": profile, "start": start})
            continue
        claimed.add((gpu, found["gi"]))
        if not found["compute_instances"]:
            result["create_ci"].append({"tenant": record["name"], "gpu": gpu, "gi": found["gi"]})
        uuid = next(
            (
                d["uuid"]
                for d in by_index.get(gpu, {}).get("mig_devices", [])
                if d.get("gpu_instance_id") == found["gi"]
            ),
            None,
        )
        result["tenants"][record["name"]] = {
            "gpu": gpu,
            "gi": found["gi"],
            "profile": profile,
            "start": start,
            "uuid": uuid,
        }

    for instance in instances:
        if (instance["gpu"], instance["gi"]) in claimed:
            continue
        first, end = instance["start"], instance["start"] + instance["size"]
        blocked = [t for gpu, s, e, t in spans if gpu == instance["gpu"] and s < end and first < e]
        if blocked:
            result["conflicts"].append({**instance, "tenant": blocked[0]})
        else:
            result["unplanned"].append(instance)
    return result


class FilterModule:
    """MIG state of a host against the plan."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_mig_state": tenancy_mig_state}
