"""The tenant schema: the one source of truth for a tenant's fields and for the plan
record the planner hands the roles.

Everything that repeats these facts is made from this module, never kept by hand:

- ``tenant_spec`` takes its defaults and field list from ``TENANT_FIELDS``;
- ``scripts/gen_docs.py`` writes, from ``TENANT_FIELDS`` and ``RECORD_KEYS``:
  the lifecycle verbs' field list (``playbooks/vars/tenant_fields.yml``), the
  tenancy_plan filter's RETURN, the ``tenant_plan`` options of the tenant role's
  argument_specs, and the tenant fields table of docs/reference.md.
  ``scripts/gen_docs.py --check`` (``make lint``, and a unit test) fails when any of them
  is stale.

The order of ``TENANT_FIELDS`` is the order of a plan record's first keys; changing it
changes every record, and so every tenant's converge. Append new fields at the end.
"""

from __future__ import annotations

from typing import Any

REQUIRED = ("name", "port")

# Default uids (engine.tenant_uid): this base + the tenant's port; MPS tenants of a GPU share
# the MPS base + the GPU's index. The uid field's text below is made from them.
UID_BASE = 2_000_000_000
MPS_UID_BASE = UID_BASE + 65536

# field -> default (None: unset), how the docs show the default when it is not a plain
# value, and what the field means (docs/reference.md's table, markdown).
TENANT_FIELDS: dict[str, dict[str, Any]] = {
    "name": {
        "shown": "required",
        "meaning": "`[A-Za-z0-9][A-Za-z0-9-]{0,30}`, unique ignoring case (it becomes container, network and "
        "host names)",
    },
    "port": {"shown": "required", "meaning": "host port of the gateway, 1024-65535, unique per host"},
    "state": {"default": "present", "meaning": "`present` or `absent`"},
    "model": {
        "default": "tiny-qwen3",
        "meaning": "a directory under the models dir (`/var/lib/tenancy/models/<model>`) or a Hugging Face repo id "
        "`org/name` served from the hub cache there (`.hf/hub/models--org--name`). The engine mounts that one "
        "directory, read-only, and nothing else of the models dir",
    },
    "served_model_name": {"default": None, "shown": "last part of `model`", "meaning": "the `model` name clients send"},
    "gpu_memory": {
        "default": "1G",
        "meaning": "the quota. `10G` = `10GiB` = `10240M` = 10737418240 (G means GiB). On a GPU: "
        "`--gpu-memory-utilization` = (quota - the CUDA context term) ÷ total; on a CPU host: the KV cache, "
        "`VLLM_CPU_KVCACHE_SPACE`, in whole GiB",
    },
    "quantization": {
        "default": None,
        "shown": "none",
        "meaning": "`int4` or `int8` (the article's `--quant int4`): checked against the checkpoint's own "
        "`quantization_config` (AWQ, GPTQ or compressed-tensors with that many bits) and then left to vLLM, which "
        "reads the method from the checkpoint and picks its fastest kernel. Or one of vLLM's `--quantization` "
        "methods: on a quantized checkpoint it must be the checkpoint's (`awq`, `awq_marlin`, …); on an unquantized "
        "one only methods that quantize while loading (`fp8`, `bitsandbytes`, `experts_int8`). Anything else is "
        "refused before a host changes. Unset: a quantized checkpoint is served as it is",
    },
    "shm_size": {
        "default": "1G",
        "meaning": "`/dev/shm` of the engine (Docker's 64 MB default is too small for vLLM)",
    },
    "max_model_len": {
        "default": None,
        "shown": "`512`; `4096` for a model that takes images",
        "meaning": "`--max-model-len`, always set. Image tokens count against it (Qwen3-VL: one token per 32x32 "
        "pixels, so a 1920x1080 photo is about 2,000); the default for an image model holds the article's request "
        "(one photo, `max_tokens: 512`)",
    },
    "max_images": {
        "default": None,
        "shown": "`1` on a model that takes images, else `0`",
        "meaning": 'images per prompt (`--limit-mm-per-prompt \'{"image":N,"video":0}\'`; videos are off). A '
        'request with more gets vLLM\'s 400 "At most N image(s) may be provided in one prompt". `0` serves an image '
        "model as text only. Refused on a model whose `config.json` has no `vision_config`. Images come inline as "
        "`data:` URLs; an `http(s)` image URL gets a 400 before any connection (`--allowed-media-domains "
        "no-remote-media.invalid`): the engine must not fetch on a client's behalf from inside the tenant's network",
    },
    "max_num_seqs": {"default": 16, "meaning": "`--max-num-seqs`, concurrent sequences per engine"},
    "rpm_limit": {
        "default": 600,
        "meaning": "requests per minute the gateway lets through (a sliding minute); above it: 429",
    },
    "max_body_size": {
        "default": "16M",
        "meaning": "largest request body; above it: 413 (leave room for base64 images)",
    },
    "bind_address": {
        "default": "0.0.0.0",
        "meaning": "host address the port is published on (`127.0.0.1` in the demo)",
    },
    "memory_limit": {
        "default": None,
        "shown": "derived",
        "meaning": "RAM limit of the engine container: on CPU hosts quota + 2 GiB, on GPU hosts quota + 16 GiB; a "
        "tenant that takes images adds twice its processor cache (`--mm-processor-cache-gb`, 0.5 GiB on CPU, 4 GiB "
        "on GPU: vLLM holds it in two processes)",
    },
    "pids_limit": {"default": 1024, "meaning": "pids limit of the engine container"},
    "host": {
        "default": None,
        "shown": "placed",
        "meaning": "pin the tenant to an inventory host of group `tenancy_hosts`",
    },
    "gpu": {
        "default": None,
        "shown": "placed",
        "meaning": "pin the tenant to a GPU index of its (pinned) host",
    },
    "cpus": {
        "default": None,
        "shown": "share",
        "meaning": "CPU hosts: cores of the tenant's own (`cpuset`). Cores are handed out in contiguous blocks in "
        "list order, so appending a tenant moves no one; tenants without `cpus` share the remaining cores equally "
        "(and move when their number changes). The demo gives each tenant one core",
    },
    "concurrency": {
        "default": 1,
        "meaning": "full-length sequences the quota must hold; the KV term of the minimum is "
        "`max_model_len` x `concurrency`",
    },
    "mig_profile": {
        "default": None,
        "shown": "smallest that fits",
        "meaning": "force a MIG profile (e.g. `2g.20gb` for more compute than `1g.20gb`)",
    },
    "mps_thread_percentage": {
        "default": None,
        "shown": "none",
        "meaning": "MPS GPUs: `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` of the tenant, 1-100",
    },
    "uid": {
        "default": None,
        "shown": f"{UID_BASE} + `port`",
        "meaning": "uid and gid of the tenant's engine, its volume and its files on the host: 65536-2147483647, "
        "unique per host, and no account or subordinate-id range (`/etc/subuid`, `/etc/subgid`) of the host may "
        "hold it (checked before any change). The default follows the port, so it is stable while the tenant "
        "exists. MPS tenants of one GPU share one uid (MPS serves one uid at a time): "
        f"{MPS_UID_BASE} + the GPU's index",
    },
    "tls_names": {
        "default": None,
        "shown": "none",
        "meaning": "more names (DNS names, `*.` wildcards or IP addresses) clients reach the tenant's https endpoint "
        "at, added to the subject alternative names of its gateway's certificate. The certificate always holds the "
        "endpoint's address (and the inventory host's name, if it is a DNS name; `localhost` for 127.0.0.1)",
    },
    "tls_cert": {
        "default": None,
        "shown": "issued by the bundle CA",
        "meaning": "the operator's own certificate for the gateway (a public or corporate CA): a PEM file on the "
        "controller, the server certificate first, then its intermediates; a relative path is taken from the "
        "inventory's directory. Goes with `tls_key`. Refused before any change: a file that cannot be read, a key "
        "that does not match, a certificate that has expired or ends within `tls_min_days`, or one whose names do "
        "not cover the endpoint's address and every `tls_names` entry",
    },
    "tls_key": {
        "default": None,
        "shown": "none",
        "meaning": "the unencrypted PEM private key of `tls_cert`, on the controller, readable by its owner only "
        "(mode 0600 or stricter; refused otherwise)",
    },
    "tls_min_days": {
        "default": 14,
        "meaning": "`tls_cert` must be valid for at least this many more days when a run starts",
    },
    "adapters": {
        "default": [],
        "shown": "none",
        "meaning": "LoRA adapters of this tenant only: a list of `{name, path}`, each a PEFT directory on the "
        "controller (`adapter_config.json`, `adapter_model.safetensors`; a relative path is taken from the "
        "inventory's directory). Copied onto the tenant's own volume and served by its engine alone "
        "(`--enable-lora --lora-modules`); a request's `model` may name one. Refused before any change: a name "
        "not `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` or equal to `served_model_name`, a directory without an adapter, "
        "an adapter trained on another base model (`base_model_name_or_path`), a rank above 512, or weights whose "
        "shapes do not fit the model. Their memory counts in the quota",
    },
    "model_private": {
        "default": False,
        "meaning": "`true`: `model` is a model directory on the controller (its `config.json` and weights; a "
        "relative path is taken from the inventory's directory), copied onto this tenant's own volume only, "
        "readable by its engine's uid alone, crypto-erased with the volume on `tenant-remove`. No host store, and "
        "no other engine, ever holds it. `served_model_name` defaults to the directory's name",
    },
}

# Built-in defaults; inventory `tenancy_tenant_defaults` and then each tenant override them.
BUILTIN_DEFAULTS: dict[str, Any] = {
    field: spec["default"] for field, spec in TENANT_FIELDS.items() if field not in REQUIRED
}

FIELDS = frozenset(TENANT_FIELDS)

# The fields the lifecycle verbs take as extra vars (-e port=30003): all but the name,
# which is -e tenant=NAME.
VERB_FIELDS = tuple(field for field in TENANT_FIELDS if field != "name")

# The plan record, key -> its Ansible type, what it holds and (lists) the type of its
# elements. In the order of a placed record's keys. Every key is in every record, except
# those marked "only" (a record of that state only); "null" marks a key that may be null.
RECORD_KEYS: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "description": "Tenant name"},
    "port": {"type": "int", "description": "The tenant's host port (its gateway)"},
    "state": {
        "type": "str",
        "description": "present or absent; unplaced (with tenancy_allow_unplaced) for a tenant that fits no GPU",
    },
    "model_kind": {
        "type": "str",
        "description": "local (a directory under the models dir), hub (a Hugging Face repo id) or private (the "
        "tenant's own, from the controller: model is its absolute path there)",
    },
    "model": {"type": "str", "description": "The model, as the tenant named it"},
    "served_model_name": {"type": "str", "description": "The model name clients send"},
    "gpu_memory": {"type": "int", "description": "The quota in bytes, as the tenant set it"},
    "quantization": {
        "null": True,
        "type": "str",
        "description": "vLLM's --quantization, or null (int4/int8 resolve to null against the checkpoint)",
    },
    "shm_size": {"type": "int", "description": "The engine's /dev/shm in bytes"},
    "max_model_len": {"type": "int", "description": "The context length, the tenant's or the per-kind default"},
    "max_images": {"type": "int", "description": "Images per prompt (--limit-mm-per-prompt), 0 for text only"},
    "max_num_seqs": {"type": "int", "description": "vLLM's --max-num-seqs"},
    "rpm_limit": {"type": "int", "description": "Requests a minute the gateway lets through"},
    "max_body_size": {"type": "int", "description": "Largest request body the gateway accepts, in bytes"},
    "bind_address": {"type": "str", "description": "Host address the tenant's port is published on"},
    "pids_limit": {"type": "int", "description": "The engine container's process limit"},
    "memory_limit": {
        "null": True,
        "type": "int",
        "description": "The engine container's memory limit in bytes (the tenant's, or derived from its quota)",
    },
    "cpus": {"null": True, "type": "int", "description": "Cores the tenant asked for, or null for an equal share"},
    "concurrency": {"type": "int", "description": "Requests the quota is sized for at max_model_len each"},
    "mig_profile": {"null": True, "type": "str", "description": "The MIG profile (MIG tenants), else null"},
    "mps_thread_percentage": {
        "null": True,
        "type": "int",
        "description": "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE (MPS tenants), or null",
    },
    "host": {"null": True, "type": "str", "description": "Inventory host the tenant runs on"},
    "uid": {"type": "int", "description": "uid and gid of the engine process and of the tenant's files on the host"},
    "tls_names": {
        "type": "list",
        "elements": "str",
        "description": "More names of the tenant's endpoint for its certificate, as the tenant set them",
    },
    "tls_cert": {
        "null": True,
        "type": "str",
        "description": "The operator's certificate file on the controller (absolute), or null for the bundle CA's",
    },
    "tls_key": {"null": True, "type": "str", "description": "The operator's key file on the controller, or null"},
    "tls_min_days": {"type": "int", "description": "Days tls_cert must still be valid when a run starts"},
    "adapters": {
        "type": "list",
        "elements": "dict",
        "description": "The tenant's LoRA adapters: name, path (absolute, on the controller), rank, base and files "
        "(name, bytes, sha256 of each); served from /data/adapters/<name>",
    },
    "model_private": {"type": "bool", "description": "The model is the tenant's own, copied onto its volume"},
    "model_files": {
        "type": "list",
        "elements": "dict",
        "description": "A private model's files (name relative to its directory, bytes, sha256), copied to "
        "/data/model; empty for a shared model",
    },
    "takes_images": {
        "type": "bool",
        "description": "The model has a vision tower (config.json has vision_config), or the tenant set max_images",
    },
    "endpoint": {
        "null": True,
        "type": "str",
        "description": "The tenant's OpenAI base URL as clients reach it, https (bind_address, or the host's "
        "address for 0.0.0.0)",
    },
    "tls_sans": {
        "type": "list",
        "elements": "str",
        "description": "Subject alternative names of the gateway's certificate (DNS:name or IP:address): the "
        "endpoint's address, the host's name and tls_names",
    },
    "metrics_port": {
        "type": "int",
        "description": "Host port of the tenant's operator-only metrics (port + metrics_port_offset)",
    },
    "unplaced_reason": {
        "type": "str",
        "only": "unplaced",
        "description": "Why an unplaced tenant fits nowhere (unplaced records only)",
    },
    "gpu": {"null": True, "type": "int", "description": "GPU index, or null on a CPU host"},
    "mode": {"null": True, "type": "str", "description": "cpu, shared, mps or mig (null for an unplaced tenant)"},
    "mig_start": {
        "null": True,
        "type": "int",
        "description": "The MIG instance's start slice (MIG tenants), else null",
    },
    "memory_bytes": {"type": "int", "description": "The quota in bytes"},
    "engine_args": {"type": "list", "elements": "str", "description": "Arguments after vllm serve"},
    "engine_env": {"type": "dict", "description": "Environment of the engine container"},
    "gpu_memory_utilization": {"null": True, "type": "float", "description": "vLLM fraction on a GPU, else null"},
    "kv_cache_bytes": {
        "null": True,
        "type": "int",
        "description": "The KV cache the engine gets. On a GPU (--kv-cache-memory-bytes) the quota less weights, "
        "the vision encoder's activations, activations and graphs, and the CUDA context; null for a model the "
        "planner cannot size. On a CPU host the quota.",
    },
    "cpuset": {
        "null": True,
        "type": "str",
        "description": "The engine's cores (CPU hosts whose core count is known), else null",
    },
    "cpu_shared": {
        "type": "bool",
        "description": "The cores are shared with another tenant (tenancy_cpu_oversubscribe)",
    },
    # Not applied by the tenant role ("applied": False): the planner's account of numbers
    # that are keys of their own. Its source differs between a fresh host's first run (the
    # tiny models not yet written: the known-models table) and later runs (config.json).
    "sizing": {"type": "dict", "applied": False, "description": "The tenancy_sizing terms of the tenant's model"},
    "names": {"type": "dict", "description": "Names of the tenant's Docker objects and host paths"},
    "engine_port": {
        "type": "int",
        "description": "The port the engine listens on inside its container (only its gateway reaches it)",
    },
    "models_mount": {"type": "str", "description": "Where the engine sees its own model (model_mounts) under"},
    "data_mount": {"type": "str", "description": "Where the engine sees the tenant's own (encrypted) volume"},
    "model_mounts": {
        "type": "list",
        "elements": "dict",
        "description": "What of the host's model store the engine mounts, read-only: source (host path) and "
        "target (in the engine) of its own model's directory only, never the store itself",
    },
}


# Keys the tenant role never applies to a host, left out of the fast path's fingerprint
# (filter tenancy_converge_fingerprint).
NOT_APPLIED = frozenset(key for key, spec in RECORD_KEYS.items() if spec.get("applied") is False)


def record_keys(state: str) -> list[str]:
    """The keys a plan record of ``state`` (present, absent, unplaced) carries."""
    return [key for key, spec in RECORD_KEYS.items() if spec.get("only", state) == state]


def _typed(spec: dict[str, Any]) -> dict[str, Any]:
    """A record key's Ansible type, and its elements' for a list."""
    return {"type": spec["type"], **({"elements": spec["elements"]} if "elements" in spec else {})}


def return_doc() -> dict[str, Any]:
    """The tenancy_plan filter's RETURN, as data."""
    contains = {key: {"description": spec["description"], **_typed(spec)} for key, spec in RECORD_KEYS.items()}
    return {
        "_value": {
            "description": "One record per tenant, sorted by name.",
            "type": "list",
            "elements": "dict",
            "contains": contains,
        }
    }


def record_argument_spec() -> dict[str, Any]:
    """``tenant_plan``'s options in the tenant role's argument_specs. Every key that is
    never null is required (a record without one fails before a task runs); Ansible
    checks the type of the others when they are set."""
    return {
        key: {
            **_typed(spec),
            **({"required": True} if "only" not in spec and not spec.get("null") else {}),
            "description": spec["description"],
        }
        for key, spec in RECORD_KEYS.items()
    }
