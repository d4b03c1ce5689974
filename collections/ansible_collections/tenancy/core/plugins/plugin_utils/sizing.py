"""Memory sizing of a vLLM tenant: weights + KV cache + reserve.

The planner (``tenancy_plan``) refuses a quota below the minimum this module computes,
and says which term is too big. Model geometry comes from the model's own
``config.json`` when the model is on the controller's disk (the demo, or a host that is
also the controller), else from ``KNOWN_MODELS`` below.

The KV term uses the per-token size vLLM allocates:
``num_hidden_layers x num_key_value_heads x head_dim x 2 (K and V) x bytes per element``
(config fields of ``text_config`` for multimodal models). For Qwen3-VL-8B in bf16 that is
36 x 8 x 128 x 2 x 2 = 147456 bytes = 144 KiB per token.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import adapters
from ansible_collections.tenancy.core.plugins.plugin_utils.common import field_error, format_bytes, gib

GIB = 1024**3


# Activations, the sampler and CUDA graph buffers on a GPU: a fixed allowance on top of
# weights and KV cache. vLLM's own start-up profile measures the real peak; this constant
# only has to make the plan refuse quotas that cannot possibly work.
RESERVE_BYTES = int(0.7 * GIB)


# The CUDA context every engine process holds on its GPU (driver state, loaded kernels,
# cuBLAS handles) outside what torch allocates. vLLM does not count it in the budget it
# derives from --gpu-memory-utilization, so the quota has to hold it. Measured by `make
# device-check` on an NVIDIA H200 (driver 580.159.04, torch 2.11.0, CUDA 13.0,
# 2026-11-30; docs/benchmarks.md, "GPU memory on a real H200"): 610 MiB for the bare
# context, 676 MiB once cuBLAS has run, constant from then on (1, 4 and 23.5 GiB
# allocated). 768 MiB leaves 92 MiB for the kernels vLLM loads later (attention,
# sampler, Triton); vLLM's own figure under load is what tests/gpu checks on a full host.
CONTEXT_BYTES = 768 * 1024**2


# The largest image a Qwen3-VL processor lets through, in tokens after the patch merger:
# its preprocessor_config.json's size.longest_edge, 16,777,216 pixels, over one merged
# patch (2 x 16 pixels square). A prompt's images also fit its context.
MAX_IMAGE_TOKENS_DEFAULT = 16_777_216 // (2 * 16) ** 2


DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "bf16": 2, "fp16": 2}


# The one table of quantization methods: vLLM's --quantization choices
# (vllm/model_executor/layers/quantization/__init__.py, QuantizationMethods) that the
# planner accepts, each with the bytes per weight parameter it sizes (scales and zero
# points, a few percent, are ignored). None: the bits depend on the method's own config
# (ipex, torchao), so the weights are sized at the model's dtype, an upper bound.
QUANTIZATION_BYTES: dict[str, float | None] = {
    "aqlm": 0.25,
    "awq": 0.5,
    "awq_marlin": 0.5,
    "bitblas": 0.5,
    "bitsandbytes": 0.5,
    "gguf": 0.5,
    "gptq": 0.5,
    "gptq_bitblas": 0.5,
    "gptq_marlin": 0.5,
    "gptq_marlin_24": 0.5,
    "hqq": 0.5,
    "marlin": 0.5,
    "moe_wna16": 0.5,
    "mxfp4": 0.5,
    "modelopt_fp4": 0.5,
    "qqq": 0.5,
    "compressed-tensors": 1,
    "deepspeedfp": 1,
    "experts_int8": 1,
    "fbgemm_fp8": 1,
    "fp8": 1,
    "modelopt": 1,
    "ptpc_fp8": 1,
    "tpu_int8": 1,
    "ipex": None,
    "torchao": None,
}


# Geometry of models that may not be on the controller's disk. Keys are the repo name
# without organisation, lower case, without an -Instruct/-Thinking suffix.
# Sources: each model's config.json on the Hugging Face Hub (text_config for Qwen3-VL:
# num_hidden_layers, num_key_value_heads, head_dim); parameter counts from the model cards.
# "vision": the model takes images (its config.json has a vision_config); "tower": that
# vision_config's hidden_size, intermediate_size, out_hidden_size, patch_size,
# spatial_merge_size, the number of deepstack_visual_indexes, depth and
# num_position_embeddings.
QWEN3_VL_TOWER_4B = {
    "hidden": 1024,
    "intermediate": 4096,
    "out": 2560,
    "patch": 16,
    "merge": 2,
    "deepstack": 3,
    "depth": 24,
    "positions": 2304,
}


QWEN3_VL_TOWER_8B = {
    "hidden": 1152,
    "intermediate": 4304,
    "out": 4096,
    "patch": 16,
    "merge": 2,
    "deepstack": 3,
    "depth": 27,
    "positions": 2304,
}


QWEN3_VL_TOWER_30B = {**QWEN3_VL_TOWER_8B, "out": 2048}


KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "qwen3-vl-4b": {
        "params": 4.8e9,
        "hidden": 2560,
        "intermediate": 9728,
        "heads": 32,
        "layers": 36,
        "kv_heads": 8,
        "head_dim": 128,
        "dtype": "bfloat16",
        "vision": True,
        "tower": QWEN3_VL_TOWER_4B,
    },
    "qwen3-vl-8b": {
        "params": 8.8e9,
        "hidden": 4096,
        "intermediate": 12288,
        "heads": 32,
        "layers": 36,
        "kv_heads": 8,
        "head_dim": 128,
        "dtype": "bfloat16",
        "vision": True,
        "tower": QWEN3_VL_TOWER_8B,
    },
    "qwen3-vl-30b-a3b": {
        "params": 31e9,
        "layers": 48,
        "kv_heads": 4,
        "head_dim": 128,
        "dtype": "bfloat16",
        "vision": True,
        "tower": QWEN3_VL_TOWER_30B,
    },
    # The demo models made by roles/images/files/model/make_tiny_model.py.
    "tiny-qwen3": {
        "params": 361_536,
        "hidden": 64,
        "intermediate": 128,
        "heads": 4,
        "layers": 2,
        "kv_heads": 2,
        "head_dim": 32,
        "dtype": "float32",
        "vision": False,
    },
    "tiny-qwen3-vl": {
        "params": 460_640,
        "hidden": 64,
        "intermediate": 128,
        "heads": 2,
        "layers": 2,
        "kv_heads": 1,
        "head_dim": 32,
        "dtype": "float32",
        "vision": True,
        "tower": {
            "hidden": 32,
            "intermediate": 64,
            "out": 64,
            "patch": 16,
            "merge": 2,
            "deepstack": 1,
            "depth": 2,
            "positions": 256,
        },
    },
}


# A pre-quantized checkpoint recognised by its Hub repo name, for when its config.json is
# not on the controller: Qwen publishes -FP8 checkpoints of Qwen3-VL, the community -AWQ
# (4-bit) ones. A local config.json's quantization_config always wins over the name.
NAME_QUANTIZATION = {"-fp8": {"method": "fp8", "bits": 8}, "-awq": {"method": "awq", "bits": 4}}


def _split_name(model: str) -> tuple[str, dict[str, Any]]:
    """(known-models key, quantization its name announces or {})."""
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    quantization: dict[str, Any] = {}
    for suffix, announced in NAME_QUANTIZATION.items():
        if name.endswith(suffix):
            name, quantization = name.removesuffix(suffix), dict(announced)
    for suffix in ("-instruct", "-thinking"):
        name = name.removesuffix(suffix)
    return name, quantization


def known_model_key(model: str) -> str:
    return _split_name(model)[0]


def quantization_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """{"method", "bits"} from a config.json's quantization_config, {} when it has none.
    bits: the weights' bits (AWQ/GPTQ "bits" or "w_bit", compressed-tensors' first
    config group, 8 for fp8), or None when the config does not say."""
    qc = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    if not isinstance(qc, Mapping):
        return {}
    method = str(qc.get("quant_method") or "unknown").lower()
    bits = qc.get("bits") or qc.get("w_bit")
    if bits is None:
        for group in (qc.get("config_groups") or {}).values():
            bits = ((group or {}).get("weights") or {}).get("num_bits")
            if bits:
                break
    if bits is None and "fp8" in method:
        bits = 8
    return {"method": method, "bits": int(bits) if bits else None}


def _hf_snapshot(models_dir: Path, repo: str) -> Path | None:
    snapshots = models_dir / ".hf" / "hub" / ("models--" + repo.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted(p for p in snapshots.iterdir() if (p / "config.json").is_file())
    return candidates[-1] if candidates else None


def model_dir(model: str, models_dir: str | Path) -> Path | None:
    """The local directory of a model (a models-dir entry or a Hub snapshot), if present."""
    if model.startswith("/"):
        # A private model: its directory on the controller (tenant field model_private).
        return Path(model) if (Path(model) / "config.json").is_file() else None
    root = Path(models_dir)
    local = root / model
    if "/" not in model and (local / "config.json").is_file():
        return local
    if "/" in model:
        return _hf_snapshot(root, model)
    return None


def _stored_weight_bytes(directory: Path) -> int | None:
    """Total size of the safetensors weights, from the index or the single file."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        if isinstance(total, int) and total > 0:
            return total
    single = directory / "model.safetensors"
    if single.is_file():
        return single.stat().st_size
    return None


def tower_from_config(vision: Any) -> dict[str, int] | None:
    """The vision tower's sizes from a config.json's vision_config (None without one)."""
    if not isinstance(vision, Mapping) or "hidden_size" not in vision:
        return None
    hidden = int(vision["hidden_size"])
    return {
        "hidden": hidden,
        "intermediate": int(vision.get("intermediate_size") or 4 * hidden),
        "out": int(vision.get("out_hidden_size") or hidden),
        "patch": int(vision.get("patch_size") or 14),
        "merge": int(vision.get("spatial_merge_size") or 1),
        "deepstack": len(vision.get("deepstack_visual_indexes") or []),
        "depth": int(vision.get("depth") or vision.get("num_hidden_layers") or 0),
        "positions": int(vision.get("num_position_embeddings") or 0),
        "channels": int(vision.get("in_channels") or 3),
        "temporal": int(vision.get("temporal_patch_size") or 2),
    }


def tower_params(tower: Mapping[str, int] | None) -> int:
    """The vision encoder's parameters (Qwen3-VL's layout): ``depth`` blocks (qkv, proj,
    a two-layer MLP, two norms), the patch embedding (channels x temporal x patch^2 per
    hidden unit), the position embedding, the patch merger and one merger per deepstack
    layer (a norm, hidden x merge^2 squared, then to out_hidden). Exact for the demo's
    tiny model (124,320, counted from its safetensors); 0 when the depth is unknown."""
    if not tower or not tower.get("depth"):
        return 0
    h, i, out = tower["hidden"], tower["intermediate"], tower["out"]
    merged = h * tower["merge"] ** 2
    block = 4 * h * h + 2 * h * i + 9 * h + i
    patch = tower.get("channels", 3) * tower.get("temporal", 2) * tower["patch"] ** 2 * h + h
    positions = tower.get("positions", 0) * h
    merger = merged * merged + merged + merged * out + out
    return tower["depth"] * block + patch + positions + (merger + 2 * h) + tower["deepstack"] * (merger + 2 * merged)


def vision_activation_bytes(tower: Mapping[str, int] | None, image_tokens: int, dtype_bytes: int) -> int:
    """The vision encoder's activation peak for `image_tokens` image tokens (after the patch
    merger) in one pass: the widest layer's live tensors for every patch, input, norm and
    either q, k, v and the attention output (6 x hidden) or the MLP's two intermediate
    tensors (2 x hidden + 2 x intermediate), plus the merged output and the deepstack
    features kept for the language model. Flash or memory-efficient attention keeps no
    patches x patches matrix. A floor like the rest: vLLM's start-up profile measures the
    real peak."""
    if not tower or image_tokens <= 0:
        return 0
    patches = image_tokens * tower["merge"] ** 2
    widest = max(6 * tower["hidden"], 2 * tower["hidden"] + 2 * tower["intermediate"])
    kept = (1 + tower["deepstack"]) * image_tokens * tower["out"]
    return (patches * widest + kept) * dtype_bytes


def geometry_from_config(directory: Path) -> dict[str, Any]:
    """Layers, KV heads, head_dim, dtype and parameter count from a local model."""
    config = json.loads((directory / "config.json").read_text())
    text = config.get("text_config") or config
    heads = text["num_attention_heads"]
    dtype = text.get("torch_dtype") or config.get("torch_dtype") or text.get("dtype") or config.get("dtype")
    dtype = str(dtype or "bfloat16").removeprefix("torch.")
    geometry = {
        "layers": text["num_hidden_layers"],
        "kv_heads": text.get("num_key_value_heads") or heads,
        "head_dim": text.get("head_dim") or text["hidden_size"] // heads,
        "dtype": dtype,
        "params": None,
        "vision": "vision_config" in config,
        "tower": tower_from_config(config.get("vision_config")),
        "quantization": quantization_from_config(config),
        "stored_bytes": _stored_weight_bytes(directory),
        # The linear layers' widths, for the LoRA slots vLLM allocates (adapters.lora_bytes);
        # left out for mixture-of-experts models, whose expert layers differ.
        **(
            {"hidden": text["hidden_size"], "intermediate": text["intermediate_size"], "heads": heads}
            if not text.get("num_experts") and "hidden_size" in text and "intermediate_size" in text
            else {}
        ),
    }
    if geometry["stored_bytes"] is not None and not geometry["quantization"]:
        geometry["params"] = geometry["stored_bytes"] / DTYPE_BYTES.get(dtype, 2)
    return geometry


@functools.lru_cache(maxsize=64)
def _cached_geometry(directory: str, _mtime_ns: int) -> dict[str, Any]:
    return geometry_from_config(Path(directory))


def model_geometry(model: str, models_dir: str | Path) -> tuple[dict[str, Any] | None, str]:
    """(geometry, source) for a model; geometry is None when nothing is known."""
    directory = model_dir(model, models_dir)
    if directory is not None:
        try:
            config = directory / "config.json"
            # The planner asks about each model three times (images, quantization, size):
            # read its files once per change of config.json.
            geometry = dict(_cached_geometry(str(directory), config.stat().st_mtime_ns))
        except (OSError, ValueError, KeyError) as exc:
            raise AnsibleFilterError(f"model {model!r}: cannot read {directory / 'config.json'}: {exc}") from exc
        key, _ = _split_name(model)
        known = KNOWN_MODELS.get(key)
        if geometry["params"] is None and known:
            geometry["params"] = known["params"]
        return geometry, str(directory / "config.json")
    key, announced = _split_name(model)
    known = KNOWN_MODELS.get(key)
    if known:
        return {**known, "quantization": announced, "stored_bytes": None}, "known models table"
    return None, "unknown"


def checkpoint_quantization(model: str, models_dir: str | Path) -> dict[str, Any] | None:
    """How the checkpoint itself is quantized: {"method", "bits"}, {} when it is not,
    None when nothing is known about the model."""
    geometry, _ = model_geometry(model, models_dir)
    return None if geometry is None else geometry["quantization"]


def takes_images(model: str, models_dir: str | Path) -> bool | None:
    """Whether a model takes images (it has a vision tower); None when nothing is known."""
    geometry, _ = model_geometry(model, models_dir)
    return None if geometry is None else bool(geometry.get("vision"))


def tenancy_sizing(tenant: Mapping[str, Any], models_dir: str = "/var/lib/tenancy/models") -> dict[str, Any]:
    """Weights, KV cache and reserve of one tenant, and their sum."""
    geometry, source = model_geometry(tenant["model"], models_dir)
    if geometry is None:
        return {"known": False, "source": source}
    dtype_bytes = DTYPE_BYTES.get(geometry["dtype"], 2)
    quantization = tenant.get("quantization")
    stored = geometry["quantization"]
    # The vision encoder's weights are part of the model's: counted in weights_bytes, and
    # stated apart. Quantized checkpoints of vision-language models keep the vision
    # tower in the model's dtype (AWQ/GPTQ/FP8 checkpoints list it among the modules not
    # to convert), so only the rest is sized at the quantized width.
    vision_params = min(tower_params(geometry.get("tower")), geometry["params"] or 0)
    vision_weights = math.ceil(vision_params * dtype_bytes)
    rest = (geometry["params"] or 0) - vision_params
    if stored and geometry.get("stored_bytes"):
        # A pre-quantized checkpoint on disk: its weights take what its files take.
        weights = geometry["stored_bytes"]
    elif stored and stored.get("bits"):
        weights = math.ceil(rest * stored["bits"] / 8) + vision_weights
    else:
        quantized = QUANTIZATION_BYTES.get(quantization) if quantization else None
        weight_bytes_per_param = dtype_bytes if quantized is None else quantized
        weights = math.ceil(rest * weight_bytes_per_param) + vision_weights
    per_token = geometry["layers"] * geometry["kv_heads"] * geometry["head_dim"] * 2 * dtype_bytes
    tokens = int(tenant["max_model_len"]) * int(tenant.get("concurrency") or 1)
    kv = per_token * tokens
    # The largest prompt's images: max_images of the largest image, within the context.
    images = tenant.get("max_images")
    images = (1 if geometry.get("vision") else 0) if images is None else int(images)
    image_tokens = min(images * MAX_IMAGE_TOKENS_DEFAULT, int(tenant["max_model_len"]))
    vision = vision_activation_bytes(geometry.get("tower"), image_tokens, dtype_bytes)
    lora = adapters.lora_bytes([a for a in tenant.get("adapters") or [] if "rank" in a], geometry, dtype_bytes)
    return {
        "known": True,
        "source": source,
        "weights_bytes": weights,
        "vision_weights_bytes": vision_weights,
        "kv_bytes_per_token": per_token,
        "kv_bytes": kv,
        "vision_activation_bytes": vision,
        "image_tokens": image_tokens if vision else 0,
        "reserve_bytes": RESERVE_BYTES,
        "context_bytes": CONTEXT_BYTES,
        "lora_bytes": lora,
        "minimum_bytes": weights + kv + vision + lora + RESERVE_BYTES + CONTEXT_BYTES,
    }


def check_minimum(
    tenant: Mapping[str, Any],
    sizing: Mapping[str, Any],
    on_gpu: bool,
    fraction: float | None = None,
    mig_profile: str | None = None,
) -> None:
    """Refuse a quota below what the model needs, naming the term that is too big; on a
    CPU host one below 1 GiB (the KV cache is set in whole GiB); on a GPU one whose
    --gpu-memory-utilization (`fraction`) would be below 0.01."""
    quota = tenant["gpu_memory"]
    if not on_gpu and quota < GIB:
        raise field_error(
            tenant["name"],
            "gpu_memory",
            format_bytes(quota),
            "is below 1GiB; on a CPU host the quota is the KV cache size in whole GiB",
        )
    if on_gpu and fraction is not None and fraction < 0.01 and mig_profile:
        raise field_error(
            tenant["name"],
            "gpu_memory",
            format_bytes(quota),
            f"is under 1% of its MIG instance ({mig_profile}), and vLLM's --gpu-memory-utilization (rounded down "
            "to a hundredth) must be at least 0.01; raise gpu_memory",
        )
    if on_gpu and fraction is not None and fraction < 0.01:
        raise field_error(
            tenant["name"],
            "gpu_memory",
            format_bytes(quota),
            f"less the CUDA context term {gib(CONTEXT_BYTES)}, {format_bytes(quota)} leaves "
            f"{gib(max(quota - CONTEXT_BYTES, 0))} for vLLM, under 1% of the GPU's memory, and vLLM's "
            "--gpu-memory-utilization (rounded down to a hundredth) must be at least 0.01; raise gpu_memory",
        )
    if not sizing["known"]:
        return
    tokens = f"max_model_len {tenant['max_model_len']}"
    if tenant["concurrency"] > 1:
        tokens += f" x concurrency {tenant['concurrency']}"
    vision = fewer_images = vision_weights = ""
    if sizing.get("vision_weights_bytes"):
        vision_weights = f" (the vision encoder's {gib(sizing['vision_weights_bytes'])} of it)"
    if sizing.get("vision_activation_bytes"):
        vision = f" + vision encoder for {sizing['image_tokens']} image tokens {gib(sizing['vision_activation_bytes'])}"
        fewer_images = " or max_images"
    if sizing.get("lora_bytes"):
        vision += f" + LoRA adapters {gib(sizing['lora_bytes'])}"
        fewer_images += " or adapters"
    if on_gpu and quota < sizing["minimum_bytes"]:
        raise field_error(
            tenant["name"],
            "gpu_memory",
            format_bytes(tenant["gpu_memory"]),
            f"{format_bytes(quota)} is below the {gib(sizing['minimum_bytes'])} minimum "
            f"(weights {gib(sizing['weights_bytes'])}{vision_weights} + KV for {tokens} = "
            f"{gib(sizing['kv_bytes'])}{vision} + activations and CUDA graphs {gib(sizing['reserve_bytes'])} "
            f"+ CUDA context {gib(sizing['context_bytes'])}); "
            f"raise gpu_memory, or lower max_model_len or concurrency{fewer_images}, or quantize",
        )
    if not on_gpu and quota < sizing["kv_bytes"]:
        raise field_error(
            tenant["name"],
            "gpu_memory",
            format_bytes(tenant["gpu_memory"]),
            f"on a CPU host the quota is the KV cache, and {format_bytes(quota)} is below the "
            f"{gib(sizing['kv_bytes'])} that {tokens} needs "
            f"({sizing['kv_bytes_per_token']} bytes per token); raise gpu_memory or lower max_model_len",
        )


def quota_terms(record: Mapping[str, Any]) -> str | None:
    """What a GPU tenant's quota is made of, as the plan and tests/gpu state it:
    ``quota = weights + vision encoder + activations and CUDA graphs + CUDA context + KV
    cache``. None for a CPU tenant, an unplaced one, or a model the planner cannot size
    (vLLM then gets the fraction alone)."""
    sizing = record.get("sizing") or {}
    if record.get("gpu") is None or not sizing.get("known") or record.get("kv_cache_bytes") is None:
        return None
    terms = [f"weights {gib(sizing['weights_bytes'])}"]
    if sizing.get("vision_weights_bytes"):
        terms[0] += f" (the vision encoder's {gib(sizing['vision_weights_bytes'])} of it)"
    if sizing.get("vision_activation_bytes"):
        terms.append(f"vision encoder activations {gib(sizing['vision_activation_bytes'])}")
    if sizing.get("lora_bytes"):
        terms.append(f"LoRA adapters {gib(sizing['lora_bytes'])}")
    terms += [
        f"activations and CUDA graphs {gib(sizing['reserve_bytes'])}",
        f"CUDA context {gib(sizing['context_bytes'])}",
        f"KV cache {gib(record['kv_cache_bytes'])} (--kv-cache-memory-bytes)",
    ]
    return f"quota {gib(record['memory_bytes'])} = " + " + ".join(terms)
