"""A tenant's private model (tenant fields model_private and model): read on the
controller before anything changes, never mounted from the host's model store."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_plan import tenancy_plan

# tiny-qwen3's geometry (roles/images/files/model/make_tiny_model.py).
CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "num_hidden_layers": 2,
    "dtype": "float32",
}


def write_model(directory, name="acme-sql"):
    model = directory / "models" / name
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(CONFIG))
    (model / "model.safetensors").write_bytes(b"\1" * 4000)
    (model / "sub" / "tokenizer.json").write_text("{}")
    return model


def plan(directory, **fields):
    tenant = {"name": "a", "port": 30001, "model": "models/acme-sql", "model_private": True, **fields}
    hosts = {"localhost": {"tenancy_cpus": 2}}
    return tenancy_plan([tenant], {}, hosts, None, "/var/lib/tenancy/models", files_dir=str(directory))[0]


def test_a_private_model_is_read_on_the_controller_and_served_from_the_volume(tmp_path):
    model = write_model(tmp_path)
    record = plan(tmp_path)
    assert (record["model_kind"], record["model"], record["model_private"]) == ("private", str(model), True)
    assert record["served_model_name"] == "acme-sql"
    assert [f["name"] for f in record["model_files"]] == ["config.json", "model.safetensors", "sub/tokenizer.json"]
    weights = record["model_files"][1]
    assert (weights["bytes"], weights["sha256"]) == (4000, hashlib.sha256(b"\1" * 4000).hexdigest())
    # Nothing of the host's model store: the engine reads its own volume.
    assert record["model_mounts"] == []
    assert record["engine_args"][0] == "/data/model"
    # Sized from its own config.json on the controller.
    assert record["sizing"]["source"] == str(model / "config.json")


def test_a_shared_model_brings_no_files(tmp_path):
    record = plan(tmp_path, model="tiny-qwen3", model_private=False)
    assert (record["model_kind"], record["model_private"], record["model_files"]) == ("local", False, [])
    assert record["model_mounts"] == [{"source": "/var/lib/tenancy/models/tiny-qwen3", "target": "/models/tiny-qwen3"}]


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"model": "models/missing"}, "model", "with model_private, a model directory on the controller"),
        ({"model_private": "yes"}, "model_private", "expected true or false"),
        ({"model": None}, "model", "with model_private, the model's directory on the controller"),
    ],
)
def test_bad_private_models_are_refused(tmp_path, fields, field, fragment):
    write_model(tmp_path)
    with pytest.raises(AnsibleFilterError) as error:
        plan(tmp_path, **fields)
    message = str(error.value)
    assert f"tenant 'a': field '{field}'" in message and fragment in message


def test_a_link_in_a_private_model_is_refused(tmp_path):
    model = write_model(tmp_path)
    (model / "leak").symlink_to("/etc/shadow")
    with pytest.raises(AnsibleFilterError, match="is not a plain file"):
        plan(tmp_path)


def test_a_private_model_being_removed_needs_no_files(tmp_path):
    record = plan(tmp_path, state="absent")
    assert record["model_files"] == []
