"""The sample production inventory is documentation: it must plan cleanly, offline."""

from __future__ import annotations

import json

from tenancy_inventory import ROOT, run_ansible


def test_sample_inventory_plans_without_reaching_its_hosts(tmp_path):
    output = tmp_path / "plan.json"
    result = run_ansible(
        "ansible-playbook",
        "-i",
        ROOT / "inventory" / "sample",
        ROOT / "playbooks" / "plan.yml",
        "-e",
        f"plan_output={output}",
        "-e",
        "tenancy_plan_offline=true",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    plan = json.loads(output.read_text())
    assert {t["name"] for t in plan} == {"companyA", "companyB", "companyC"}
    assert all(t["mode"] == "shared" and t["gpu_memory_utilization"] for t in plan)
    assert next(t for t in plan if t["name"] == "companyC")["host"] == "gpu2.example.net"
    assert all(t["sizing"]["known"] and t["memory_bytes"] >= t["sizing"]["minimum_bytes"] for t in plan)
