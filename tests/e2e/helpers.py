"""Helpers of the end-to-end suite: run site.yml and read its recap."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from tenancy_inventory import ROOT, run_ansible, trust_bundle_ca

INVENTORY = Path(os.environ.get("TENANCY_INVENTORY", ROOT / "inventory" / "local"))
# The tenants serve https only, under the inventory's bundle CA.
trust_bundle_ca(INVENTORY)
# The tenant role's defaults: host paths the tests expect (data directories, uids).
TENANT_DEFAULTS = yaml.safe_load((ROOT / "roles" / "tenant" / "defaults" / "main.yml").read_text())


def run_site(*extra: str) -> subprocess.CompletedProcess[str]:
    """Run site.yml against the test inventory and return the finished process."""
    return run_ansible("ansible-playbook", "-i", INVENTORY, ROOT / "site.yml", *extra)
