"""`ansible-doc -t filter` renders every filter of filter_plugins/ with its own docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tenancy_inventory import ROOT, run_ansible

FILTERS = sorted(p.stem for p in (ROOT / "filter_plugins").glob("*.py"))


def test_every_plugin_file_is_a_filter():
    assert FILTERS == [
        "tenancy_host_engines",
        "tenancy_host_tenants",
        "tenancy_key_commands",
        "tenancy_key_map",
        "tenancy_list_row",
        "tenancy_mig",
        "tenancy_mig_state",
        "tenancy_nvidia_driver",
        "tenancy_plan",
        "tenancy_plan_diff",
        "tenancy_plan_table",
        "tenancy_scrape_targets",
        "tenancy_sizing",
        "tenancy_usage",
        "tenancy_usage_queries",
        "tenancy_usage_render",
    ]


@pytest.mark.parametrize("name", FILTERS)
def test_ansible_doc_renders(name):
    result = run_ansible("ansible-doc", "-t", "filter", name, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"FILTER {name} ({Path(ROOT / 'filter_plugins' / name)}.py)" in result.stdout
    assert "EXAMPLES:" in result.stdout
    assert "RETURN VALUES:" in result.stdout
    assert "WARNING" not in result.stderr
