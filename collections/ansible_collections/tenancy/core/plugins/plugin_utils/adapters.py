"""A tenant's LoRA adapters (tenant field ``adapters``): checked on the controller
before anything changes, served by the tenant's own engine only.

Each adapter is a PEFT directory on the controller (``adapter_config.json`` and
``adapter_model.safetensors`` or ``.bin``). The tenant role copies it onto the tenant's
own volume (``/data/adapters/<name>``, the tenant's uid, crypto-erased with the volume),
and the engine serves it with ``--enable-lora --lora-modules name=path``: a request's
``model`` may name it. No other engine loads it, so another tenant's engine answers that
name with a 404. Runtime loading (``/v1/load_lora_adapter``) stays off, and the gateway
refuses its routes as well.

The planner refuses, naming the tenant, the field and the value: a name that is not a
plain name or repeats the model's; a path it cannot read or that holds no adapter; an
adapter trained on another base model; a rank above vLLM's largest ``--max-lora-rank``;
weights whose shapes do not match the rank or the model. The adapters' GPU memory (the
slots vLLM allocates for them) counts in the tenant's quota (``lora_bytes``).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils import tls
from ansible_collections.tenancy.core.plugins.plugin_utils.common import field_error
from ansible_collections.tenancy.core.plugins.plugin_utils.files import listing

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# vLLM's LoRAConfig.max_lora_rank (MaxLoRARanks): --max-lora-rank takes only these.
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# Where the tenant role puts the adapters, under the engine's /data (the tenant's volume).
SUBDIR = "adapters"


def validate(value: Any, tenant: str) -> list[dict[str, str]]:
    """The field's shape: a list of {name, path}, names unique."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise field_error(tenant, "adapters", value, "expected a list of {name, path} (a PEFT LoRA directory)")
    out: list[dict[str, str]] = []
    for entry in value:
        if not isinstance(entry, Mapping) or set(entry) != {"name", "path"}:
            raise field_error(tenant, "adapters", entry, "each adapter is a mapping of exactly name and path")
        name, path = entry["name"], entry["path"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise field_error(tenant, "adapters", name, "an adapter's name must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}")
        if not isinstance(path, str) or not path:
            raise field_error(tenant, "adapters", entry, "an adapter's path is a directory on the controller")
        if any(a["name"].lower() == name.lower() for a in out):
            raise field_error(
                tenant, "adapters", name, "names the same adapter twice (names are unique, ignoring case)"
            )
        out.append({"name": name, "path": path})
    return out


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, from a safetensors file's header (8-byte length, JSON)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > 100 * 1024**2:
            raise ValueError(f"header of {length} bytes")
        header = json.loads(handle.read(length))
    return {name: info["shape"] for name, info in header.items() if name != "__metadata__"}


def base_matches(base: str, model: str) -> bool:
    """Whether an adapter's base_model_name_or_path names the tenant's model: the same
    id, or a path or id whose last part is the model's (adapters trained on a local copy
    record its path: /models/tiny-qwen3, /home/x/Qwen3-VL-8B-Instruct)."""
    base = base.rstrip("/")
    return base == model or base.rsplit("/", 1)[-1] == model.rsplit("/", 1)[-1]


def model_in_dims(geometry: Mapping[str, Any] | None) -> set[int] | None:
    """The input widths of the model's LoRA-able linear layers, when its geometry is known."""
    if not geometry or not geometry.get("hidden"):
        return None
    return {geometry["hidden"], geometry["heads"] * geometry["head_dim"], geometry["intermediate"]}


def read(tenant: dict[str, Any], base_dir: str, geometry: Mapping[str, Any] | None) -> None:
    """Resolve and check the tenant's adapters (in place): each gets its absolute
    ``path``, its ``rank``, its ``base`` and its ``files`` (name, bytes, sha256)."""
    name = tenant["name"]
    dims = model_in_dims(geometry)
    for adapter in tenant["adapters"]:
        label = adapter["name"]
        directory = Path(tls.resolve(adapter["path"], base_dir))
        config_path = directory / CONFIG_FILE
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise field_error(
                name, "adapters", adapter["path"], f"adapter {label!r}: cannot read {config_path}: {exc}"
            ) from exc
        weights = next((directory / f for f in WEIGHT_FILES if (directory / f).is_file()), None)
        if weights is None:
            raise field_error(
                name, "adapters", adapter["path"], f"adapter {label!r}: {directory} has no {' or '.join(WEIGHT_FILES)}"
            )
        if str(config.get("peft_type", "LORA")).upper() != "LORA":
            raise field_error(
                name, "adapters", label, f"is a {config.get('peft_type')} adapter; vLLM serves LoRA adapters only"
            )
        rank = config.get("r")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise field_error(name, "adapters", label, f"its adapter_config.json has no rank r (got {rank!r})")
        if rank > MAX_LORA_RANKS[-1]:
            raise field_error(
                name, "adapters", label, f"has rank {rank}, above vLLM's largest --max-lora-rank {MAX_LORA_RANKS[-1]}"
            )
        base = config.get("base_model_name_or_path")
        if not isinstance(base, str) or not base_matches(base, tenant["model"]):
            raise field_error(
                name,
                "adapters",
                label,
                f"was trained on {base!r} (base_model_name_or_path in {CONFIG_FILE}), not on this tenant's model "
                f"{tenant['model']!r}",
            )
        if weights.suffix == ".safetensors":
            try:
                shapes = _safetensors_shapes(weights)
            except (OSError, ValueError, KeyError, struct.error) as exc:
                raise field_error(name, "adapters", label, f"cannot read {weights}: {exc}") from exc
            for tensor, shape in sorted(shapes.items()):
                if ".lora_A." not in tensor:
                    continue
                if len(shape) != 2 or shape[0] != rank:
                    raise field_error(
                        name, "adapters", label, f"{tensor} has shape {shape}, not [{rank}, in] for its rank {rank}"
                    )
                if dims is not None and shape[1] not in dims:
                    raise field_error(
                        name,
                        "adapters",
                        label,
                        f"{tensor} takes {shape[1]} inputs, which no layer of {tenant['model']!r} has "
                        f"({', '.join(str(d) for d in sorted(dims))})",
                    )
        files = listing(directory, name, "adapters", label, flat=True)
        adapter.update({"path": str(directory), "rank": rank, "base": base, "files": files})


def max_rank(adapters: list[Mapping[str, Any]]) -> int:
    """vLLM's --max-lora-rank for these adapters: the smallest it takes that holds them all."""
    largest = max(a["rank"] for a in adapters)
    return next(r for r in MAX_LORA_RANKS if r >= largest)


def lora_bytes(adapters: list[Mapping[str, Any]], geometry: Mapping[str, Any] | None, dtype_bytes: int) -> int:
    """The memory vLLM allocates for the adapters: max_loras (one slot each) x
    max_lora_rank x, per layer, (in + out) of every LoRA-able linear layer (qkv, o,
    gate_up, down: vLLM allocates A and B for all of them, whichever an adapter targets)
    at the model's dtype. Without the model's widths (a model of the known-models table
    without them): each adapter's own weights scaled to max_lora_rank, a lower bound."""
    if not adapters:
        return 0
    rank = max_rank(adapters)
    if geometry and geometry.get("hidden"):
        hidden, inter = geometry["hidden"], geometry["intermediate"]
        q, kv = geometry["heads"] * geometry["head_dim"], geometry["kv_heads"] * geometry["head_dim"]
        per_rank = (hidden + q + 2 * kv) + (q + hidden) + (hidden + 2 * inter) + (inter + hidden)
        return len(adapters) * rank * geometry["layers"] * per_rank * dtype_bytes
    weights = [sum(f["bytes"] for f in a["files"] if f["name"] in WEIGHT_FILES) * rank // a["rank"] for a in adapters]
    return len(adapters) * max(weights)


def engine_args(adapters: list[Mapping[str, Any]], data_mount: str) -> list[str]:
    """vllm serve's LoRA arguments: every adapter loaded at start (runtime loading stays
    off), as many in one batch as there are adapters."""
    if not adapters:
        return []
    modules = [f"{a['name']}={data_mount}/{SUBDIR}/{a['name']}" for a in adapters]
    return [
        "--enable-lora",
        "--max-loras",
        str(len(adapters)),
        "--max-lora-rank",
        str(max_rank(adapters)),
        "--lora-modules",
        *modules,
    ]
