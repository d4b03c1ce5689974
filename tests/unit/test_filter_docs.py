"""`ansible-doc -t filter` renders every filter of filter_plugins/ with its own docs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tenancy_inventory import ROOT, ansible_bin

FILTERS = sorted(p.stem for p in (ROOT / "filter_plugins").glob("*.py"))


def test_every_plugin_file_is_a_filter():
    assert FILTERS == [
        "tenancy_mig",
        "tenancy_mig_state",
        "tenancy_nvidia_driver",
        "tenancy_plan",
        "tenancy_plan_table",
        "tenancy_sizing",
    ]


@pytest.mark.parametrize("name", FILTERS)
def test_ansible_doc_renders(name):
    result = subprocess.run(
        [ansible_bin("ansible-doc"), "-t", "filter", name],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"FILTER {name} ({Path(ROOT / 'filter_plugins' / name)}.py)" in result.stdout
    assert "EXAMPLES:" in result.stdout
    assert "RETURN VALUES:" in result.stdout
    assert "WARNING" not in result.stderr
