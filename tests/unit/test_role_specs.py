"""Every role documents exactly the inputs it has: argument_specs matches defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROLES = sorted(
    p.parent.parent for p in (Path(__file__).resolve().parents[2] / "roles").glob("*/meta/argument_specs.yml")
)


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_argument_specs_match_defaults(role):
    options = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    required = {name for name, spec in options.items() if spec.get("required")}
    assert set(defaults) == set(options) - required, "defaults/main.yml and argument_specs disagree"
    assert not required & set(defaults), "a required input must not have a default"
    for name, spec in options.items():
        assert spec.get("description"), f"{name} has no description"
        assert name.startswith(role.name + "_"), f"{name} lacks the role prefix {role.name}_"
        if "default" in spec:
            assert spec["default"] == defaults[name], f"{name}: argument_specs default differs from defaults/main.yml"


def test_every_role_has_specs_and_a_readme():
    roles = [p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir()]
    for role in roles:
        assert (role / "meta" / "argument_specs.yml").exists(), role.name
        assert (role / "README.md").exists(), role.name


def test_lifecycle_verbs_know_every_tenant_field():
    from ansible_collections.tenancy.core.plugins.plugin_utils.tenant_spec import FIELDS

    root = Path(__file__).resolve().parents[2]
    fields = yaml.safe_load((root / "playbooks" / "vars" / "tenant_fields.yml").read_text())["tenancy_tenant_fields"]
    assert sorted(fields) == sorted(FIELDS - {"name"})


def table_rows(markdown: str) -> dict[str, str]:
    """The rows of markdown tables whose first cell is `code`: that name -> the second cell."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_reference_lists_every_project_wide_setting_with_its_default():
    """docs/reference.md's variables table gives each tenancy_* setting the default the
    tenancy role (the one place they are defined) gives it."""
    root = Path(__file__).resolve().parents[2]
    options = yaml.safe_load((root / "roles/tenancy/meta/argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    rows = table_rows((root / "docs/reference.md").read_text())
    for name, spec in options.items():
        assert name in rows, f"docs/reference.md does not list {name}"
        shown = json.dumps(spec["default"]) if isinstance(spec["default"], (bool, dict)) else str(spec["default"])
        assert rows[name].startswith(f"`{shown}`"), f"{name}: reference says {rows[name]}, the tenancy role {shown}"


def test_reference_lists_every_tenant_field_with_the_planners_default():
    """docs/reference.md's tenant fields table has one row per field the planner knows,
    and each plain default there is the planner's (tenant_spec.BUILTIN_DEFAULTS)."""
    from ansible_collections.tenancy.core.plugins.plugin_utils.tenant_spec import BUILTIN_DEFAULTS, FIELDS

    text = (Path(__file__).resolve().parents[2] / "docs/reference.md").read_text()
    table = text.split("### Tenant fields", 1)[1].split("\n### ", 1)[0]
    rows = table_rows(table)
    assert set(rows) == set(FIELDS)
    for field, default in BUILTIN_DEFAULTS.items():
        if isinstance(default, (str, int)) and not isinstance(default, bool):
            assert rows[field].startswith(f"`{default}`"), f"{field}: reference says {rows[field]}, planner {default}"
