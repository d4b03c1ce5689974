"""Render a tenancy plan as a table for people (plan.yml prints it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils import sizing
from ansible_collections.tenancy.core.plugins.plugin_utils.common import format_bytes
from ansible_collections.tenancy.core.plugins.plugin_utils.placement import GPU_RESERVE_BYTES

DOCUMENTATION = r"""
name: tenancy_plan_table
short_description: Render a tenancy plan as aligned text lines
version_added: "0.1.0"
description:
  - Takes the output of the tenancy_plan filter and returns a header line and one line
    per tenant (name, state, host, endpoint, model, images per prompt (- for text only),
    context length, mode, quota, GPU fraction, KV cache, RAM limit, pinned cores, SHARED
    when they are shared with another tenant).
  - Then, for each GPU tenant whose model the planner sizes, what its quota is made of
    (weights, vision encoder, activations and CUDA graphs, CUDA context, KV cache), and,
    when the plan has GPU tenants, the memory every GPU keeps outside all quotas.
positional: _input
options:
  _input:
    description: A plan, as returned by tenancy_plan.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ tenancy_plan | tenancy_plan_table | join('\n') }}"
"""

RETURN = r"""
_value:
  description: Text lines, the first one a header, then one per tenant, then the quota terms.
  type: list
  elements: str
"""


def tenancy_plan_table(plan: Sequence[Mapping[str, Any]]) -> list[str]:
    """Render a plan as aligned text lines (one header, one line per tenant)."""
    header = (
        "TENANT",
        "STATE",
        "HOST",
        "ENDPOINT",
        "MODEL",
        "IMAGES",
        "CONTEXT",
        "MODE",
        "QUOTA",
        "GPU FRACTION",
        "KV CACHE",
        "RAM LIMIT",
        "CORES",
    )
    rows = [header]
    for t in plan:
        rows.append(
            (
                t["name"],
                t["state"],
                t["host"],
                f"{t['bind_address']}:{t['port']}",
                f"{t['model']} as {t['served_model_name']}"
                + "".join(f" +{a['name']}" for a in t.get("adapters") or []),
                f"{t['max_images']}/prompt" if t.get("max_images") else "-",
                t["max_model_len"],
                t["mode"] if t["gpu"] is None else f"{t['mode']} gpu{t['gpu']}",
                format_bytes(t["memory_bytes"]),
                "-" if t["gpu_memory_utilization"] is None else f"{t['gpu_memory_utilization']:.2f}",
                "-" if t.get("kv_cache_bytes") is None else format_bytes(t["kv_cache_bytes"]),
                format_bytes(t["memory_limit"]),
                (t.get("cpuset") or "-") + (" SHARED" if t.get("cpu_shared") else ""),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    # What each GPU tenant's quota is made of, and what every GPU keeps outside quotas.
    terms = [(t["name"], sizing.quota_terms(t)) for t in plan]
    lines += [f"{name}: {said}" for name, said in terms if said]
    if any(t.get("gpu") is not None for t in plan):
        lines.append(
            f"Each GPU keeps {format_bytes(GPU_RESERVE_BYTES)} outside every quota (the driver's own memory, "
            "an MPS server); the quotas of a GPU add up to at most its total less that."
        )
    return lines


class FilterModule:
    """Plan rendering."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_plan_table": tenancy_plan_table}
