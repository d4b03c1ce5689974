"""Unit tests: quantization checked against the checkpoint's own quantization_config,
the article's int4/int8 aliases, and weights sized from what the checkpoint holds."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import (
    GIB,
    checkpoint_quantization,
    quantization_from_config,
    tenancy_sizing,
)
from tenancy_plan import tenancy_plan

A = {"name": "companyA", "port": 30001}
TEXT = {"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "hidden_size": 64}


def write_model(root, name: str, quantization: dict | None, weight_bytes: int = 0, dtype: str = "bfloat16"):
    directory = root / name
    directory.mkdir()
    config = {**TEXT, "torch_dtype": dtype}
    if quantization is not None:
        config["quantization_config"] = quantization
    (directory / "config.json").write_text(json.dumps(config))
    if weight_bytes:
        index = {"metadata": {"total_size": weight_bytes}, "weight_map": {}}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.fixture
def models(tmp_path):
    write_model(tmp_path, "plain", None, weight_bytes=16 * GIB)
    write_model(tmp_path, "awq4", {"quant_method": "awq", "bits": 4, "group_size": 128}, weight_bytes=5 * GIB)
    write_model(tmp_path, "gptq8", {"quant_method": "gptq", "bits": 8}, weight_bytes=9 * GIB)
    write_model(tmp_path, "fp8ckpt", {"quant_method": "fp8", "activation_scheme": "dynamic"}, weight_bytes=8 * GIB)
    ct = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"num_bits": 4}}}}
    write_model(tmp_path, "ct4", ct, weight_bytes=5 * GIB)
    return tmp_path


def plan_one(models, **fields):
    return tenancy_plan([{**A, "gpu_memory": "40G", **fields}], {}, ["localhost"], None, str(models))[0]


def refusal(models, **fields) -> str:
    with pytest.raises(AnsibleFilterError) as excinfo:
        plan_one(models, **fields)
    message = str(excinfo.value)
    assert f"tenant 'companyA': field 'quantization' has invalid value {fields['quantization']!r}" in message
    return message


def test_the_checkpoints_own_quantization_is_read(models):
    assert checkpoint_quantization("awq4", models) == {"method": "awq", "bits": 4}
    assert checkpoint_quantization("gptq8", models) == {"method": "gptq", "bits": 8}
    assert checkpoint_quantization("fp8ckpt", models) == {"method": "fp8", "bits": 8}
    assert checkpoint_quantization("ct4", models) == {"method": "compressed-tensors", "bits": 4}
    assert checkpoint_quantization("plain", models) == {}
    assert checkpoint_quantization("someorg/nothing-known", models) is None


def test_hub_names_announce_fp8_and_awq_checkpoints_of_known_models(tmp_path):
    assert checkpoint_quantization("Qwen/Qwen3-VL-8B-Instruct-FP8", tmp_path) == {"method": "fp8", "bits": 8}
    assert checkpoint_quantization("someone/Qwen3-VL-8B-Instruct-AWQ", tmp_path) == {"method": "awq", "bits": 4}
    assert checkpoint_quantization("Qwen/Qwen3-VL-8B-Instruct", tmp_path) == {}


@pytest.mark.parametrize("model", ["awq4", "ct4"])
def test_int4_resolves_against_a_4_bit_checkpoint_and_lets_vllm_pick_the_kernel(models, model):
    record = plan_one(models, model=model, quantization="int4")
    assert record["quantization"] is None
    assert "--quantization" not in record["engine_args"]


def test_int8_resolves_against_an_8_bit_checkpoint(models):
    assert plan_one(models, model="gptq8", quantization="int8")["quantization"] is None


def test_int4_on_an_unquantized_checkpoint_is_refused_with_what_to_do(models):
    message = refusal(models, model="plain", quantization="int4")
    assert "is not quantized" in message and "AWQ or GPTQ" in message and "fp8" in message


def test_int4_on_an_8_bit_checkpoint_is_refused(models):
    assert "quantized with gptq at 8 bits, not 4" in refusal(models, model="gptq8", quantization="int4")


def test_an_alias_needs_to_know_the_checkpoint(models):
    assert "cannot tell how" in refusal(models, model="someorg/nothing-known", quantization="int4")


def test_awq_on_an_unquantized_checkpoint_is_refused(models):
    """Today's bug: the planner halved the weights and vLLM then failed to start."""
    message = refusal(models, model="plain", quantization="awq")
    assert "is not quantized" in message and "Quantized while loading: bitsandbytes, experts_int8, fp8" in message


def test_a_method_other_than_the_checkpoints_is_refused(models):
    assert "already quantized with awq" in refusal(models, model="awq4", quantization="gptq")


def test_the_checkpoints_own_method_and_its_kernels_are_accepted(models):
    for method in ("awq", "awq_marlin"):
        record = plan_one(models, model="awq4", quantization=method)
        args = record["engine_args"]
        assert args[args.index("--quantization") + 1] == method


def test_fp8_quantizes_an_unquantized_checkpoint_while_loading(models):
    record = plan_one(models, model="plain", quantization="fp8")
    assert record["engine_args"][record["engine_args"].index("--quantization") + 1] == "fp8"
    assert record["sizing"]["weights_bytes"] == 8 * GIB


def test_a_quantized_checkpoint_is_sized_by_what_its_files_hold(models):
    """Not halved again: the stored 5 GiB of an AWQ checkpoint are its weights."""
    for quantization in (None, "int4", "awq"):
        record = plan_one(models, model="awq4", quantization=quantization)
        assert record["sizing"]["weights_bytes"] == 5 * GIB


def test_a_known_quantized_hub_checkpoint_is_sized_by_its_bits(tmp_path):
    bf16 = tenancy_sizing({"model": "Qwen/Qwen3-VL-8B-Instruct", "max_model_len": 4096}, str(tmp_path))
    fp8 = tenancy_sizing({"model": "Qwen/Qwen3-VL-8B-Instruct-FP8", "max_model_len": 4096}, str(tmp_path))
    vision = bf16["vision_weights_bytes"]
    # The vision tower stays in bf16 in Qwen's FP8 checkpoints; the rest is 1 byte a weight.
    assert fp8["weights_bytes"] - vision == pytest.approx((bf16["weights_bytes"] - vision) / 2, rel=1e-6)


def test_quantization_config_without_bits_is_reported_as_unknown_bits():
    assert quantization_from_config({"quantization_config": {"quant_method": "bitsandbytes"}}) == {
        "method": "bitsandbytes",
        "bits": None,
    }


def test_one_table_accepts_and_sizes_every_method():
    """Every method the planner accepts has a size, and every method sized is accepted
    (ptpc_fp8 was sized but refused; ipex and torchao accepted but not sized)."""
    from ansible_collections.tenancy.core.plugins.plugin_utils import tenant_spec as plan_module
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import QUANTIZATION_BYTES

    assert set(QUANTIZATION_BYTES) == plan_module.QUANTIZATIONS
    assert {"ptpc_fp8", "ipex", "torchao"} <= plan_module.QUANTIZATIONS
    assert QUANTIZATION_BYTES["ptpc_fp8"] == QUANTIZATION_BYTES["fp8"] == 1
    # Their bits live in their own config: sized at the dtype, an upper bound.
    assert QUANTIZATION_BYTES["torchao"] is None and QUANTIZATION_BYTES["ipex"] is None
