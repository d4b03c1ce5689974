"""tenancy_controller_path: report files land where the user ran ansible-playbook."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_controller_path import tenancy_controller_path


def test_a_relative_path_is_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tenancy_controller_path("usage.csv") == str(tmp_path / "usage.csv")
    assert tenancy_controller_path("out/plan.json") == str(tmp_path / "out" / "plan.json")


def test_an_absolute_or_home_path_is_kept(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ops")
    assert tenancy_controller_path("/srv/reports/usage.svg") == "/srv/reports/usage.svg"
    assert tenancy_controller_path("~/usage.svg") == "/home/ops/usage.svg"


@pytest.mark.parametrize("bad", ["", "  ", None, 3])
def test_no_path_is_an_error(bad):
    with pytest.raises(AnsibleFilterError, match="tenancy_controller_path: expected a file path"):
        tenancy_controller_path(bad)


def test_the_playbooks_write_every_user_named_file_through_it():
    """Planted break for the playbooks: a `dest:` of a user-named file without the filter
    would land in playbooks/ (what the chaos run's chart did)."""
    root = Path(__file__).resolve().parents[2]
    for playbook, variable in [
        ("plan.yml", "plan_output"),
        ("tenants-list.yml", "list_output"),
        ("tenants-usage.yml", "usage_output"),
        ("tenants-usage.yml", "usage_chart"),
    ]:
        text = (root / "playbooks" / playbook).read_text()
        dests = [line for line in text.splitlines() if "dest:" in line and variable in line]
        assert dests and all("tenancy_controller_path" in line for line in dests), (playbook, variable, dests)
