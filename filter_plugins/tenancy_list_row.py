"""One row of playbooks/tenants-list.yml: what the plan says about a tenant and what
runs on its host (playbooks/tasks/list_tenant.yml)."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_list_row
short_description: One tenants-list row from a plan record and what runs
version_added: "0.1.0"
description:
  - Combines a tenant's plan record with its containers (C(docker_container_info) of the
    engine, then the gateway), the engine's C(/metrics) text, the key file's content, its
    volume facts and the host's GPU facts.
  - C(requests_served) sums C(vllm:request_success_total) (null when the engine did not
    answer); C(key_fingerprint) is the first 8 hex digits of the key's SHA-256, never the
    key; C(gpu_memory_used_bytes) sums the NVML processes of the engine's container (null
    without NVML).
  - Malformed input raises C(AnsibleFilterError) without showing the key.
positional: _input, host, containers, metrics, key, volume, gpu_facts, certificate, now
options:
  _input:
    description: The tenant's plan record.
    type: dict
    required: true
  host:
    description: The inventory host.
    type: str
    required: true
  containers:
    description: The looped C(docker_container_info) results, engine first, then gateway.
    type: list
    elements: dict
    required: true
  metrics:
    description: Lines of the engine's C(/metrics) (empty when it did not answer).
    type: list
    elements: str
    default: []
  key:
    description: The content of the tenant's key file, or empty.
    type: str
    default: ""
  volume:
    description: The tenant's volume facts (tasks/volume_info.yml).
    type: dict
    default: {}
  gpu_facts:
    description: The host's C(tenancy_gpu_facts), or empty.
    type: dict
    default: {}
  certificate:
    description:
      - The gateway certificate installed on the host, as the C(tenancy_certificate) filter reads it,
        or empty when there is none. The row's C(tls) holds its names, its end and the whole days
        left (null without a certificate).
    type: dict
    default: {}
  now:
    description: The time C(days_left) counts from (Unix seconds); the filter's own clock when unset.
    type: float
"""

EXAMPLES = r"""
- name: Add the row
  ansible.builtin.set_fact:
    rows: "{{ rows + [record | tenancy_list_row(inventory_hostname, infos.results, metrics.stdout_lines, key)] }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The row (name, host, port, endpoint, model, mode, gpu, quota_bytes, uid, engine, gateway, ...).
  type: dict
"""


def _container(result: Mapping[str, Any]) -> dict[str, Any]:
    if not result.get("exists"):
        return {"state": "missing", "health": "missing", "started_at": None}
    state = result["container"]["State"]
    return {
        "state": state["Status"],
        "health": (state.get("Health") or {}).get("Status", "none"),
        "started_at": state.get("StartedAt"),
    }


def requests_served(lines: Sequence[str]) -> int | None:
    total, seen = 0.0, False
    for line in lines:
        if line.startswith("vllm:request_success_total"):
            total += float(line.split()[-1])
            seen = True
    return int(total) if seen else None


def tenancy_list_row(
    record: Any,
    host: str,
    containers: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    key: str | None = "",
    volume: Mapping[str, Any] | None = None,
    gpu_facts: Mapping[str, Any] | None = None,
    certificate: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    if not isinstance(record, Mapping) or "name" not in record:
        raise AnsibleFilterError("tenancy_list_row: expected a plan record")
    if len(containers) != 2:
        raise AnsibleFilterError(
            f"tenancy_list_row: tenant {record['name']!r}: expected the engine's and the gateway's info"
        )
    engine, gateway = containers
    gpu_facts = gpu_facts or {}
    used = None
    if engine.get("exists") and gpu_facts.get("available"):
        engine_id = engine["container"]["Id"]
        processes = [p for gpu in gpu_facts.get("gpus", []) for p in gpu.get("processes", [])]
        used = sum(p["used_memory"] for p in processes if p.get("container_id") == engine_id)
    key = (key or "").strip()
    return {
        "name": record["name"],
        "host": host,
        "port": record.get("port"),
        "endpoint": record.get("endpoint"),
        "model": record.get("served_model_name"),
        "mode": record.get("mode"),
        "gpu": record.get("gpu"),
        "quota_bytes": record.get("memory_bytes"),
        "gpu_memory_utilization": record.get("gpu_memory_utilization"),
        "cpuset": record.get("cpuset"),
        "metrics_port": record.get("metrics_port"),
        "uid": record.get("uid"),
        "engine": _container(engine),
        "gateway": _container(gateway),
        "requests_served": requests_served(metrics or []),
        "key_fingerprint": hashlib.sha256(key.encode()).hexdigest()[:8] if key else None,
        "volume": dict(volume or {}),
        "gpu_memory_used_bytes": used,
        "tls": tls_summary(certificate or {}, time.time() if now is None else now),
    }


def tls_summary(certificate: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """Names, end and whole days left of the gateway's certificate (None without one)."""
    if not certificate.get("not_after"):
        return None
    ends = int(certificate["not_after"])
    return {
        "names": list(certificate.get("names") or []),
        "not_after": datetime.fromtimestamp(ends, tz=UTC).isoformat(),
        "days_left": math.floor((ends - now) / 86400),
    }


class FilterModule:
    """Tenancy list row filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_list_row": tenancy_list_row}
