"""inventory/multihost and the test hosts of tests/multihost describe the same hosts, and
the inventory plans (offline) as the suite expects: both hosts used, bravo on mh2."""

from __future__ import annotations

import json

import yaml
from tenancy_inventory import ROOT, run_ansible

INVENTORY = ROOT / "inventory" / "multihost"
TEST_HOSTS = yaml.safe_load((ROOT / "tests" / "multihost" / "hosts.yml").read_text())["multihost_hosts"]


def test_inventory_hosts_match_the_test_hosts():
    listed = json.loads(run_ansible("ansible-inventory", "-i", INVENTORY, "--list", check=True, timeout=120).stdout)
    hostvars = listed["_meta"]["hostvars"]
    assert sorted(listed["tenancy_hosts"]["hosts"]) == sorted(h["name"] for h in TEST_HOSTS)
    for spec in TEST_HOSTS:
        variables = hostvars[spec["name"]]
        assert variables["ansible_host"] == spec["address"]
        assert variables["ansible_user"] == spec["user"]
        # Reached over SSH only: no local or docker connection.
        assert variables.get("ansible_connection", "ssh") == "ssh"
        assert bool(variables.get("ansible_become")) == (spec["user"] != "root")


def test_inventory_plans_offline_over_both_hosts(tmp_path):
    output = tmp_path / "plan.json"
    result = run_ansible(
        "ansible-playbook",
        "-i",
        INVENTORY,
        ROOT / "playbooks" / "plan.yml",
        "-e",
        f"plan_output={output}",
        "-e",
        "tenancy_plan_offline=true",
        "-e",
        "tenancy_cpus=2",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    plan = {t["name"]: t for t in json.loads(output.read_text())}
    assert {t["host"] for t in plan.values()} == {"mh1", "mh2"}
    assert plan["bravo"]["host"] == "mh2"
    addresses = {h["name"]: h["address"] for h in TEST_HOSTS}
    for tenant in plan.values():
        assert tenant["endpoint"] == f"https://{addresses[tenant['host']]}:{tenant['port']}/v1"
