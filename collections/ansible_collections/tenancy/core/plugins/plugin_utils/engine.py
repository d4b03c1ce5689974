"""The planner's last stage: each engine's vLLM arguments, environment and limits, and
the names of a tenant's Docker objects and paths."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils import adapters, mig, schema, sizing, tenant_spec
from ansible_collections.tenancy.core.plugins.plugin_utils.common import GIB

# CPU engines hold the KV cache in host RAM on top of the Python process, the
# weights and the tokenizer. 1.3-1.6 GiB per engine was measured for the tiny model
# (docs/benchmarks.md); 2 GiB leaves headroom for bigger tokenizers and the
# sampler's buffers.
CPU_ENGINE_OVERHEAD_BYTES = 2 * GIB

# The one name on every image engine's --allowed-media-domains: RFC 2606 reserves .invalid,
# so it never resolves, and no URL a client sends can name a host that vLLM will fetch.
NO_MEDIA_DOMAIN = "no-remote-media.invalid"

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

# Largest gpu_memory_utilization inside a MIG instance (room for the CUDA context).
MIG_MAX_UTILIZATION = 0.95

# Where every engine listens in its container (only its own gateway reaches it), and
# where it sees the shared read-only models and its tenant's own volume. The plan record
# carries all three (engine_port, models_mount, data_mount); the roles read them there.
ENGINE_PORT = 8000
MODELS_MOUNT = "/models"
DATA_MOUNT = "/data"

# The engine's metric files (PROMETHEUS_MULTIPROC_DIR): the tenant role creates it on the
# tenant's volume (tenant_metrics_subdir), owned by the engine's user.
METRICS_DIR = DATA_MOUNT + "/.metrics"

# vLLM's own cache, on the tenant's volume for every engine (the record of each model
# class it inspects; without it every start inspects again in a subprocess).
VLLM_CACHE_DIR = DATA_MOUNT + "/.cache/vllm"

ENGINE_LOGIN = "tenancy"

# Each tenant's engine, volume and files on the host belong to a uid (and gid) of its own,
# by default UID_BASE + its port: stable while the tenant exists, unique per host (ports
# are), and in a range no login account (1000-60000), systemd (nspawn's container ranges
# end at 1879048191) or useradd's subordinate ids (100000-600100000) hands out. MPS is
# the exception: NVIDIA's MPS control daemon runs one server per uid and queues clients
# of any other uid until it exits, so the tenants of one MPS GPU share MPS_UID_BASE + its
# index (their containers, networks and volumes stay apart).
# The two bases live in schema.py, whose text of the uid field (docs/reference.md) quotes them.
UID_BASE = schema.UID_BASE
MPS_UID_BASE = schema.MPS_UID_BASE


def tenant_uid(tenant: Mapping[str, Any], gpu: Mapping[str, Any] | None) -> int:
    """The tenant's uid (and gid): its own ``uid``, else the default for its port, or for
    an MPS tenant its GPU's shared uid."""
    if tenant.get("uid") is not None:
        return int(tenant["uid"])
    if gpu is not None and gpu.get("mode") == "mps":
        return MPS_UID_BASE + int(gpu["index"])
    return UID_BASE + int(tenant["port"])


# Where an engine looks for a Hugging Face repo id's snapshot (HF_HUB_CACHE), under the
# models mount: the host store keeps hub models in the hub cache's own layout
# (<models dir>/.hf/hub/models--org--name), and only the tenant's own repo is mounted
# there. HF_HOME (token, xet and assets caches) is on the tenant's own volume.
HUB_CACHE_SUBDIR = ".hf/hub"
HF_HOME_DIR = DATA_MOUNT + "/.cache/huggingface"
# A private model (tenant field model_private), on the tenant's own volume.
PRIVATE_MODEL_DIR = DATA_MOUNT + "/model"


def model_subdir(tenant: Mapping[str, Any]) -> str:
    """The tenant's model, relative to the models dir on the host and to the models mount
    in its engine: a local model's directory, or a hub model's repo in the hub cache."""
    if tenant["model_kind"] == "local":
        return tenant["model"]
    return f"{HUB_CACHE_SUBDIR}/models--{tenant['model'].replace('/', '--')}"


def model_mounts(tenant: Mapping[str, Any], models_dir: str, models_mount: str) -> list[dict[str, str]]:
    """What of the host's model store the tenant's engine mounts (read-only): its own
    model's directory and nothing above it, so no engine sees another tenant's model."""
    if tenant["model_kind"] == "private":
        return []  # on the tenant's own volume (PRIVATE_MODEL_DIR), nothing of the store
    subdir = model_subdir(tenant)
    return [{"source": f"{models_dir.rstrip('/')}/{subdir}", "target": f"{models_mount}/{subdir}"}]


def mounts(tenant: Mapping[str, Any], models_dir: str, models_mount: str = MODELS_MOUNT) -> dict[str, Any]:
    """The plan record's engine port and mount points, which the roles read."""
    return {
        "engine_port": ENGINE_PORT,
        "models_mount": models_mount,
        "data_mount": DATA_MOUNT,
        "model_mounts": model_mounts(tenant, models_dir, models_mount),
    }


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


def gpu_memory_fraction(
    tenant: Mapping[str, Any], gpu: Mapping[str, Any], mig_slice: tuple[mig.Profile, int] | None
) -> float:
    """vLLM's --gpu-memory-utilization for a GPU tenant, rounded down to a hundredth (the
    planner refuses a quota whose fraction is below 0.01)."""
    if mig_slice is not None:
        # The engine sees only its MIG instance, so the fraction is of the instance;
        # capped because vLLM needs room for its CUDA context inside the instance.
        return min(MIG_MAX_UTILIZATION, math.floor(tenant["gpu_memory"] * 100 / mig_slice[0].memory_bytes) / 100)
    # shared and mps: vLLM's fraction is of the GPU's total (torch's, a little below
    # NVML's), and the engine's CUDA context comes on top of it, so the fraction is of
    # the quota less the context term, rounded down. vLLM also refuses to start when
    # the GPU's free memory is below fraction x total; under MPS the free memory is
    # the pinned limit less the context, so a fraction of the whole quota would never
    # start (measured on an H200: a 24 GiB limit leaves 23.5 GiB free, 0.17 asks 23.77).
    usable = tenant["gpu_memory"] - sizing.CONTEXT_BYTES
    return math.floor(usable * 100 / gpu["memory_bytes"]) / 100


def engine_settings(
    tenant: dict[str, Any],
    models_mount: str,
    gpu: Mapping[str, Any] | None,
    cpuset: str | None,
    mig_slice: tuple[mig.Profile, int] | None,
    model_sizing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Engine arguments after ``vllm serve``, its environment and limits, for its slot."""
    model = {"local": f"{models_mount}/{tenant['model']}", "private": PRIVATE_MODEL_DIR}.get(
        tenant["model_kind"], tenant["model"]
    )
    args = [
        model,
        "--served-model-name",
        tenant["served_model_name"],
        "--host",
        "0.0.0.0",
        "--port",
        str(ENGINE_PORT),
        "--max-model-len",
        str(tenant["max_model_len"]),
        "--max-num-seqs",
        str(tenant["max_num_seqs"]),
        # The engine is only ever reached by its own gateway, which keeps the access log.
        "--disable-uvicorn-access-log",
    ]
    if tenant["quantization"]:
        args += ["--quantization", tenant["quantization"]]
    args += adapters.engine_args(tenant["adapters"], DATA_MOUNT)
    lora_bytes = (model_sizing or {}).get("lora_bytes", 0)
    if tenant["takes_images"]:
        # Videos are not part of the product: their limit is 0, so vLLM neither accepts
        # them nor reserves memory for them. max_images 0 serves an image model as text.
        limits = {"image": tenant["max_images"], "video": 0}
        args += ["--limit-mm-per-prompt", json.dumps(limits, separators=(",", ":"))]
        mm_cache_gib = MM_CACHE_GIB["cpu" if gpu is None else "gpu"]
        args += ["--mm-processor-cache-gb", f"{mm_cache_gib:g}"]
        # No remote media: vLLM fetches http(s) image URLs itself, from inside the engine,
        # where the only thing in reach is the tenant's own gateway (a server-side request
        # on the tenant's behalf). Its allow-list, given one name that cannot resolve,
        # refuses every http(s) URL with a 400 before any connection; data: URLs (how the
        # article sends images) do not go through it.
        args += ["--allowed-media-domains", NO_MEDIA_DOMAIN]
        mm_cache_bytes = int(mm_cache_gib * GIB) * MM_CACHE_COPIES
    else:
        mm_cache_bytes = 0
    env = {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": HF_HOME_DIR,
        "HF_HUB_CACHE": f"{models_mount}/{HUB_CACHE_SUBDIR}",
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
            # The adapters' slots are host memory here.
            "memory_limit": tenant["memory_limit"]
            or kv_gib * GIB + CPU_ENGINE_OVERHEAD_BYTES + mm_cache_bytes + lora_bytes,
        }
    fraction = gpu_memory_fraction(tenant, gpu, mig_slice)
    args += ["--gpu-memory-utilization", f"{fraction:.2f}"]
    # An absolute KV budget: what the quota leaves after the weights, the vision encoder's
    # activations (image models), the activations and graphs, and the CUDA context. vLLM
    # then sizes its KV cache to exactly that, whatever torch reports as the GPU's total
    # and whatever other tenants use, so the tenant's footprint is its quota. (With only
    # the fraction, vLLM multiplies it by torch's total, which is smaller than NVML's.)
    # Unknown models keep the fraction alone.
    kv_cache_bytes = None
    if model_sizing and model_sizing.get("known"):
        kv_cache_bytes = (
            tenant["gpu_memory"]
            - model_sizing["weights_bytes"]
            - model_sizing["vision_activation_bytes"]
            - model_sizing["reserve_bytes"]
            - model_sizing["context_bytes"]
            - lora_bytes
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


def client_address(tenant: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The address clients reach the tenant's port at: its bind_address, or for 0.0.0.0
    the host's address (``tenancy_address``, the inventory's ansible_host)."""
    host = tenant.get("host")
    if host is None:
        return None
    address = tenant["bind_address"]
    if address == "0.0.0.0":
        address = str((hosts.get(host) or {}).get("tenancy_address") or host)
        if address in ("localhost", "127.0.0.1"):
            address = "127.0.0.1"
    return address


def endpoint(tenant: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The tenant's OpenAI base URL as a client reaches it. Always https: the gateway
    answers nothing else on the tenant's port."""
    address = client_address(tenant, hosts)
    if address is None:
        return None
    shown = f"[{address}]" if ":" in address else address
    return f"https://{shown}:{tenant['port']}/v1"


def tls_sans(tenant: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The subject alternative names of the tenant's gateway certificate, in order, each
    once: the endpoint's address, ``localhost`` beside 127.0.0.1, the inventory host's
    name when it is a DNS name, then the tenant's ``tls_names``."""
    address = client_address(tenant, hosts)
    if address is None:
        return []
    names = [address]
    if address == "127.0.0.1":
        names.append("localhost")
    host = str(tenant.get("host"))
    if host not in ("localhost", "127.0.0.1"):
        names.append(host)
    names.extend(tenant.get("tls_names") or [])
    sans: list[str] = []
    for name in names:
        san = tenant_spec.tls_name(name)
        if san is not None and san not in sans:
            sans.append(san)
    return sans


def required_tls_names(tenant: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The names an operator's certificate must cover: the endpoint's address and every
    tls_names entry (as DNS:/IP: names)."""
    names = [client_address(tenant, hosts), *(tenant.get("tls_names") or [])]
    return [san for san in (tenant_spec.tls_name(n) for n in names if n) if san is not None]
