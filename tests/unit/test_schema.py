"""The tenant schema is the one source of the tenant fields and of the plan record: the
planner's records carry exactly its keys, the files made from it are current, and the
tenant role's argument_specs check a record against it."""

from __future__ import annotations

import copy

import gen_docs
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.tenancy.core.plugins.plugin_utils import schema
from tenancy_plan import tenancy_plan

GPUS = {"h": {"tenancy_gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80G", "mode": "mig"}]}}


def records():
    cpu = tenancy_plan(
        [{"name": "a", "port": 30001}, {"name": "gone", "port": 30009, "state": "absent"}],
        {},
        {"h": {"tenancy_cpus": 2}},
        None,
        "/nonexistent",
    )
    mig = tenancy_plan(
        [{"name": "b", "port": 30002, "gpu_memory": "75G"}, {"name": "c", "port": 30003, "gpu_memory": "75G"}],
        {},
        GPUS,
        None,
        "/nonexistent",
        True,
    )
    assert [r["state"] for r in mig] == ["present", "unplaced"]
    return cpu + mig


def test_a_placed_record_has_the_schemas_keys_in_the_schemas_order():
    for record in records():
        if record["state"] == "unplaced":
            assert sorted(record) == sorted(schema.record_keys("unplaced"))
        else:
            assert list(record) == schema.record_keys(record["state"]), record["name"]


def test_the_record_carries_the_engines_port_and_mounts_for_the_roles():
    """The roles read the engine's port and its mounts from the record, never their own
    literals (the planner's RETURN, generated from the schema, documents them)."""
    cpu = records()[0]
    assert (cpu["engine_port"], cpu["models_mount"], cpu["data_mount"]) == (8000, "/models", "/data")
    assert cpu["engine_args"][0] == cpu["model_mounts"][0]["target"]
    assert cpu["engine_args"][cpu["engine_args"].index("--port") + 1] == "8000"


def test_the_planner_applies_the_schemas_defaults_and_knows_only_its_fields():
    """A tenant with only its name and port is planned with the schema's defaults, and a
    field the schema does not have is refused, listing the schema's fields."""
    (record,) = tenancy_plan([{"name": "a", "port": 30001}], {}, {"h": {"tenancy_cpus": 2}}, None, "/nonexistent")
    for field in ("state", "model", "max_num_seqs", "rpm_limit", "bind_address", "pids_limit", "concurrency"):
        assert record[field] == schema.TENANT_FIELDS[field]["default"], field
    with pytest.raises(AnsibleFilterError) as error:
        tenancy_plan([{"name": "a", "port": 30001, "colour": "red"}], {}, {"h": {"tenancy_cpus": 2}}, None, "/x")
    assert f"known fields are {', '.join(sorted(schema.TENANT_FIELDS))}" in str(error.value)


def test_every_file_made_from_the_schema_and_the_argument_specs_is_current():
    assert gen_docs.stale() == [], "run scripts/gen_docs.py"


def test_a_change_to_the_schema_makes_the_generated_files_stale(monkeypatch):
    """Planted break: a new record key that no generated file has yet."""
    keys = copy.deepcopy(schema.RECORD_KEYS)
    keys["planted"] = {"type": "str", "description": "a key no file knows"}
    monkeypatch.setattr(schema, "RECORD_KEYS", keys)
    fields = copy.deepcopy(schema.TENANT_FIELDS)
    fields["planted_field"] = {"default": None, "meaning": "planted"}
    monkeypatch.setattr(schema, "TENANT_FIELDS", fields)
    monkeypatch.setattr(schema, "VERB_FIELDS", (*schema.VERB_FIELDS, "planted_field"))
    assert sorted(gen_docs.stale()) == sorted(gen_docs.TARGETS)


def tenant_plan_spec(entry_point: str):
    specs = yaml.safe_load((gen_docs.ROOT / "roles/tenant/meta/argument_specs.yml").read_text())["argument_specs"]
    return {"tenant_plan": specs[entry_point]["options"]["tenant_plan"]}


@pytest.mark.parametrize("entry_point", ["main", "rotate", "rotate_volume"])
def test_the_tenant_roles_argument_specs_accept_every_kind_of_record(entry_point):
    validator = ArgumentSpecValidator(tenant_plan_spec(entry_point))
    for record in records():
        result = validator.validate({"tenant_plan": record})
        assert not result.error_messages, (record["name"], result.error_messages)


def test_the_tenant_roles_argument_specs_refuse_a_record_without_a_key_or_with_an_unknown_one():
    """Planted breaks: a record from an older planner (no engine_port), and one with a key
    the schema does not know. Ansible refuses both before the role's first task."""
    validator = ArgumentSpecValidator(tenant_plan_spec("main"))
    record = records()[0]
    missing = {k: v for k, v in record.items() if k != "engine_port"}
    errors = validator.validate({"tenant_plan": missing}).error_messages
    assert any("engine_port" in e for e in errors), errors
    errors = validator.validate({"tenant_plan": record | {"planted": 1}}).error_messages
    assert any("planted" in e for e in errors), errors
