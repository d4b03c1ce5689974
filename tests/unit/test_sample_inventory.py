"""The sample production inventory is documentation: it must plan cleanly, offline."""

from __future__ import annotations

import json
import os
import subprocess

from tenancy_inventory import ROOT, ansible_bin


def test_sample_inventory_plans_without_reaching_its_hosts(tmp_path):
    output = tmp_path / "plan.json"
    result = subprocess.run(
        [
            ansible_bin("ansible-playbook"),
            "-i",
            str(ROOT / "inventory" / "sample"),
            str(ROOT / "playbooks" / "plan.yml"),
            "-e",
            f"plan_output={output}",
        ],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    plan = json.loads(output.read_text())
    assert {t["name"] for t in plan} == {"companyA", "companyB", "companyC"}
    assert all(t["mode"] == "shared" and t["gpu_memory_utilization"] for t in plan)
    assert next(t for t in plan if t["name"] == "companyC")["host"] == "gpu2.example.net"
    assert all(t["sizing"]["known"] and t["memory_bytes"] >= t["sizing"]["minimum_bytes"] for t in plan)
