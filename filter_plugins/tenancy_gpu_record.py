"""What the GPU exporter (roles/monitoring/files/tenancy_gpu_exporter.py) needs to know
of one GPU tenant (roles/tenant/tasks/gpu_record.yml writes it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_gpu_record
short_description: The GPU exporter's record of one GPU tenant
version_added: "0.1.0"
description:
  - From a tenant's plan record and its engine container's id, the record the GPU
    exporter reads - tenant, engine_id, gpu, mode, quota_bytes and, in MIG mode, the MIG
    device's UUID (from C(nvidia_mig_devices)) - so it can charge each GPU process to its
    tenant through the process's container.
  - A CPU tenant, an empty container id, or a MIG tenant without a MIG device raise
    C(AnsibleFilterError) naming the tenant.
positional: _input, engine_id, mig_devices
options:
  _input:
    description: The tenant's plan record (C(tenancy_plan)).
    type: dict
    required: true
  engine_id:
    description: The engine container's full id.
    type: str
    required: true
  mig_devices:
    description: Tenant name to MIG device UUID (C(nvidia_mig_devices)); needed in MIG mode only.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Record the engine for the GPU exporter
  ansible.builtin.copy:
    dest: "{{ tenant_plan.names.gpu_record }}"
    content: "{{ tenant_plan | tenancy_gpu_record(engine.container.Id, nvidia_mig_devices) | to_nice_json }}"
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The record, as tenancy_gpu_exporter.load_tenants reads it.
  type: dict
"""


def tenancy_gpu_record(record: Mapping[str, Any], engine_id: str, mig_devices: Mapping[str, str] | None = None) -> dict:
    name = record.get("name") if isinstance(record, Mapping) else None
    if not name:
        raise AnsibleFilterError("tenancy_gpu_record: expected a tenant's plan record")
    if not isinstance(record.get("gpu"), int) or record.get("mode") not in ("shared", "mps", "mig"):
        raise AnsibleFilterError(
            f"tenancy_gpu_record: tenant {name!r} is not a GPU tenant (mode {record.get('mode')!r})"
        )
    if not engine_id or not isinstance(engine_id, str):
        raise AnsibleFilterError(f"tenancy_gpu_record: tenant {name!r}: no engine container id")
    mig_uuid = None
    if record["mode"] == "mig":
        mig_uuid = (mig_devices or {}).get(name)
        if not mig_uuid:
            raise AnsibleFilterError(f"tenancy_gpu_record: tenant {name!r} is a MIG tenant without a MIG device")
    return {
        "tenant": name,
        "engine_id": engine_id,
        "gpu": record["gpu"],
        "mode": record["mode"],
        "quota_bytes": record["memory_bytes"],
        "mig_uuid": mig_uuid,
    }


class FilterModule:
    """The GPU exporter's tenant record."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_gpu_record": tenancy_gpu_record}
