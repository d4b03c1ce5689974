"""Planner: memory sizing, MPS and MIG placement (pytest + hypothesis)."""

from __future__ import annotations

import itertools
import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import mig as tenancy_mig
from ansible_collections.tenancy.core.plugins.plugin_utils.common import GIB
from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import KNOWN_MODELS, tenancy_sizing
from hypothesis import given, settings
from hypothesis import strategies as st
from tenancy_plan import tenancy_plan

A100_80 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB"}
A100_40 = {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "memory": "40GiB"}
H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory": "81559MiB"}
QWEN8 = "Qwen/Qwen3-VL-8B-Instruct"


def gpus(*entries, host="g1"):
    return {host: {"tenancy_gpus": list(entries)}}


def t(name, quota, port=None, **fields):
    return {"name": name, "port": port or 30000 + sum(map(ord, name)) % 30000, "gpu_memory": quota, **fields}


def plan(tenants, hosts, tmp_path, **kwargs):
    return tenancy_plan(tenants, {"model": "tiny-qwen3"}, hosts, None, str(tmp_path), **kwargs)


# --- sizing ---------------------------------------------------------------------------------


def test_qwen3_vl_8b_kv_is_144_kib_per_token(tmp_path):
    sizing = tenancy_sizing({"model": QWEN8, "max_model_len": 1}, str(tmp_path))
    assert sizing["kv_bytes_per_token"] == 144 * 1024
    assert sizing["source"] == "known models table"


def test_quota_below_minimum_states_the_terms(tmp_path):
    tenant = t("companyA", "20G", 30001, model=QWEN8, max_model_len=262144)
    with pytest.raises(AnsibleFilterError) as excinfo:
        plan([tenant], gpus(A100_80), tmp_path)
    message = str(excinfo.value)
    assert "tenant 'companyA': field 'gpu_memory' has invalid value '20GiB'" in message
    assert (
        "20GiB is below the 55.7GiB minimum (weights 16.4GiB (the vision encoder's 1.1GiB of it)"
        " + KV for max_model_len 262144 = 36.0GiB"
        " + vision encoder for 16384 image tokens 1.8GiB + activations and CUDA graphs 0.7GiB"
        " + CUDA context 0.8GiB)" in message
    )
    assert "or lower max_model_len or concurrency or max_images, or quantize" in message


def test_six_bf16_qwen3_vl_8b_do_not_fit_one_a100(tmp_path):
    """The seed article's claim: six Qwen3-VL-8B tenants on one A100-80GB. Not in bf16."""
    tenants = [t(f"t{i}", "13G", 30001 + i, model=QWEN8, max_model_len=8192) for i in range(6)]
    with pytest.raises(AnsibleFilterError, match=r"below the .* minimum \(weights 16.4GiB"):
        plan(tenants, gpus(A100_80), tmp_path)


def test_quantization_shrinks_the_weights(tmp_path):
    bf16 = tenancy_sizing({"model": QWEN8, "max_model_len": 8192}, str(tmp_path))
    awq = tenancy_sizing({"model": QWEN8, "max_model_len": 8192, "quantization": "awq"}, str(tmp_path))
    vision = bf16["vision_weights_bytes"]
    # The vision tower stays in bf16; the rest is 4 bits.
    assert awq["weights_bytes"] - vision == pytest.approx((bf16["weights_bytes"] - vision) / 4, rel=0.01)
    assert awq["kv_bytes"] == bf16["kv_bytes"]


def test_concurrency_multiplies_the_kv_term(tmp_path):
    one = tenancy_sizing({"model": QWEN8, "max_model_len": 8192}, str(tmp_path))
    four = tenancy_sizing({"model": QWEN8, "max_model_len": 8192, "concurrency": 4}, str(tmp_path))
    assert four["kv_bytes"] == 4 * one["kv_bytes"]


def test_geometry_is_read_from_a_local_config(tmp_path):
    model = tmp_path / "mymodel"
    model.mkdir()
    config = {
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "hidden_size": 512,
        "torch_dtype": "bfloat16",
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 2_000_000_000}}))
    sizing = tenancy_sizing({"model": "mymodel", "max_model_len": 1000}, str(tmp_path))
    assert sizing["source"].endswith("mymodel/config.json")
    assert sizing["weights_bytes"] == 2_000_000_000
    assert sizing["kv_bytes_per_token"] == 4 * 2 * (512 // 8) * 2 * 2


def test_multimodal_config_uses_text_config(tmp_path):
    model = tmp_path / "vl"
    model.mkdir()
    text = {"num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128}
    (model / "config.json").write_text(json.dumps({"text_config": text, "torch_dtype": "bfloat16"}))
    assert tenancy_sizing({"model": "vl", "max_model_len": 1}, str(tmp_path))["kv_bytes_per_token"] == 147456


def test_unknown_model_is_not_sized(tmp_path):
    record = plan([t("a", "20G", 30001, model="acme/secret-model")], gpus(A100_80), tmp_path)[0]
    assert record["sizing"] == {"known": False, "source": "unknown"}


def test_cpu_quota_must_hold_the_kv_of_max_model_len(tmp_path):
    with pytest.raises(AnsibleFilterError, match=r"on a CPU host the quota is the KV cache, and 1GiB is below"):
        plan([t("a", "1G", 30001, max_model_len=2_000_000)], {}, tmp_path)


def test_every_known_model_has_full_geometry():
    for name, geometry in KNOWN_MODELS.items():
        assert {"params", "layers", "kv_heads", "head_dim", "dtype"} <= set(geometry), name


# --- MPS --------------------------------------------------------------------------------------


def test_mps_pins_device_memory_and_thread_share(tmp_path):
    record = plan([t("a", "20G", 30001, mps_thread_percentage=30)], gpus({**A100_80, "mode": "mps"}), tmp_path)[0]
    assert record["mode"] == "mps"
    # (20 GiB - the 0.75 GiB context term) / 80 GiB = 0.2406: vLLM's start-up check
    # (free >= fraction x total) passes under the MPS limit, where free = limit - context.
    assert record["gpu_memory_utilization"] == 0.24
    assert record["engine_env"]["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=20480M"
    assert record["engine_env"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "30"


# --- MIG --------------------------------------------------------------------------------------

MIG80 = {**A100_80, "mode": "mig"}


@pytest.mark.parametrize(
    ("quota", "profile"),
    [
        ("5G", "1g.10gb"),
        ("9G", "1g.10gb"),
        ("10G", "1g.20gb"),
        ("19G", "1g.20gb"),
        ("25G", "3g.40gb"),
        ("60G", "7g.80gb"),
    ],
)
def test_smallest_profile_that_fits(tmp_path, quota, profile):
    record = plan([t("a", quota, 30001)], gpus(MIG80), tmp_path)[0]
    assert (record["mode"], record["mig_profile"], record["mig_start"]) == ("mig", profile, 0)


@pytest.mark.parametrize(
    ("gpu", "names"),
    [
        (A100_80, ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]),
        (A100_40, ["1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]),
        (H100, ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]),
    ],
)
def test_profile_tables(gpu, names):
    from ansible_collections.tenancy.core.plugins.plugin_utils.common import parse_size

    assert [p.name for p in tenancy_mig.profiles(gpu["name"], parse_size(gpu["memory"], "x", "memory"))] == names


def test_seven_small_tenants_fill_an_a100_and_the_eighth_is_reported(tmp_path):
    tenants = [t(f"t{i}", "8G", 30001 + i) for i in range(8)]
    with pytest.raises(AnsibleFilterError) as excinfo:
        plan(tenants, gpus(MIG80), tmp_path)
    message = str(excinfo.value)
    assert "1 tenant(s) cannot be placed" in message
    assert "no legal start slice left for 1g.10gb on g1 gpu 0" in message


def test_allow_unplaced_deploys_the_rest(tmp_path):
    tenants = [t(f"t{i}", "8G", 30001 + i) for i in range(8)]
    records = plan(tenants, gpus(MIG80), tmp_path, allow_unplaced=True)
    states = [r["state"] for r in records]
    assert states.count("present") == 7 and states.count("unplaced") == 1
    starts = sorted(r["mig_start"] for r in records if r["state"] == "present")
    assert starts == [0, 1, 2, 3, 4, 5, 6]


def test_quota_above_the_largest_profile(tmp_path):
    with pytest.raises(AnsibleFilterError, match=r"more than the largest MIG profile 7g.80gb"):
        plan([t("a", "79.9G", 30001)], gpus(MIG80), tmp_path)


def test_forced_profile(tmp_path):
    record = plan([t("a", "10G", 30001, mig_profile="2g.20gb")], gpus(MIG80), tmp_path)[0]
    assert record["mig_profile"] == "2g.20gb"
    with pytest.raises(AnsibleFilterError, match=r"field 'mig_profile' has invalid value '9g.1gb'"):
        plan([t("a", "10G", 30001, mig_profile="9g.1gb")], gpus(MIG80), tmp_path)


def test_mig_utilization_is_of_the_instance(tmp_path):
    record = plan([t("a", "9G", 30001)], gpus(MIG80), tmp_path)[0]
    assert record["gpu_memory_utilization"] == 0.94  # 9 GiB of a 9.5 GiB instance, rounded down


def test_mig_needs_a_known_table(tmp_path):
    with pytest.raises(AnsibleFilterError, match=r"no MIG profile table for 'NVIDIA L4'") as excinfo:
        plan([t("a", "5G", 30001)], gpus({"index": 0, "name": "NVIDIA L4", "memory": "24GiB", "mode": "mig"}), tmp_path)
    # The message names every GPU that has a table (it once left out the H200's).
    assert str(excinfo.value).endswith("known: A100-40GB, A100-80GB, H100-80GB, H200-141GB")


def test_shared_first_then_mig_for_what_does_not_fit(tmp_path):
    hosts = gpus({**A100_80, "index": 0}, {**MIG80, "index": 1})
    records = {r["name"]: r for r in plan([t("big", "70G", 30001), t("small", "20G", 30002)], hosts, tmp_path)}
    assert (records["big"]["gpu"], records["big"]["mode"]) == (0, "shared")
    assert (records["small"]["gpu"], records["small"]["mode"], records["small"]["mig_profile"]) == (1, "mig", "3g.40gb")


# --- properties -------------------------------------------------------------------------------

PROFILES = tenancy_mig.profiles("NVIDIA A100-SXM4-80GB", 80 * GIB)
quotas = st.lists(st.sampled_from([4, 9, 12, 19, 25, 35, 39, 50, 79]), min_size=1, max_size=7)


def brute_force_max(profiles: list[tenancy_mig.Profile]) -> int:
    for size in range(len(profiles), 0, -1):
        for subset in itertools.combinations(profiles, size):
            if tenancy_mig.place(list(subset)) is not None:
                return size
    return 0


@settings(max_examples=150, deadline=None)
@given(quotas)
def test_mig_placement_is_legal_and_never_worse_than_brute_force(tmp_path_factory, quota_gib):
    tmp_path = tmp_path_factory.mktemp("models")
    tenants = [t(f"t{i}", f"{q}G", 30001 + i) for i, q in enumerate(quota_gib)]
    records = plan(tenants, gpus(MIG80), tmp_path, allow_unplaced=True)
    placed = [r for r in records if r["state"] == "present"]
    by_name = {p.name: p for p in PROFILES}
    assert tenancy_mig.is_legal([(by_name[r["mig_profile"]], r["mig_start"]) for r in placed])
    wanted = [tenancy_mig.smallest_fitting(PROFILES, q * GIB) for q in quota_gib]
    assert len(placed) == brute_force_max([p for p in wanted if p is not None])


@settings(max_examples=100, deadline=None)
# From 2 GiB: a GPU tenant's minimum is at least the reserve and the CUDA context (1.2 GiB).
@given(st.lists(st.tuples(st.integers(2, 70), st.booleans()), min_size=1, max_size=10))
def test_plans_are_deterministic_and_never_oversubscribe(tmp_path_factory, specs):
    tmp_path = tmp_path_factory.mktemp("models")
    hosts = gpus({**A100_80, "index": 0}, {**A100_80, "index": 1}, {**MIG80, "index": 2})
    tenants = [t(f"t{i}", f"{q}G", 30001 + i) for i, (q, _) in enumerate(specs)]
    try:
        first = plan(tenants, hosts, tmp_path, allow_unplaced=True)
    except AnsibleFilterError as exc:
        assert "fits on no GPU" in str(exc) or "more than the largest" in str(exc)
        return
    assert first == plan(list(reversed(tenants)), hosts, tmp_path, allow_unplaced=True)
    for index in (0, 1):
        used = sum(r["memory_bytes"] for r in first if r["gpu"] == index and r["state"] == "present")
        assert used <= 79 * GIB


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([4, 9, 12, 19, 25, 35, 39, 79]), min_size=1, max_size=16))
def test_unplaced_mig_tenants_really_fit_nowhere(tmp_path_factory, quota_gib):
    """Over several MIG GPUs: each GPU's layout is legal, and a tenant left out could not
    have been added to any GPU as the plan leaves it."""
    tmp_path = tmp_path_factory.mktemp("models")
    hosts = gpus(*({**MIG80, "index": i} for i in range(3)))
    records = plan(
        [t(f"t{i}", f"{q}G", 30001 + i) for i, q in enumerate(quota_gib)], hosts, tmp_path, allow_unplaced=True
    )
    by_name = {p.name: p for p in PROFILES}
    layouts = {
        i: [(by_name[r["mig_profile"]], r["mig_start"]) for r in records if r["gpu"] == i and r["state"] == "present"]
        for i in range(3)
    }
    assert all(tenancy_mig.is_legal(layout) for layout in layouts.values())
    for record in records:
        if record["state"] == "unplaced":
            wanted = tenancy_mig.smallest_fitting(PROFILES, record["memory_bytes"])
            for layout in layouts.values():
                assert tenancy_mig.place([p for p, _ in layout] + [wanted]) is None, record["unplaced_reason"]


def test_a_gpu_tenant_gets_an_absolute_kv_budget_of_what_its_quota_leaves(tmp_path):
    """--kv-cache-memory-bytes = quota - weights - the vision encoder's activations -
    activations/graphs - CUDA context, so the engine's footprint is its quota whatever
    torch reports as the GPU's total."""
    record = plan([t("companyA", "24G", 30001, model=QWEN8, max_model_len=8192)], gpus(A100_80), tmp_path)[0]
    sizing = record["sizing"]
    assert sizing["vision_activation_bytes"] > 0 and sizing["image_tokens"] == 8192
    expected = (
        24 * GIB
        - sizing["weights_bytes"]
        - sizing["vision_activation_bytes"]
        - sizing["reserve_bytes"]
        - sizing["context_bytes"]
    )
    args = record["engine_args"]
    assert args[args.index("--kv-cache-memory-bytes") + 1] == str(expected) == str(record["kv_cache_bytes"])
    assert record["kv_cache_bytes"] >= sizing["kv_bytes"], "the budget holds max_model_len x concurrency"
    assert "--gpu-memory-utilization" in args


def test_a_model_the_planner_cannot_size_keeps_the_fraction_alone(tmp_path):
    record = plan([t("companyA", "24G", 30001, model="someorg/unknown-model")], gpus(A100_80), tmp_path)[0]
    assert "--kv-cache-memory-bytes" not in record["engine_args"] and record["kv_cache_bytes"] is None


def test_a_duplicate_name_is_reported_even_when_the_gpu_is_full():
    # Three 30 GiB tenants do not fit one 40 GiB A100; the duplicate name is still what is reported.
    tenants = [t("companyA", "30G", 30001), t("companyB", "30G", 30002), t("companyA", "30G", 30003)]
    with pytest.raises(AnsibleFilterError, match="field 'name' has invalid value 'companyA': duplicate"):
        tenancy_plan(tenants, {"model": QWEN8}, gpus(A100_40))


# --- what a quota is made of, stated in the plan and in refusals ---------------------------


def test_a_gpu_tenants_quota_terms_add_up_to_its_quota_and_the_plan_table_shows_them(tmp_path):
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import quota_terms
    from tenancy_plan_table import tenancy_plan_table

    (record,) = plan([t("companyA", "26G", 30001, model=QWEN8, max_model_len=8192)], gpus(A100_80), tmp_path)
    sizing = record["sizing"]
    parts = ("weights_bytes", "vision_activation_bytes", "reserve_bytes", "context_bytes")
    assert sum(sizing[p] for p in parts) + record["kv_cache_bytes"] == record["memory_bytes"]
    said = quota_terms(record)
    assert said.startswith(
        "quota 26.0GiB = weights 16.4GiB (the vision encoder's 1.1GiB of it) + vision encoder activations "
    )
    assert said.endswith(
        " + activations and CUDA graphs 0.7GiB + CUDA context 0.8GiB + KV cache "
        f"{record['kv_cache_bytes'] / GIB:.1f}GiB (--kv-cache-memory-bytes)"
    )
    lines = tenancy_plan_table([record])
    assert "KV CACHE" in lines[0]
    assert f"companyA: {said}" in lines
    assert lines[-1].startswith("Each GPU keeps 1GiB outside every quota")


def test_a_cpu_plan_states_no_gpu_terms(tmp_path):
    from tenancy_plan_table import tenancy_plan_table

    lines = tenancy_plan_table(plan([t("a", "1G", 30001)], {"h": {"tenancy_cpus": 2}}, tmp_path))
    assert len(lines) == 2


def test_a_quota_that_leaves_vllm_under_one_percent_says_why_in_gib(tmp_path):
    """The CUDA context term comes off the quota before vLLM's fraction: 1GiB on an 80GiB
    GPU is 1.25 % of it, but only 0.25GiB (0.31 %) is left for vLLM."""
    with pytest.raises(AnsibleFilterError) as excinfo:
        plan([t("a", "1G", 30001, model="unknown-local-model")], gpus(A100_80), tmp_path)
    message = str(excinfo.value)
    assert "tenant 'a': field 'gpu_memory' has invalid value '1GiB': less the CUDA context term 0.8GiB," in message
    assert "1GiB leaves 0.2GiB for vLLM, under 1% of the GPU's memory" in message
    assert "--gpu-memory-utilization (rounded down to a hundredth) must be at least 0.01; raise gpu_memory" in message


def test_a_tenant_that_fits_no_gpu_is_told_about_the_per_gpu_reserve(tmp_path):
    with pytest.raises(AnsibleFilterError) as excinfo:
        plan([t("a", "40G", 30001), t("b", "40G", 30002)], gpus(A100_80), tmp_path)
    assert "usable 79GiB after the 1GiB per-GPU reserve" in str(excinfo.value)


def test_the_under_one_percent_refusal_of_a_mig_tenant_names_its_instance():
    from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import check_minimum

    tenant = {"name": "m", "gpu_memory": 64 * 1024**2, "max_model_len": 512, "concurrency": 1}
    with pytest.raises(AnsibleFilterError) as excinfo:
        check_minimum(tenant, {"known": False}, True, 0.0, "1g.10gb")
    assert "invalid value '64MiB': is under 1% of its MIG instance (1g.10gb)" in str(excinfo.value)
