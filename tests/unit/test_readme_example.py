"""The README's production example plans: its defaults and tenants, on two A100-80GB
hosts, pass the planner (a front-door example that is refused would be worse than none)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from tenancy_plan import tenancy_plan

README = Path(__file__).resolve().parents[2] / "README.md"


def block(header: str) -> dict:
    """The YAML block of the README that starts with the comment line `header`."""
    text = README.read_text()
    found = re.search(r"```yaml\n(" + re.escape(header) + r"\n.*?)```", text, re.S)
    assert found, f"README.md has no yaml block starting with {header!r}"
    return yaml.safe_load(found.group(1))


def test_the_production_example_plans_on_two_a100_hosts():
    settings = block("# inventory/prod/group_vars/all/tenancy.yml")
    tenants = block("# inventory/prod/group_vars/all/tenants.yml")["tenants"]
    a100 = [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB", "mode": "shared"}]
    hosts = {"gpu1.example.net": {"tenancy_gpus": a100}, "gpu2.example.net": {"tenancy_gpus": a100}}
    plan = tenancy_plan(tenants, settings["tenancy_tenant_defaults"], hosts, None, "/nonexistent")
    assert [r["name"] for r in plan] == [t["name"] for t in tenants]
    assert all(r["state"] == "present" and r["kv_cache_bytes"] > 0 for r in plan)
    assert next(r for r in plan if r["name"] == "companyC")["host"] == "gpu2.example.net"
