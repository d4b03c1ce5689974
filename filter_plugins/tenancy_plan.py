"""Tenant spec validation and planning: the only place that decides anything.

Every playbook runs the tenants spec through ``tenancy_plan`` before any host is
touched. The filter normalises the spec (list, JSON, or the compact
``name:gpu_memory:port`` string), validates every field, derives the names of each
tenant's Docker objects and builds the engine arguments. Roles take these values
from the plan and never re-derive them.

The logic lives in module-level functions so that pytest can call them directly;
``FilterModule.filters()`` only maps names to them.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.formatters import human_to_bytes

# The planner's other parts are filter plugins of their own beside this file (each is
# also usable on its own); make them importable however Ansible loaded this one.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tenancy_mig
import tenancy_sizing

DOCUMENTATION = r"""
name: tenancy_plan
short_description: Validate a tenants spec and turn it into a per-tenant plan
version_added: "0.1.0"
description:
  - Normalises the C(tenants) input, applies defaults, validates every field and
    returns one plan record per tenant (names, ports, engine arguments, limits).
  - Any error raises C(AnsibleFilterError) naming the tenant, the field and the
    value, so a playbook fails before a host changes.
  - Sizes accept C(10G), C(10GiB), C(10240M) and plain bytes; G means GiB (1024^3).
positional: >-
  _input, defaults, hosts, overrides, models_dir, allow_unplaced, models_mount, placement,
  cpu_oversubscribe, metrics_port_offset
options:
  _input:
    description:
      - The tenants spec, a list of mappings, or the compact string
        C(name:gpu_memory:port[,name:gpu_memory:port...]).
    type: raw
    required: true
  defaults:
    description: Values applied to every tenant that does not set them itself.
    type: dict
    default: {}
  overrides:
    description:
      - Values forced onto every tenant, over the tenant's own fields (an emergency rate
        cut, or a benchmark that needs a higher rpm_limit).
    type: dict
    default: {}
  models_dir:
    description: Directory (on the controller) where local models' config.json is read for sizing.
    type: str
    default: /var/lib/tenancy/models
  allow_unplaced:
    description:
      - When false, a tenant that fits no GPU fails the plan. When true, it is returned with
        state C(unplaced) and its reason, and the rest of the plan is deployed.
    type: bool
    default: false
  hosts:
    description:
      - The inventory hosts that run tenants, with their facts. A mapping of host
        name to a mapping that may hold C(tenancy_gpus) (a list of GPUs),
        C(tenancy_cpus) (core count), C(tenancy_cpusets_in_use) (tenant to cpuset of its
        running engine), C(tenancy_tenants_running) (tenants whose engine exists on the
        host) and C(tenancy_address) (the address clients reach the host at), or a plain
        list of host names.
      - An empty list plans every tenant onto C(localhost).
      - A tenant whose engine exists on a host stays on that host (its data volume is
        there); pinning it to another host is refused.
    type: raw
    default: []
  models_mount:
    description: Where the engine container sees the models directory.
    type: str
    default: /models
  placement:
    description:
      - How unpinned tenants are spread over hosts. C(spread) puts each on the host with
        the fewest tenants (ties - the most free GPU memory, then the name), then
        best-fit on that host's GPUs. C(pack) fills hosts best-fit across all GPUs (CPU
        hosts - the host with the fewest free cores that still has the tenant's).
      - Either way the plan is deterministic, and tenants that run keep their host.
    type: str
    choices: [spread, pack]
    default: spread
  cpu_oversubscribe:
    description:
      - CPU hosts whose core count is known pin each engine to its own cores. When
        false, a tenant whose cores would be promised to another already (or that asks
        for more cores than the host has) fails the plan, naming the tenant, C(cpus),
        the host and who holds the cores.
      - When true, such tenants share the least used cores instead (no longer isolated
        from each other); their records say C(cpu_shared) and the plan table says SHARED.
    type: bool
    default: false
  metrics_port_offset:
    description:
      - Each tenant's metrics port (its gateway's operator-only /metrics, published on the
        host's loopback by default) is its port plus this offset. A metrics port above
        65535, or one that is another tenant's port or metrics port on the same host,
        fails the plan naming the tenant, C(port) and the value.
    type: int
    default: 10000
"""

EXAMPLES = r"""
- name: Plan the tenants
  ansible.builtin.set_fact:
    tenancy_plan: "{{ tenants | tenancy_plan(tenancy_tenant_defaults, {'localhost': {}}) }}"

# Compact form from the command line:
#   ansible-playbook site.yml -e tenants=companyA:2G:30001,companyB:2G:30002
"""

RETURN = r"""
_value:
  description: One record per tenant, sorted by name.
  type: list
  elements: dict
  contains:
    name: {description: Tenant name, type: str}
    state: {description: present or absent, type: str}
    host: {description: Inventory host the tenant runs on, type: str}
    endpoint:
      description: The tenant's OpenAI base URL as clients reach it (bind_address, or the host's address for 0.0.0.0)
      type: str
    metrics_port:
      description: Host port of the tenant's operator-only metrics (port + metrics_port_offset)
      type: int
    gpu: {description: GPU index, or null on a CPU host, type: int}
    takes_images:
      description: The model has a vision tower (config.json has vision_config), or the tenant set max_images
      type: bool
    max_images: {description: Images per prompt (--limit-mm-per-prompt), 0 for text only, type: int}
    max_model_len: {description: The context length, the tenant's or the per-kind default, type: int}
    mode: {description: cpu, shared, mps or mig, type: str}
    memory_bytes: {description: The quota in bytes, type: int}
    gpu_memory_utilization: {description: vLLM fraction on a GPU, else null, type: float}
    kv_cache_bytes:
      description:
        - The KV cache the engine gets. On a GPU (--kv-cache-memory-bytes) the quota less weights, the vision
          encoder's activations, activations and graphs, and the CUDA context; null for a model the planner
          cannot size. On a CPU host the quota.
      type: int
    engine_args: {description: Arguments after C(vllm serve), type: list}
    engine_env: {description: Environment of the engine container, type: dict}
    names: {description: Names of the tenant's Docker objects and host paths, type: dict}
"""

GIB = 1024**3

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,30}$")
# A Hugging Face repo id: "org/name" with the characters the Hub allows.
HF_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
LOCAL_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
IPV4_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")

# vLLM's --quantization choices the planner accepts: the keys of the one quantization
# table, which also says how each is sized (tenancy_sizing.QUANTIZATION_BYTES).
QUANTIZATIONS = frozenset(tenancy_sizing.QUANTIZATION_BYTES)

# User-facing aliases (the article's `--quant int4`): the weights' bits. They are
# resolved against the checkpoint's own quantization_config and never passed to vLLM,
# which reads the method from the checkpoint (and picks its fastest kernel, e.g.
# awq_marlin, which an explicit --quantization awq would turn off).
QUANTIZATION_ALIASES = {"int4": 4, "int8": 8}
# Methods that quantize an unquantized (bf16/fp16) checkpoint while loading it. Every
# other method needs a checkpoint quantized that way.
QUANTIZE_ON_LOAD = frozenset({"fp8", "bitsandbytes", "experts_int8"})

STATES = ("present", "absent")

# Built-in defaults; inventory `tenancy_tenant_defaults` and then each tenant override them.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "state": "present",
    "model": "tiny-qwen3",
    "served_model_name": None,
    "gpu_memory": "1G",
    "quantization": None,
    "shm_size": "1G",
    # null: per model kind, MAX_MODEL_LEN_DEFAULTS below.
    "max_model_len": None,
    "max_images": None,
    "max_num_seqs": 16,
    "rpm_limit": 600,
    "max_body_size": "16M",
    "bind_address": "0.0.0.0",
    "memory_limit": None,
    "pids_limit": 1024,
    "host": None,
    "gpu": None,
    "cpus": None,
    "concurrency": 1,
    "mig_profile": None,
    "mps_thread_percentage": None,
}

FIELDS = frozenset(BUILTIN_DEFAULTS) | {"name", "port"}

# max_model_len when a tenant does not set it, by what its model takes. An image model
# needs room for the image's tokens on top of the text: the article's request (one
# photo, max_tokens 512) is about 1,000 to 2,500 prompt tokens on Qwen3-VL (one token
# per 32x32 pixels), so 4096 holds it with room to spare.
MAX_MODEL_LEN_DEFAULTS = {"text": 512, "images": 4096}
# Images per prompt on a model that takes them, unless max_images says otherwise.
MAX_IMAGES_DEFAULT = 1
REQUIRED = ("name", "port")

# CPU engines hold the KV cache in host RAM on top of the Python process, the
# weights and the tokenizer. 1.3-1.6 GiB per engine was measured for the tiny model
# (docs/benchmarks.md); 2 GiB leaves headroom for bigger tokenizers and the
# sampler's buffers.
CPU_ENGINE_OVERHEAD_BYTES = 2 * GIB
# vLLM keeps processed images in a cache of --mm-processor-cache-gb GiB, once in the
# API server and once in the engine core (its default, 4, is 8 GiB of host RAM per
# engine, which would OOM-kill a CPU engine's container long before it is full).
# Image tenants get it set explicitly, and twice its size in their memory limit.
MM_CACHE_GIB = {"cpu": 0.5, "gpu": 4.0}
MM_CACHE_COPIES = 2
# Host RAM a GPU engine may use beyond its quota (weights pass through host memory
# while loading; tokenizer and sampler buffers live there). A heuristic; tenants can
# set memory_limit themselves.
GPU_ENGINE_HOST_MEMORY_BYTES = 16 * GIB
# GPU memory kept out of every GPU's quotas (they sum to at most total - reserve): what
# the driver holds for itself, which NVML counts in the total and as used on an idle GPU
# while CUDA never hands it out (615 MiB on an H200, make device-check), and an MPS
# server's own memory. Each engine's CUDA context is inside its quota
# (tenancy_sizing.CONTEXT_BYTES).
GPU_RESERVE_BYTES = 1 * GIB
# A tenant's metrics port is its port plus this (tenancy_metrics_port_offset).
METRICS_PORT_OFFSET = 10000
GPU_MODES = ("shared", "mps", "mig")
# Largest gpu_memory_utilization inside a MIG instance (room for the CUDA context).
MIG_MAX_UTILIZATION = 0.95


def _err(tenant: str, field: str, value: Any, why: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"tenant {tenant!r}: field {field!r} has invalid value {value!r}: {why}")


def parse_size(value: Any, tenant: str, field: str) -> int:
    """Return a size in bytes. ``10G`` = ``10GiB`` = 10 * 1024**3; plain ints are bytes."""
    if isinstance(value, bool) or value is None:
        raise _err(tenant, field, value, "expected a size such as 10G, 10GiB, 10240M or a number of bytes")
    if isinstance(value, int):
        size = value
    else:
        text = str(value).strip()
        # human_to_bytes knows "G"/"GB" (binary); accept the explicit IEC spelling too.
        text = re.sub(r"(?i)([KMGTPEZY])iB$", r"\1B", text)
        try:
            size = int(human_to_bytes(text))
        except (ValueError, TypeError) as exc:
            raise _err(tenant, field, value, "expected a size such as 10G, 10GiB, 10240M or a number of bytes") from exc
    if size <= 0:
        raise _err(tenant, field, value, "must be greater than 0")
    return size


def _as_int(value: Any, tenant: str, field: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise _err(tenant, field, value, "expected an integer")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise _err(tenant, field, value, "expected an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise _err(tenant, field, value, f"must be {bound}")
    return value


def parse_compact(spec: str) -> list[dict[str, Any]]:
    """Parse ``name:gpu_memory:port[,...]`` into tenant mappings."""
    tenants = []
    for index, item in enumerate(part.strip() for part in spec.split(",")):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise AnsibleFilterError(
                f"tenants entry {index + 1} {item!r}: expected name:gpu_memory:port, e.g. companyA:10G:30001"
            )
        name, gpu_memory, port = (p.strip() for p in parts)
        tenants.append({"name": name, "gpu_memory": gpu_memory, "port": port})
    return tenants


def normalise_tenants(tenants: Any) -> list[Mapping[str, Any]]:
    """Accept a list of mappings, a ``{"tenants": [...]}`` mapping or the compact string."""
    if tenants is None:
        return []
    if isinstance(tenants, str):
        text = tenants.strip()
        if text.startswith("[") or text.startswith("{"):
            raise AnsibleFilterError(
                "tenants: got a string that looks like JSON; pass it as -e '{\"tenants\": [...]}' so Ansible parses it"
            )
        return parse_compact(text)
    if isinstance(tenants, Mapping):
        if set(tenants) == {"tenants"}:
            return normalise_tenants(tenants["tenants"])
        raise AnsibleFilterError(f"tenants: expected a list of tenants, got a mapping with keys {sorted(tenants)}")
    if not isinstance(tenants, Sequence):
        raise AnsibleFilterError(f"tenants: expected a list of tenants, got {type(tenants).__name__}")
    result = []
    for index, tenant in enumerate(tenants):
        if not isinstance(tenant, Mapping):
            raise AnsibleFilterError(f"tenants entry {index + 1}: expected a mapping, got {tenant!r}")
        result.append(tenant)
    return result


# Where the tenant role records each GPU tenant's engine for the GPU exporter
# (roles/monitoring/files/tenancy_gpu_exporter.py; monitoring_gpu_records_dir).
GPU_RECORDS_DIR = "/etc/tenancy/gpu-tenants"


def object_names(name: str) -> dict[str, str]:
    """Names of a tenant's Docker objects and host paths (see shared/DESIGN.md)."""
    return {
        "engine": f"tenancy-{name}-engine",
        "gateway": f"tenancy-{name}-gateway",
        "network": f"tenancy-{name}",
        "edge_network": f"tenancy-{name}-edge",
        "volume": f"tenancy-{name}-data",
        "config_dir": f"/etc/tenancy/{name}",
        "gpu_record": f"{GPU_RECORDS_DIR}/{name}.json",
        "label": name,
    }


def _validate_bind_address(value: Any, tenant: str) -> str:
    match = IPV4_RE.match(str(value))
    if not match or any(int(octet) > 255 for octet in match.groups()):
        raise _err(tenant, "bind_address", value, "expected an IPv4 address such as 0.0.0.0 or 127.0.0.1")
    return str(value)


def _model_reference(value: Any, tenant: str) -> tuple[str, str]:
    """Return (kind, reference) where kind is 'local' or 'hub'."""
    if not isinstance(value, str) or not value:
        raise _err(tenant, "model", value, "expected a directory under the models dir or a Hugging Face repo id")
    if LOCAL_MODEL_RE.match(value) and value not in (".", ".."):
        return "local", value
    if HF_REPO_RE.match(value) and ".." not in value:
        return "hub", value
    raise _err(
        tenant,
        "model",
        value,
        "expected a directory name under the models dir (e.g. tiny-qwen3) or a Hugging Face repo id (org/name)",
    )


def validate_tenant(raw: Mapping[str, Any], defaults: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Merge defaults into one tenant and validate every field. Returns normalised values."""
    label = str(raw.get("name")) if raw.get("name") not in (None, "") else f"#{index + 1}"
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise _err(label, unknown[0], raw[unknown[0]], f"unknown field; known fields are {', '.join(sorted(FIELDS))}")
    for field in REQUIRED:
        if raw.get(field) in (None, ""):
            raise _err(label, field, raw.get(field), "is required")

    spec = {**BUILTIN_DEFAULTS, **defaults, **raw}
    name = spec["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _err(label, "name", name, "must match [A-Za-z0-9][A-Za-z0-9-]{0,30}")

    out: dict[str, Any] = {"name": name}
    out["port"] = _as_int(spec["port"], name, "port", 1024, 65535)
    if spec["state"] not in STATES:
        raise _err(name, "state", spec["state"], f"must be one of {', '.join(STATES)}")
    out["state"] = spec["state"]
    out["model_kind"], out["model"] = _model_reference(spec["model"], name)
    served = spec["served_model_name"] or out["model"].rsplit("/", 1)[-1]
    if not isinstance(served, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}", served):
        raise _err(name, "served_model_name", served, "expected letters, digits and . _ / - (at most 128)")
    out["served_model_name"] = served
    out["gpu_memory"] = parse_size(spec["gpu_memory"], name, "gpu_memory")
    quantization = spec["quantization"]
    if quantization not in (None, "", "none") and quantization not in QUANTIZATIONS | set(QUANTIZATION_ALIASES):
        raise _err(
            name,
            "quantization",
            quantization,
            f"must be int4 or int8 (resolved against the checkpoint), one of vLLM's methods "
            f"({', '.join(sorted(QUANTIZATIONS))}), or null",
        )
    out["quantization"] = quantization if quantization not in ("", "none") else None
    out["shm_size"] = parse_size(spec["shm_size"], name, "shm_size")
    out["max_model_len"] = (
        None if spec["max_model_len"] in (None, "") else _as_int(spec["max_model_len"], name, "max_model_len", 1)
    )
    out["max_images"] = None if spec["max_images"] in (None, "") else _as_int(spec["max_images"], name, "max_images", 0)
    out["max_num_seqs"] = _as_int(spec["max_num_seqs"], name, "max_num_seqs", 1)
    out["rpm_limit"] = _as_int(spec["rpm_limit"], name, "rpm_limit", 1)
    out["max_body_size"] = parse_size(spec["max_body_size"], name, "max_body_size")
    out["bind_address"] = _validate_bind_address(spec["bind_address"], name)
    out["pids_limit"] = _as_int(spec["pids_limit"], name, "pids_limit", 64)
    out["memory_limit"] = (
        None if spec["memory_limit"] in (None, "") else parse_size(spec["memory_limit"], name, "memory_limit")
    )
    out["cpus"] = None if spec["cpus"] in (None, "") else _as_int(spec["cpus"], name, "cpus", 1)
    out["concurrency"] = _as_int(spec["concurrency"], name, "concurrency", 1)
    if spec["mig_profile"] not in (None, "") and not isinstance(spec["mig_profile"], str):
        raise _err(name, "mig_profile", spec["mig_profile"], "expected a MIG profile name such as 1g.10gb")
    out["mig_profile"] = spec["mig_profile"] or None
    out["mps_thread_percentage"] = (
        None
        if spec["mps_thread_percentage"] in (None, "")
        else _as_int(spec["mps_thread_percentage"], name, "mps_thread_percentage", 1, 100)
    )
    out["host"] = spec["host"]
    out["gpu_pin"] = None if spec["gpu"] is None else _as_int(spec["gpu"], name, "gpu", 0)
    if out["gpu_pin"] is not None and out["host"] is None:
        raise _err(name, "gpu", spec["gpu"], "pinning a GPU needs the tenant's host pinned too")
    return out


def resolve_model_kind(tenant: dict[str, Any], models_dir: str) -> None:
    """Fill in what depends on the model itself: ``takes_images`` (it has a vision
    tower), ``max_images`` (images per prompt; 0 on a text-only model) and
    ``max_model_len`` when the tenant leaves them unset."""
    vision = tenancy_sizing.takes_images(tenant["model"], models_dir)
    if tenant["max_images"] and vision is False:
        raise _err(
            tenant["name"],
            "max_images",
            tenant["max_images"],
            f"model {tenant['model']!r} takes no images (its config.json has no vision_config); leave max_images unset",
        )
    # A model nothing is known about (a Hub id not in the cache) is served as it comes,
    # unless the tenant asks for images.
    tenant["takes_images"] = bool(vision) or bool(tenant["max_images"])
    if tenant["max_images"] is None:
        tenant["max_images"] = MAX_IMAGES_DEFAULT if tenant["takes_images"] else 0
    if tenant["max_model_len"] is None:
        tenant["max_model_len"] = MAX_MODEL_LEN_DEFAULTS["images" if tenant["takes_images"] else "text"]


def _same_method(asked: str, stored: str) -> bool:
    """awq and awq_marlin, gptq and gptq_marlin/gptq_bitblas... are one checkpoint format."""
    return asked == stored or asked.startswith(stored + "_") or stored.startswith(asked + "_")


def resolve_quantization(tenant: dict[str, Any], models_dir: str) -> None:
    """Check the tenant's quantization against the checkpoint's own, and resolve the
    int4/int8 aliases (to None: vLLM reads the method from the checkpoint)."""
    asked = tenant["quantization"]
    stored = tenancy_sizing.checkpoint_quantization(tenant["model"], models_dir)
    model = tenant["model"]

    def refuse(why: str) -> AnsibleFilterError:
        return _err(tenant["name"], "quantization", asked, why)

    if asked is None:
        return
    if asked in QUANTIZATION_ALIASES:
        bits = QUANTIZATION_ALIASES[asked]
        if stored is None:
            raise refuse(
                f"cannot tell how {model!r} is quantized (its config.json is not under the models dir and it is "
                f"not a known model); put the checkpoint in the models dir (or its Hub cache), or name the "
                f"method (awq, gptq)"
            )
        if not stored:
            raise refuse(
                f"checkpoint {model!r} is not quantized (its config has no quantization_config); {asked} needs a "
                f"{bits}-bit checkpoint (AWQ or GPTQ, e.g. a repo ending in -AWQ), or use fp8, which vLLM "
                f"quantizes while loading"
            )
        if stored.get("bits") != bits:
            raise refuse(
                f"checkpoint {model!r} is quantized with {stored['method']} at {stored.get('bits') or 'unknown'} "
                f"bits, not {bits}; leave quantization unset to serve it as it is"
            )
        tenant["quantization"] = None
        return
    if stored is None:
        return  # nothing known: vLLM will say whether the checkpoint matches
    if stored and not _same_method(asked, stored["method"]):
        raise refuse(
            f"checkpoint {model!r} is already quantized with {stored['method']}; leave quantization unset "
            f"(vLLM reads it from the checkpoint)"
        )
    if not stored and asked not in QUANTIZE_ON_LOAD:
        raise refuse(
            f"checkpoint {model!r} is not quantized (its config has no quantization_config); {asked} needs a "
            f"checkpoint quantized with it. Quantized while loading: {', '.join(sorted(QUANTIZE_ON_LOAD))}"
        )


def _check_names(tenants: list[dict[str, Any]]) -> None:
    """Before placement: a duplicate name is an input error whatever fits where."""
    seen_names: dict[str, str] = {}
    for tenant in tenants:
        key = tenant["name"].lower()
        if key in seen_names:
            other = seen_names[key]
            why = "duplicate name" if other == tenant["name"] else f"collides with tenant {other!r} (names ignore case)"
            raise _err(tenant["name"], "name", tenant["name"], why)
        seen_names[key] = tenant["name"]


def _check_ports(tenants: list[dict[str, Any]], metrics_port_offset: int = METRICS_PORT_OFFSET) -> None:
    """After placement (ports are per host)."""
    # Ports are host ports: each tenant's own and its metrics port (port + offset).
    seen_ports: dict[tuple[Any, int], str] = {}
    # A tenant being removed frees its ports in the same run.
    present = [t for t in tenants if t["state"] != "absent"]
    for tenant in present:
        key = (tenant["host"], tenant["port"])
        if key in seen_ports:
            raise _err(tenant["name"], "port", tenant["port"], f"already used by tenant {seen_ports[key]!r}")
        seen_ports[key] = tenant["name"]
    # With one offset for all, two metrics ports never meet; a metrics port can be
    # another tenant's port.
    for tenant in present:
        metrics_port = tenant["port"] + metrics_port_offset
        if not 1024 <= metrics_port <= 65535:
            raise _err(
                tenant["name"],
                "port",
                tenant["port"],
                f"its metrics port would be {metrics_port} (port + tenancy_metrics_port_offset "
                f"{metrics_port_offset}), outside 1024-65535; pick a port below {65536 - metrics_port_offset} "
                "or another offset",
            )
        other = seen_ports.get((tenant["host"], metrics_port))
        if other is not None:
            raise _err(
                tenant["name"],
                "port",
                tenant["port"],
                f"its metrics port {metrics_port} (port + tenancy_metrics_port_offset {metrics_port_offset}) "
                f"is the port of tenant {other!r}",
            )


def _engine(
    tenant: dict[str, Any],
    models_mount: str,
    gpu: Mapping[str, Any] | None,
    cpuset: str | None,
    mig: tuple[tenancy_mig.Profile, int] | None,
    sizing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Engine arguments after ``vllm serve``, its environment and limits, for its slot."""
    model = f"{models_mount}/{tenant['model']}" if tenant["model_kind"] == "local" else tenant["model"]
    args = [
        model,
        "--served-model-name",
        tenant["served_model_name"],
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--max-model-len",
        str(tenant["max_model_len"]),
        "--max-num-seqs",
        str(tenant["max_num_seqs"]),
        # The engine is only ever reached by its own gateway, which keeps the access log.
        "--disable-uvicorn-access-log",
    ]
    if tenant["quantization"]:
        args += ["--quantization", tenant["quantization"]]
    if tenant["takes_images"]:
        # Videos are not part of the product: their limit is 0, so vLLM neither accepts
        # them nor reserves memory for them. max_images 0 serves an image model as text.
        limits = {"image": tenant["max_images"], "video": 0}
        args += ["--limit-mm-per-prompt", json.dumps(limits, separators=(",", ":"))]
        mm_cache_gib = MM_CACHE_GIB["cpu" if gpu is None else "gpu"]
        args += ["--mm-processor-cache-gb", f"{mm_cache_gib:g}"]
        mm_cache_bytes = int(mm_cache_gib * GIB) * MM_CACHE_COPIES
    else:
        mm_cache_bytes = 0
    env = {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": f"{models_mount}/.hf",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # Metrics in prometheus_client's multiprocess mode, on the tenant's own volume:
        # every counter lives in a memory-mapped file there, so what the engine counted
        # before a SIGKILL (a crash, the OOM killer) or a recreation is still counted
        # after it, where an in-memory counter loses what the last scrape had not read.
        "PROMETHEUS_MULTIPROC_DIR": METRICS_DIR,
        # GPU engines compile (no --enforce-eager): their caches live on the tenant's own
        # volume, so a restart reuses them. CPU engines run eager, with the compilers'
        # caches on /tmp; vLLM's own cache (VLLM_CACHE_ROOT: the model classes it inspects
        # in a subprocess at every start when their record is missing) on the volume too.
        **engine_user_env(DATA_MOUNT + "/.cache" if gpu is not None else "/tmp/.cache"),
    }
    if gpu is None:
        # CPU host: the quota is the KV cache in whole GiB (VLLM_CPU_KVCACHE_SPACE is an int).
        # --enforce-eager: the torch.compile cache breaks when a container restarts.
        kv_gib = tenant["gpu_memory"] // GIB
        if kv_gib < 1:
            raise _err(
                tenant["name"],
                "gpu_memory",
                format_bytes(tenant["gpu_memory"]),
                "is below 1GiB; on a CPU host the quota is the KV cache size in whole GiB",
            )
        args.append("--enforce-eager")
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_gib)
        if cpuset is not None:
            # Bind the OpenMP workers to the tenant's own cores. Left to itself every
            # engine binds to the same first core, and two spinning OpenMP pools on one
            # core turn 40 ms requests into 4 s ones.
            env["VLLM_CPU_OMP_THREADS_BIND"] = cpuset
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
        return {
            "engine_args": args,
            "engine_env": env,
            "gpu_memory_utilization": None,
            "kv_cache_bytes": kv_gib * GIB,
            "memory_limit": tenant["memory_limit"] or kv_gib * GIB + CPU_ENGINE_OVERHEAD_BYTES + mm_cache_bytes,
        }
    if mig is not None:
        # The engine sees only its MIG instance, so the fraction is of the instance;
        # capped because vLLM needs room for its CUDA context inside the instance.
        fraction = min(MIG_MAX_UTILIZATION, math.floor(tenant["gpu_memory"] * 100 / mig[0].memory_bytes) / 100)
    else:
        # shared and mps: vLLM's fraction is of the GPU's total (torch's, a little below
        # NVML's), and the engine's CUDA context comes on top of it, so the fraction is of
        # the quota less the context term, rounded down. vLLM also refuses to start when
        # the GPU's free memory is below fraction x total; under MPS the free memory is
        # the pinned limit less the context, so a fraction of the whole quota would never
        # start (measured on an H200: a 24 GiB limit leaves 23.5 GiB free, 0.17 asks 23.77).
        usable = tenant["gpu_memory"] - tenancy_sizing.CONTEXT_BYTES
        fraction = math.floor(usable * 100 / gpu["memory_bytes"]) / 100
    if fraction < 0.01:
        raise _err(tenant["name"], "gpu_memory", tenant["gpu_memory"], "is below 1% of the GPU's memory")
    args += ["--gpu-memory-utilization", f"{fraction:.2f}"]
    # An absolute KV budget: what the quota leaves after the weights, the vision encoder's
    # activations (image models), the activations and graphs, and the CUDA context. vLLM
    # then sizes its KV cache to exactly that, whatever torch reports as the GPU's total
    # and whatever other tenants use, so the tenant's footprint is its quota. (With only
    # the fraction, vLLM multiplies it by torch's total, which is smaller than NVML's.)
    # Unknown models keep the fraction alone.
    kv_cache_bytes = None
    if sizing and sizing.get("known"):
        kv_cache_bytes = (
            tenant["gpu_memory"]
            - sizing["weights_bytes"]
            - sizing["vision_activation_bytes"]
            - sizing["reserve_bytes"]
            - sizing["context_bytes"]
        )
        args += ["--kv-cache-memory-bytes", str(kv_cache_bytes)]
    if gpu["mode"] == "mps":
        # The container sees its one GPU as device 0.
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={tenant['gpu_memory'] // 1024**2}M"
        if tenant["mps_thread_percentage"] is not None:
            env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(tenant["mps_thread_percentage"])
    return {
        "engine_args": args,
        "engine_env": env,
        "gpu_memory_utilization": fraction,
        "kv_cache_bytes": kv_cache_bytes,
        "memory_limit": tenant["memory_limit"] or tenant["gpu_memory"] + GPU_ENGINE_HOST_MEMORY_BYTES + mm_cache_bytes,
    }


DATA_MOUNT = "/data"
# The engine's metric files (PROMETHEUS_MULTIPROC_DIR): the tenant role creates it on the
# tenant's volume (tenant_metrics_subdir), owned by the engine's user.
METRICS_DIR = DATA_MOUNT + "/.metrics"
# vLLM's own cache, on the tenant's volume for every engine (the record of each model
# class it inspects; without it every start inspects again in a subprocess).
VLLM_CACHE_DIR = DATA_MOUNT + "/.cache/vllm"
ENGINE_LOGIN = "tenancy"


def engine_user_env(cache_root: str) -> dict[str, str]:
    """What a process running as an arbitrary uid needs: the engine's uid has no passwd
    entry in the upstream vLLM image, and torch's getpass.getuser() raises
    "KeyError: 'getpwuid(): uid not found'" unless USER or LOGNAME is set. HOME and every
    cache (XDG, Triton, TorchInductor, vLLM) point at writable places, because the root
    filesystem is read-only; vLLM's own cache is on the tenant's volume (VLLM_CACHE_DIR)."""
    return {
        "USER": ENGINE_LOGIN,
        "LOGNAME": ENGINE_LOGIN,
        "HOME": "/tmp",
        "XDG_CACHE_HOME": cache_root,
        "TRITON_CACHE_DIR": f"{cache_root}/triton",
        "TORCHINDUCTOR_CACHE_DIR": f"{cache_root}/torchinductor",
        "VLLM_CACHE_ROOT": VLLM_CACHE_DIR,
        "VLLM_CONFIG_ROOT": "/tmp/.config/vllm",
    }


def _check_minimum(tenant: dict[str, Any], sizing: Mapping[str, Any], on_gpu: bool) -> None:
    """Refuse a quota below what the model needs, naming the term that is too big."""
    if not sizing["known"]:
        return
    quota = tenant["gpu_memory"]
    tokens = f"max_model_len {tenant['max_model_len']}"
    if tenant["concurrency"] > 1:
        tokens += f" x concurrency {tenant['concurrency']}"
    vision = fewer_images = ""
    if sizing.get("vision_activation_bytes"):
        vision = (
            f" + vision encoder for {sizing['image_tokens']} image tokens {_gib(sizing['vision_activation_bytes'])}"
        )
        fewer_images = " or max_images"
    if on_gpu and quota < sizing["minimum_bytes"]:
        raise _err(
            tenant["name"],
            "gpu_memory",
            format_bytes(tenant["gpu_memory"]),
            f"{format_bytes(quota)} is below the {_gib(sizing['minimum_bytes'])} minimum "
            f"(weights {_gib(sizing['weights_bytes'])} + KV for {tokens} = "
            f"{_gib(sizing['kv_bytes'])}{vision} + activations and CUDA graphs {_gib(sizing['reserve_bytes'])} "
            f"+ CUDA context {_gib(sizing['context_bytes'])}); "
            f"raise gpu_memory, or lower max_model_len or concurrency{fewer_images}, or quantize",
        )
    if not on_gpu and quota < sizing["kv_bytes"]:
        raise _err(
            tenant["name"],
            "gpu_memory",
            format_bytes(tenant["gpu_memory"]),
            f"on a CPU host the quota is the KV cache, and {format_bytes(quota)} is below the "
            f"{_gib(sizing['kv_bytes'])} that {tokens} needs "
            f"({sizing['kv_bytes_per_token']} bytes per token); raise gpu_memory or lower max_model_len",
        )


def parse_gpus(host: str, facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Normalise a host's ``tenancy_gpus`` list: index, name, memory_bytes, mode, MIG profiles."""
    gpus = []
    for entry in facts.get("tenancy_gpus") or []:
        label = f"{host} gpu {entry.get('index', '?')}"
        if not isinstance(entry.get("index"), int) or isinstance(entry.get("index"), bool) or entry["index"] < 0:
            raise AnsibleFilterError(
                f"tenancy_gpus of host {host!r}: index {entry.get('index')!r} is not an integer >= 0"
            )
        mode = entry.get("mode", "shared")
        if mode not in GPU_MODES:
            raise AnsibleFilterError(f"tenancy_gpus of {label}: mode {mode!r} must be one of {', '.join(GPU_MODES)}")
        gpu = {
            "host": host,
            "index": entry["index"],
            "name": str(entry.get("name", "GPU")),
            "memory_bytes": parse_size(entry.get("memory"), label, "memory"),
            "mode": mode,
            "profiles": [],
        }
        if mode == "mig":
            if entry.get("mig") is False:
                raise AnsibleFilterError(f"tenancy_gpus of {label}: mode 'mig' needs a MIG-capable GPU (mig: false)")
            gpu["profiles"] = tenancy_mig.profiles(gpu["name"], gpu["memory_bytes"])
            if not gpu["profiles"]:
                raise AnsibleFilterError(
                    f"tenancy_gpus of {label}: no MIG profile table for {gpu['name']!r} with "
                    f"{format_bytes(gpu['memory_bytes'])}; known: A100 40GB/80GB, H100 80GB"
                )
        gpus.append(gpu)
    return gpus


Slot = tuple[str, int]


class _Placement:
    """What is left on each GPU while tenants are being placed."""

    def __init__(self, gpus: list[dict[str, Any]], host_names: list[str]) -> None:
        self.gpus = {(g["host"], g["index"]): g for g in gpus}
        self.free = {slot: g["memory_bytes"] - GPU_RESERVE_BYTES for slot, g in self.gpus.items() if g["mode"] != "mig"}
        self.mig: dict[Slot, dict[str, tenancy_mig.Profile]] = {
            slot: {} for slot, g in self.gpus.items() if g["mode"] == "mig"
        }
        self.load = dict.fromkeys(host_names, 0)
        self.placed: dict[str, dict[str, Any] | None] = {}
        self.unplaced: dict[str, str] = {}

    def take_cpu(self, tenant: dict[str, Any], host: str) -> None:
        tenant["host"], self.placed[tenant["name"]] = host, None
        self.load[host] += 1

    def take_shared(self, tenant: dict[str, Any], slot: Slot) -> None:
        self.free[slot] -= tenant["gpu_memory"]
        tenant["host"], self.placed[tenant["name"]] = slot[0], self.gpus[slot]
        self.load[slot[0]] += 1

    def best_fit(self, tenant: dict[str, Any], slots: list[Slot]) -> Slot | None:
        fits = [slot for slot in slots if self.free[slot] >= tenant["gpu_memory"]]
        return min(fits, key=lambda slot: (self.free[slot], slot)) if fits else None

    def try_mig(self, tenant: dict[str, Any], slot: Slot) -> str | None:
        """Add the tenant's profile to a MIG GPU if it still fits; else say why not."""
        gpu = self.gpus[slot]
        if tenant["mig_profile"]:
            profile = tenancy_mig.profile_by_name(gpu["profiles"], tenant["mig_profile"])
            if profile is None:
                names = [p.name for p in gpu["profiles"]]
                raise _err(
                    tenant["name"], "mig_profile", tenant["mig_profile"], f"is not a profile of {gpu['name']}: {names}"
                )
            if profile.memory_bytes < tenant["gpu_memory"]:
                raise _err(
                    tenant["name"],
                    "mig_profile",
                    tenant["mig_profile"],
                    f"holds {format_bytes(profile.memory_bytes)}, "
                    f"less than gpu_memory {format_bytes(tenant['gpu_memory'])}",
                )
        else:
            profile = tenancy_mig.smallest_fitting(gpu["profiles"], tenant["gpu_memory"])
            if profile is None:
                largest = gpu["profiles"][-1]
                return (
                    f"{format_bytes(tenant['gpu_memory'])} is more than the largest MIG profile "
                    f"{largest.name} ({format_bytes(largest.memory_bytes)})"
                )
        layout = self.mig[slot]
        if tenancy_mig.place([*layout.values(), profile]) is None:
            return f"no legal start slice left for {profile.name}"
        layout[tenant["name"]] = profile
        tenant["host"], self.placed[tenant["name"]] = slot[0], gpu
        self.load[slot[0]] += 1
        return None

    def place_mig(self, tenant: dict[str, Any], slots: list[Slot]) -> None:
        """First fit over `slots`; record why not when no GPU has room."""
        reasons: dict[str, list[Slot]] = {}
        for slot in slots:
            reason = self.try_mig(tenant, slot)
            if reason is None:
                return
            reasons.setdefault(reason, []).append(slot)
        self.unplaced[tenant["name"]] = "; ".join(
            f"{reason} on {self._describe_slots(where)}" for reason, where in reasons.items()
        )

    def _describe_slots(self, slots: list[Slot], shown: int = 3) -> str:
        """'g1 gpu 0 (a 1g.10gb@0, ...)' for the first few GPUs, then a count."""
        parts = []
        for slot in slots[:shown]:
            layout = self.mig[slot]
            starts = tenancy_mig.place(list(layout.values())) or []
            taken = dict(zip(layout, zip(layout.values(), starts, strict=True), strict=True))
            parts.append(f"{slot[0]} gpu {slot[1]} ({tenancy_mig.describe(taken)})")
        if len(slots) > shown:
            parts.append(f"and {len(slots) - shown} more GPUs")
        return ", ".join(parts)

    def mig_starts(self) -> dict[str, tuple[tenancy_mig.Profile, int]]:
        result = {}
        for layout in self.mig.values():
            starts = tenancy_mig.place(list(layout.values())) or []
            result.update(
                {name: (profile, start) for (name, profile), start in zip(layout.items(), starts, strict=True)}
            )
        return result


PLACEMENTS = ("spread", "pack")


def running_hosts(tenants: list[dict[str, Any]], hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Where each tenant's engine already exists (hosts report ``tenancy_tenants_running``).

    A tenant keeps that host: its data volume and its API key's gateway are there, and
    moving it would lose them. Pinning it elsewhere is an error naming both hosts."""
    where: dict[str, str] = {}
    for host in sorted(hosts):
        for name in (hosts.get(host) or {}).get("tenancy_tenants_running") or []:
            where.setdefault(str(name), host)
    for tenant in tenants:
        current = where.get(tenant["name"])
        if tenant["state"] == "present" and current and tenant["host"] not in (None, current):
            raise _err(
                tenant["name"],
                "host",
                tenant["host"],
                f"the tenant runs on {current}, and its data volume is there; moving a tenant between hosts "
                f"is not supported. Remove it (playbooks/tenant-remove.yml) and add it again with host "
                f"{tenant['host']}, or pin it to {current}",
            )
    return where


def _place(
    tenants: list[dict[str, Any]], hosts: Mapping[str, Mapping[str, Any]], placement: str = "spread"
) -> _Placement:
    """Choose a host (and a GPU, and a MIG slice) for each tenant.

    - Pinned tenants go where they are pinned; a tenant that already runs on a host is
      pinned there (see running_hosts).
    - Unpinned tenants go to shared/MPS GPUs largest quota first. ``pack``: each onto the
      GPU with the least room that still fits it, over all hosts (best-fit decreasing).
      ``spread``: onto the host with the fewest tenants that has a GPU it fits on (ties:
      the most free GPU memory, then the name), best-fit on that host's GPUs.
    - What fits no shared GPU, and every tenant when the GPUs are all MIG, goes to MIG
      GPUs smallest first, onto the first GPU where its smallest fitting profile still
      has a legal start slice (``spread`` tries the least loaded hosts first).
    - With no GPU in the inventory, tenants go to a CPU host: ``spread`` the one with the
      fewest tenants, ``pack`` the one with the fewest free cores that still has the
      tenant's ``cpus`` (else the one with the fewest tenants).
    Ties break on names and indexes, so the same input always gives the same plan.
    """
    if placement not in PLACEMENTS:
        raise AnsibleFilterError(f"tenancy_placement: {placement!r} is not one of {', '.join(PLACEMENTS)}")
    running = running_hosts(tenants, hosts)
    for tenant in tenants:
        # A running tenant stays where it runs, and one being removed is removed there.
        if tenant["name"] in running and (tenant["host"] is None or tenant["state"] == "absent"):
            tenant["host"] = running[tenant["name"]]
    host_names = sorted(hosts) or ["localhost"]
    gpus = [gpu for host in host_names for gpu in parse_gpus(host, hosts.get(host) or {})]
    state = _Placement(gpus, host_names)
    shared_slots = sorted(state.free)
    mig_slots = sorted(state.mig)
    mig_queue: list[dict[str, Any]] = []

    # Absent tenants are being removed: they take no capacity, and their removal runs on
    # every host (or on the pinned one), wherever they used to be.
    for tenant in (t for t in tenants if t["state"] == "absent"):
        state.placed[tenant["name"]] = None
    active = [t for t in tenants if t["state"] != "absent"]

    for tenant in (t for t in active if t["host"] is not None):
        if tenant["host"] not in state.load:
            raise _err(tenant["name"], "host", tenant["host"], f"is not a tenancy host; hosts are {host_names}")
        host_slots = sorted(slot for slot in state.gpus if slot[0] == tenant["host"])
        if tenant["gpu_pin"] is not None:
            if not host_slots:
                raise _err(tenant["name"], "gpu", tenant["gpu_pin"], f"host {tenant['host']} has no GPU")
            if (tenant["host"], tenant["gpu_pin"]) not in state.gpus:
                indexes = [slot[1] for slot in host_slots]
                raise _err(
                    tenant["name"], "gpu", tenant["gpu_pin"], f"is not a GPU of {tenant['host']}; it has {indexes}"
                )
            host_slots = [(tenant["host"], tenant["gpu_pin"])]
        if not host_slots:
            state.take_cpu(tenant, tenant["host"])
            continue
        shared_here = [slot for slot in host_slots if slot in state.free]
        if shared_here:
            slot = state.best_fit(tenant, shared_here)
            if slot is None:
                raise _over_quota(tenant, shared_here, state, tenants)
            state.take_shared(tenant, slot)
        else:
            state.place_mig(tenant, host_slots)

    unpinned = [t for t in active if t["host"] is None]
    if not state.gpus:
        for tenant in sorted(unpinned, key=lambda t: t["name"].lower()):
            state.take_cpu(tenant, _cpu_host(tenant, host_names, hosts, state, tenants, placement))
        return state
    for tenant in sorted(unpinned, key=lambda t: (-t["gpu_memory"], t["name"].lower())):
        slot = state.best_fit(tenant, _spread_order(shared_slots, state, tenant, placement)) if shared_slots else None
        if slot is not None:
            state.take_shared(tenant, slot)
        elif mig_slots:
            mig_queue.append(tenant)
        else:
            raise _over_quota(tenant, shared_slots, state, tenants)
    for tenant in sorted(mig_queue, key=lambda t: (t["gpu_memory"], t["name"].lower())):
        order = mig_slots
        if placement == "spread":
            order = sorted(mig_slots, key=lambda slot: (state.load[slot[0]], slot))
        state.place_mig(tenant, order)
    return state


def _spread_order(slots: list[Slot], state: _Placement, tenant: dict[str, Any], placement: str) -> list[Slot]:
    """The GPUs best-fit may choose from: all of them (pack), or those of the least loaded
    host that has one the tenant fits on (spread)."""
    if placement == "pack":
        return slots
    fitting = [slot for slot in slots if state.free[slot] >= tenant["gpu_memory"]]
    if not fitting:
        return slots
    hosts = sorted({slot[0] for slot in fitting})
    free = {h: sum(state.free[slot] for slot in fitting if slot[0] == h) for h in hosts}
    chosen = min(hosts, key=lambda h: (state.load[h], -free[h], h))
    return [slot for slot in fitting if slot[0] == chosen]


def _cpu_host(
    tenant: dict[str, Any],
    host_names: list[str],
    hosts: Mapping[str, Mapping[str, Any]],
    state: _Placement,
    tenants: list[dict[str, Any]],
    placement: str,
) -> str:
    """The CPU host for an unpinned tenant (see _place)."""
    least_loaded = min(host_names, key=lambda h: (state.load[h], h))
    if placement == "spread":
        return least_loaded
    free: dict[str, int] = {}
    for host in host_names:
        cores = int((hosts.get(host) or {}).get("tenancy_cpus") or 0)
        taken = sum(t["cpus"] or 1 for t in tenants if t["host"] == host and t["state"] == "present")
        if cores and cores - taken >= (tenant["cpus"] or 1):
            free[host] = cores - taken
    return min(free, key=lambda h: (free[h], h)) if free else least_loaded


def cpu_sets(
    tenants: list[dict[str, Any]],
    placed: Mapping[str, Any],
    hosts: Mapping[str, Mapping[str, Any]],
    oversubscribe: bool = False,
) -> tuple[dict[str, str], set[str]]:
    """CPU sets for the CPU-engine tenants of each host whose core count is known.

    Sticky: a tenant that already runs keeps its cores (hosts report them as
    ``tenancy_cpusets_in_use``), as long as it still asks for as many and nobody kept
    them first, so adding, changing or removing a tenant never moves (and so never
    restarts) another. New tenants take free cores in list order. A tenant with
    ``cpus: N`` gets N cores; tenants without share the host equally. A core promised
    to one tenant is never handed to another: with more demand than cores the plan
    fails, unless ``oversubscribe``, where tenants share the least used cores (spread
    out, but no longer isolated). Returns the cpusets and the tenants that share a core.
    """
    result: dict[str, str] = {}
    shared: set[str] = set()
    for host, facts in hosts.items():
        cores = int((facts or {}).get("tenancy_cpus") or 0)
        here = [t for t in tenants if t["host"] == host and placed[t["name"]] is None and t["state"] == "present"]
        if cores < 1 or not here:
            continue
        in_use = (facts or {}).get("tenancy_cpusets_in_use") or {}
        fixed = sum(t["cpus"] for t in here if t["cpus"])
        automatic = [t for t in here if not t["cpus"]]
        auto_size = max(1, (cores - fixed) // len(automatic)) if automatic else 0
        size = {t["name"]: min(t["cpus"] or auto_size, cores) for t in here}
        users = [0] * cores
        blocks: dict[str, list[int]] = {}
        pending = []
        for tenant in here:
            kept = parse_cpu_list(in_use.get(tenant["name"], ""), cores)
            if kept and len(kept) == size[tenant["name"]] and all(users[c] == 0 for c in kept):
                for core in kept:
                    users[core] += 1
                blocks[tenant["name"]] = kept
            else:
                pending.append(tenant)
        for tenant in pending:
            # Least used cores first, lowest numbers on ties: free cores while there are any.
            block = sorted(sorted(range(cores), key=lambda c: (users[c], c))[: size[tenant["name"]]])
            wanted = tenant["cpus"] or auto_size
            if not oversubscribe and (wanted > cores or any(users[c] for c in block)):
                holders = ", ".join(f"{name} {cpu_list(cores_)}" for name, cores_ in blocks.items())
                raise _err(
                    tenant["name"],
                    "cpus",
                    tenant["cpus"] if tenant["cpus"] else f"{wanted} (automatic share)",
                    f"host {host} has {cores} core(s), {sum(1 for u in users if u)} promised "
                    f"({holders or 'none'}); a core promised to one tenant is never handed to another. "
                    "Lower cpus, remove a tenant, pin it to another host, or set tenancy_cpu_oversubscribe: true "
                    "to let tenants share cores (no longer isolated; the plan says SHARED)",
                )
            for core in block:
                users[core] += 1
            blocks[tenant["name"]] = block
        for name, block in blocks.items():
            result[name] = cpu_list(block)
            if any(users[c] > 1 for c in block):
                shared.add(name)
    return result, shared


def parse_cpu_list(text: str, cores: int) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5]; [] when empty or outside the host's cores."""
    result: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return []
        result.extend(range(int(first), int(last or first) + 1))
    return result if result and max(result) < cores else []


def cpu_list(cores: list[int]) -> str:
    """Render cores the way Docker's --cpuset-cpus and VLLM_CPU_OMP_THREADS_BIND read them: 0-3,6."""
    runs: list[list[int]] = []
    for core in sorted(set(cores)):
        if runs and core == runs[-1][1] + 1:
            runs[-1][1] = core
        else:
            runs.append([core, core])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _over_quota(tenant: dict[str, Any], slots: list[Slot], state: _Placement, tenants: list[dict[str, Any]]):
    """The error for a tenant that fits no GPU: list each GPU's tenants and totals."""
    lines = []
    for slot in slots:
        gpu = state.gpus[slot]
        there = [t for t in tenants if state.placed.get(t["name"]) is gpu]
        used = sum(t["gpu_memory"] for t in there)
        names = ", ".join(f"{t['name']} {format_bytes(t['gpu_memory'])}" for t in there) or "no tenants"
        lines.append(
            f"{slot[0]} gpu {slot[1]} ({gpu['name']}, usable {format_bytes(gpu['memory_bytes'] - GPU_RESERVE_BYTES)}):"
            f" {names}, {format_bytes(used)} taken"
        )
    return _err(
        tenant["name"],
        "gpu_memory",
        format_bytes(tenant["gpu_memory"]),
        f"{format_bytes(tenant['gpu_memory'])} fits on no GPU; " + "; ".join(lines),
    )


def tenancy_plan(
    tenants: Any,
    defaults: Mapping[str, Any] | None = None,
    hosts: Mapping[str, Any] | Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    models_dir: str = "/var/lib/tenancy/models",
    allow_unplaced: bool = False,
    models_mount: str = "/models",
    placement: str = "spread",
    cpu_oversubscribe: bool = False,
    metrics_port_offset: int = METRICS_PORT_OFFSET,
) -> list[dict[str, Any]]:
    """Validate ``tenants`` and return the plan: one record per tenant, sorted by name."""
    defaults = dict(defaults or {})
    overrides = dict(overrides or {})
    hosts = dict(hosts) if isinstance(hosts, Mapping) else {host: {} for host in hosts or []}
    shared_fields = FIELDS - {"name", "port"}
    for variable, values in (("tenancy_tenant_defaults", defaults), ("tenancy_tenant_overrides", overrides)):
        unknown = sorted(set(values) - shared_fields)
        if unknown:
            raise AnsibleFilterError(
                f"{variable}: unknown field {unknown[0]!r}; known fields are {', '.join(sorted(shared_fields))}"
            )
    validated = [validate_tenant({**raw, **overrides}, defaults, i) for i, raw in enumerate(normalise_tenants(tenants))]
    for tenant in validated:
        resolve_model_kind(tenant, models_dir)
        resolve_quantization(tenant, models_dir)
    _check_names(validated)
    placement = _place(validated, hosts, placement)
    if placement.unplaced and not allow_unplaced:
        first = next(t for t in validated if t["name"] in placement.unplaced)
        others = "; ".join(f"{name}: {why}" for name, why in sorted(placement.unplaced.items()))
        raise _err(
            first["name"],
            "gpu_memory",
            format_bytes(first["gpu_memory"]),
            f"{len(placement.unplaced)} tenant(s) cannot be placed ({others}). "
            "Free MIG slices, lower quotas, or set tenancy_allow_unplaced to deploy the rest",
        )
    metrics_port_offset = int(metrics_port_offset)
    _check_ports([t for t in validated if t["name"] not in placement.unplaced], metrics_port_offset)
    # What is wrong with a tenant itself is reported before what does not fit on its host.
    sizings = {t["name"]: tenancy_sizing.tenancy_sizing(t, models_dir) for t in validated}
    for tenant in validated:
        if tenant["name"] not in placement.unplaced:
            _check_minimum(tenant, sizings[tenant["name"]], on_gpu=placement.placed[tenant["name"]] is not None)
    cpusets, shared_cores = cpu_sets(validated, placement.placed, hosts, cpu_oversubscribe)
    mig = placement.mig_starts()

    plan = []
    for tenant in sorted(validated, key=lambda t: t["name"].lower()):
        record = {k: v for k, v in tenant.items() if k != "gpu_pin"}
        record["endpoint"] = endpoint(tenant, hosts)
        record["metrics_port"] = tenant["port"] + metrics_port_offset
        sizing = sizings[tenant["name"]]
        if tenant["name"] in placement.unplaced:
            plan.append(
                {
                    **record,
                    "state": "unplaced",
                    "unplaced_reason": placement.unplaced[tenant["name"]],
                    "gpu": None,
                    "mode": None,
                    "mig_profile": None,
                    "mig_start": None,
                    "memory_bytes": tenant["gpu_memory"],
                    "gpu_memory_utilization": None,
                    "kv_cache_bytes": None,
                    "engine_args": [],
                    "engine_env": {},
                    "cpuset": None,
                    "cpu_shared": False,
                    "sizing": sizing,
                    "names": object_names(tenant["name"]),
                }
            )
            continue
        gpu = placement.placed[tenant["name"]]
        profile, start = mig.get(tenant["name"], (None, None))
        plan.append(
            {
                **record,
                "gpu": None if gpu is None else gpu["index"],
                "mode": "cpu" if gpu is None else gpu["mode"],
                "mig_profile": None if profile is None else profile.name,
                "mig_start": start,
                "memory_bytes": tenant["gpu_memory"],
                **_engine(
                    tenant,
                    models_mount,
                    gpu,
                    cpusets.get(tenant["name"]),
                    None if profile is None else (profile, start),
                    sizing,
                ),
                "cpuset": cpusets.get(tenant["name"]),
                "cpu_shared": tenant["name"] in shared_cores,
                "sizing": sizing,
                "names": object_names(tenant["name"]),
            }
        )
    return plan


def endpoint(tenant: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The tenant's OpenAI base URL as a client reaches it: its bind_address, or for
    0.0.0.0 the host's address (``tenancy_address``, the inventory's ansible_host)."""
    host = tenant.get("host")
    if host is None:
        return None
    address = tenant["bind_address"]
    if address == "0.0.0.0":
        address = str((hosts.get(host) or {}).get("tenancy_address") or host)
        if address in ("localhost", "127.0.0.1"):
            address = "127.0.0.1"
    return f"http://{address}:{tenant['port']}/v1"


def format_bytes(size: int) -> str:
    """Render bytes the way quotas are written: 10GiB, 512MiB, 1.5GiB."""
    for unit, factor in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size}B"


def _gib(size: int) -> str:
    """Sizes in a sum, all in GiB with one decimal, so the terms add up visibly."""
    return f"{size / GIB:.1f}GiB"


class FilterModule:
    """Tenancy planner filters."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_plan": tenancy_plan}
