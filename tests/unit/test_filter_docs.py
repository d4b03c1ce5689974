"""`ansible-doc -t filter` renders every filter of filter_plugins/ with its own docs."""

from __future__ import annotations

from pathlib import Path

from tenancy_inventory import ROOT, run_ansible

FILTERS = sorted(p.stem for p in (ROOT / "filter_plugins").glob("*.py"))


def test_every_plugin_file_is_a_filter():
    assert FILTERS == [
        "tenancy_certificate",
        "tenancy_controller_path",
        "tenancy_converge_fingerprint",
        "tenancy_gpu_record",
        "tenancy_gpu_tenants",
        "tenancy_host_facts",
        "tenancy_host_tenants",
        "tenancy_key_commands",
        "tenancy_key_map",
        "tenancy_list_row",
        "tenancy_log_excerpt",
        "tenancy_luks_progress",
        "tenancy_luks_reencrypt",
        "tenancy_mig",
        "tenancy_mig_state",
        "tenancy_nvidia_driver",
        "tenancy_plan",
        "tenancy_plan_diff",
        "tenancy_plan_table",
        "tenancy_prometheus_reload",
        "tenancy_scrape_targets",
        "tenancy_sizing",
        "tenancy_tenant_entry",
        "tenancy_tenant_files",
        "tenancy_tenants_edit",
        "tenancy_uid_refusals",
        "tenancy_usage",
        "tenancy_usage_range",
        "tenancy_usage_render",
        "tenancy_volume_refusals",
    ]


def test_ansible_doc_renders_every_filter():
    # One ansible-doc run for all of them (one run each took about 2 s apiece).
    result = run_ansible("ansible-doc", "-t", "filter", *FILTERS, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    sections = result.stdout.split("> FILTER ")[1:]
    assert [section.split()[0] for section in sections] == FILTERS
    for name, section in zip(FILTERS, sections, strict=True):
        assert section.startswith(f"{name} ({Path(ROOT / 'filter_plugins' / name)}.py)"), section[:200]
        assert "EXAMPLES:" in section, name
        assert "RETURN VALUES:" in section, name
