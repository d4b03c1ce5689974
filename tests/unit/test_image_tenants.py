"""Unit tests: tenants whose model takes images (Qwen3-VL) - how the planner tells,
what it passes to vLLM, its per-kind defaults and its refusals."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.engine import NO_MEDIA_DOMAIN
from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import takes_images
from ansible_collections.tenancy.core.plugins.plugin_utils.tenant_spec import MAX_MODEL_LEN_DEFAULTS
from tenancy_plan import tenancy_plan
from tenancy_plan_table import tenancy_plan_table

A = {"name": "companyA", "port": 30001}
B = {"name": "companyB", "port": 30002}


def write_model(root, name: str, vision: bool) -> None:
    """A models-dir entry with the config.json fields the planner reads."""
    text = {
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "hidden_size": 64,
        "dtype": "float32",
    }
    config = {"text_config": text, "vision_config": {"depth": 2}} if vision else text
    directory = root / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))


def mm_limits(record) -> dict | None:
    args = record["engine_args"]
    if "--limit-mm-per-prompt" not in args:
        return None
    return json.loads(args[args.index("--limit-mm-per-prompt") + 1])


@pytest.fixture
def models(tmp_path):
    write_model(tmp_path, "local-vl", vision=True)
    write_model(tmp_path, "local-text", vision=False)
    return tmp_path


def plan(tenants, models, defaults=None):
    return {t["name"]: t for t in tenancy_plan(tenants, defaults or {}, ["localhost"], None, str(models))}


def test_a_vision_config_makes_an_image_tenant(models):
    records = plan([{**A, "model": "local-vl"}, {**B, "model": "local-text"}], models)
    vl, text = records["companyA"], records["companyB"]
    assert vl["takes_images"] is True and vl["max_images"] == 1
    assert mm_limits(vl) == {"image": 1, "video": 0}
    assert text["takes_images"] is False and text["max_images"] == 0
    assert mm_limits(text) is None


def test_an_image_engine_fetches_no_remote_media_and_a_text_engine_has_no_such_flag(models):
    records = plan([{**A, "model": "local-vl"}, {**B, "model": "local-text"}], models)
    args = records["companyA"]["engine_args"]
    at = args.index("--allowed-media-domains")
    # One name, reserved by RFC 2606 never to resolve: vLLM's list is "any" when empty.
    assert args[at + 1] == NO_MEDIA_DOMAIN == "no-remote-media.invalid"
    assert at + 2 == len(args) or args[at + 2].startswith("--")
    assert "--allowed-media-domains" not in records["companyB"]["engine_args"]
    assert "--allowed-local-media-path" not in args


def test_context_default_depends_on_the_model_kind(models):
    records = plan([{**A, "model": "local-vl"}, {**B, "model": "local-text"}], models)
    assert records["companyA"]["max_model_len"] == MAX_MODEL_LEN_DEFAULTS["images"] == 4096
    assert records["companyB"]["max_model_len"] == MAX_MODEL_LEN_DEFAULTS["text"] == 512
    args = records["companyA"]["engine_args"]
    assert args[args.index("--max-model-len") + 1] == "4096"


def test_a_set_context_wins_over_the_kind_default(models):
    records = plan([{**A, "model": "local-vl", "max_model_len": 2048}], models, {"max_model_len": 1024})
    assert records["companyA"]["max_model_len"] == 2048
    records = plan([{**A, "model": "local-vl"}], models, {"max_model_len": 1024})
    assert records["companyA"]["max_model_len"] == 1024


def test_max_images_sets_the_per_prompt_limit(models):
    record = plan([{**A, "model": "local-vl", "max_images": 3}], models)["companyA"]
    assert mm_limits(record) == {"image": 3, "video": 0}


def test_max_images_zero_serves_an_image_model_as_text(models):
    record = plan([{**A, "model": "local-vl", "max_images": 0}], models)["companyA"]
    assert mm_limits(record) == {"image": 0, "video": 0}
    assert record["max_model_len"] == 4096


def test_images_on_a_text_model_are_refused_naming_tenant_field_value(models):
    with pytest.raises(AnsibleFilterError) as excinfo:
        plan([{**A, "model": "local-text", "max_images": 2}], models)
    message = str(excinfo.value)
    assert "tenant 'companyA': field 'max_images' has invalid value 2" in message
    assert "takes no images" in message and "local-text" in message


@pytest.mark.parametrize("value", [-1, "many", True])
def test_max_images_must_be_a_count(models, value):
    with pytest.raises(AnsibleFilterError, match=r"tenant 'companyA': field 'max_images' has invalid value"):
        plan([{**A, "model": "local-vl", "max_images": value}], models)


def test_known_hub_models_take_images_without_a_local_copy(tmp_path):
    assert takes_images("Qwen/Qwen3-VL-8B-Instruct", tmp_path) is True
    assert takes_images("tiny-qwen3", tmp_path) is False
    assert takes_images("someorg/unknown-model", tmp_path) is None


def test_an_unknown_model_is_served_as_it_comes_unless_images_are_asked_for(tmp_path):
    hosts = {"localhost": {}}
    plain = tenancy_plan([{**A, "model": "someorg/unknown"}], {}, hosts, None, str(tmp_path))[0]
    assert plain["takes_images"] is False and mm_limits(plain) is None
    asked = tenancy_plan([{**A, "model": "someorg/unknown", "max_images": 2}], {}, hosts, None, str(tmp_path))[0]
    assert asked["takes_images"] is True and mm_limits(asked) == {"image": 2, "video": 0}


def test_the_plan_table_shows_which_tenants_take_images(models):
    records = plan([{**A, "model": "local-vl"}, {**B, "model": "local-text"}], models)
    lines = tenancy_plan_table(sorted(records.values(), key=lambda t: t["name"]))
    header = lines[0].split()
    assert "IMAGES" in header and "CONTEXT" in header
    assert "1/prompt" in lines[1] and " 4096 " in lines[1]
    assert "1/prompt" not in lines[2] and " 512 " in lines[2]


def test_image_tenants_bound_the_processor_cache_and_count_it_in_the_memory_limit(models):
    """vLLM's default cache (4 GiB, held twice) would outgrow a CPU engine's limit."""
    records = plan([{**A, "model": "local-vl"}, {**B, "model": "local-text"}], models)
    args = records["companyA"]["engine_args"]
    assert args[args.index("--mm-processor-cache-gb") + 1] == "0.5"
    assert "--mm-processor-cache-gb" not in records["companyB"]["engine_args"]
    # 1 GiB KV + 2 GiB engine + 2 x 0.5 GiB cache, against 1 + 2 for the text tenant.
    assert records["companyA"]["memory_limit"] == 4 * 1024**3
    assert records["companyB"]["memory_limit"] == 3 * 1024**3


# --- the vision encoder's activation peak in the minimum ---------------------------------

QWEN8 = "Qwen/Qwen3-VL-8B-Instruct"


def sizing_of(**tenant):
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import tenancy_sizing

    return tenancy_sizing({"model": QWEN8, "max_model_len": 4096, **tenant}, "/nonexistent")


def test_the_vision_term_is_the_largest_prompts_images_within_the_context():
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import GIB, MAX_IMAGE_TOKENS_DEFAULT

    assert MAX_IMAGE_TOKENS_DEFAULT == 16384  # 4096 x 4096 pixels over 32 x 32 per token
    at_4096 = sizing_of()
    assert at_4096["image_tokens"] == 4096
    # 16384 patches x (2 x 1152 + 2 x 4304) + 4 x 4096 tokens x 4096 out, in bf16.
    assert at_4096["vision_activation_bytes"] == (16384 * 10912 + 4 * 4096 * 4096) * 2
    assert 0.4 * GIB < at_4096["vision_activation_bytes"] < 0.6 * GIB
    largest = sizing_of(max_model_len=32768)
    assert largest["image_tokens"] == 16384  # one image, at most the processor's largest
    assert sizing_of(max_model_len=65536, max_images=3)["image_tokens"] == 3 * 16384
    assert sizing_of(max_model_len=32768, max_images=3)["image_tokens"] == 32768  # within the context
    assert sizing_of(max_images=0)["vision_activation_bytes"] == 0  # an image model served as text
    assert sizing_of()["minimum_bytes"] - sizing_of(max_images=0)["minimum_bytes"] == at_4096["vision_activation_bytes"]


def test_a_text_model_has_no_vision_term():
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import tenancy_sizing

    sizing = tenancy_sizing({"model": "tiny-qwen3", "max_model_len": 512}, "/nonexistent")
    assert (sizing["vision_activation_bytes"], sizing["image_tokens"]) == (0, 0)


def test_the_tower_is_read_from_a_local_config_as_the_table_has_it(tmp_path):
    """The demo's tiny Qwen3-VL: its vision_config (roles/images/files/model) gives the
    same tower as the known-models table."""
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import KNOWN_MODELS, tower_from_config

    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "out_hidden_size": 64,
        "deepstack_visual_indexes": [0],
        "num_position_embeddings": 256,
    }
    assert tower_from_config(vision) == {**KNOWN_MODELS["tiny-qwen3-vl"]["tower"], "channels": 3, "temporal": 2}
    assert tower_from_config(None) is None
    assert tower_from_config({"depth": 2}) is None  # too little to size: no term, not a guess


def test_the_vision_encoders_parameters_are_counted_and_stated_apart(tmp_path):
    """124,320: the parameters whose names hold "visual" in the demo's tiny Qwen3-VL
    safetensors (roles/images/files/model/make_tiny_model.py), counted on 2026-12-01."""
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import KNOWN_MODELS, tenancy_sizing, tower_params

    assert tower_params(KNOWN_MODELS["tiny-qwen3-vl"]["tower"]) == 124_320
    assert tower_params({"hidden": 32}) == 0  # no depth: not a guess
    sizing = tenancy_sizing({"model": "Qwen/Qwen3-VL-8B-Instruct", "max_model_len": 4096}, str(tmp_path))
    assert sizing["vision_weights_bytes"] == tower_params(KNOWN_MODELS["qwen3-vl-8b"]["tower"]) * 2
    assert 1.0 < sizing["vision_weights_bytes"] / 2**30 < 1.2
