"""The planner's first stage: the tenant fields, their defaults, and the validation of
the whole input before anything is sized or placed."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import adapters, schema, sizing, tls
from ansible_collections.tenancy.core.plugins.plugin_utils.common import as_int, field_error, parse_size

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,30}$")

# A Hugging Face repo id: "org/name" with the characters the Hub allows.
HF_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

LOCAL_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

IPV4_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")

# vLLM's --quantization choices the planner accepts: the keys of the one quantization
# table, which also says how each is sized (sizing.QUANTIZATION_BYTES).
QUANTIZATIONS = frozenset(sizing.QUANTIZATION_BYTES)

# User-facing aliases (the article's `--quant int4`): the weights' bits. They are
# resolved against the checkpoint's own quantization_config and never passed to vLLM,
# which reads the method from the checkpoint (and picks its fastest kernel, e.g.
# awq_marlin, which an explicit --quantization awq would turn off).
QUANTIZATION_ALIASES = {"int4": 4, "int8": 8}

# Methods that quantize an unquantized (bf16/fp16) checkpoint while loading it. Every
# other method needs a checkpoint quantized that way.
QUANTIZE_ON_LOAD = frozenset({"fp8", "bitsandbytes", "experts_int8"})

STATES = ("present", "absent")

# The fields, their built-in defaults (inventory `tenancy_tenant_defaults` and then each
# tenant override them) and the required ones: the tenant schema's.
BUILTIN_DEFAULTS = schema.BUILTIN_DEFAULTS
FIELDS = schema.FIELDS
REQUIRED = schema.REQUIRED

# max_model_len when a tenant does not set it, by what its model takes. An image model
# needs room for the image's tokens on top of the text: the article's request (one
# photo, max_tokens 512) is about 1,000 to 2,500 prompt tokens on Qwen3-VL (one token
# per 32x32 pixels), so 4096 holds it with room to spare.
MAX_MODEL_LEN_DEFAULTS = {"text": 512, "images": 4096}

# Images per prompt on a model that takes them, unless max_images says otherwise.
MAX_IMAGES_DEFAULT = 1

# A tenant's metrics port is its port plus this (tenancy_metrics_port_offset).
METRICS_PORT_OFFSET = 10000


def find_tenant(entries: Sequence[Any], name: str) -> list[Mapping[str, Any]]:
    """The entries of a tenants list whose name is ``name``, ignoring case (names are
    unique ignoring case, so at most one in a valid list)."""
    wanted = re.compile(f"(?i)^{re.escape(name)}$")
    return [e for e in entries if isinstance(e, Mapping) and wanted.match(str(e.get("name", "")))]


def unknown_tenant(entries: Sequence[Any], name: str) -> str:
    """The error for a name that is not in the tenants list."""
    names = ", ".join(str(e.get("name")) for e in entries if isinstance(e, Mapping)) or "none"
    return f"unknown tenant {name}; tenants are: {names}"


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


def validate_bind_address(value: Any, tenant: str) -> str:
    match = IPV4_RE.match(str(value))
    if not match or any(int(octet) > 255 for octet in match.groups()):
        raise field_error(tenant, "bind_address", value, "expected an IPv4 address such as 0.0.0.0 or 127.0.0.1")
    return str(value)


def model_reference(value: Any, tenant: str) -> tuple[str, str]:
    """Return (kind, reference) where kind is 'local' or 'hub'."""
    if not isinstance(value, str) or not value:
        raise field_error(tenant, "model", value, "expected a directory under the models dir or a Hugging Face repo id")
    if LOCAL_MODEL_RE.match(value) and value not in (".", ".."):
        return "local", value
    if HF_REPO_RE.match(value) and ".." not in value:
        return "hub", value
    raise field_error(
        tenant,
        "model",
        value,
        "expected a directory name under the models dir (e.g. tiny-qwen3) or a Hugging Face repo id (org/name)",
    )


def validate_tenant(
    raw: Mapping[str, Any], defaults: Mapping[str, Any], index: int, files_dir: str = ""
) -> dict[str, Any]:
    """Merge defaults into one tenant and validate every field. Returns normalised values."""
    label = str(raw.get("name")) if raw.get("name") not in (None, "") else f"#{index + 1}"
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise field_error(
            label, unknown[0], raw[unknown[0]], f"unknown field; known fields are {', '.join(sorted(FIELDS))}"
        )
    for field in REQUIRED:
        if raw.get(field) in (None, ""):
            raise field_error(label, field, raw.get(field), "is required")

    spec = {**BUILTIN_DEFAULTS, **defaults, **raw}
    name = spec["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise field_error(label, "name", name, "must match [A-Za-z0-9][A-Za-z0-9-]{0,30}")

    out: dict[str, Any] = {"name": name}
    out["port"] = as_int(spec["port"], name, "port", 1024, 65535)
    if spec["state"] not in STATES:
        raise field_error(name, "state", spec["state"], f"must be one of {', '.join(STATES)}")
    out["state"] = spec["state"]
    private = spec["model_private"]
    if not isinstance(private, bool):
        raise field_error(name, "model_private", private, "expected true or false")
    if private:
        if not isinstance(spec["model"], str) or not spec["model"]:
            raise field_error(
                name, "model", spec["model"], "with model_private, the model's directory on the controller"
            )
        out["model_kind"], out["model"] = "private", tls.resolve(spec["model"], files_dir)
    else:
        out["model_kind"], out["model"] = model_reference(spec["model"], name)
    served = spec["served_model_name"] or out["model"].rstrip("/").rsplit("/", 1)[-1]
    if not isinstance(served, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}", served):
        raise field_error(name, "served_model_name", served, "expected letters, digits and . _ / - (at most 128)")
    out["served_model_name"] = served
    out["gpu_memory"] = parse_size(spec["gpu_memory"], name, "gpu_memory")
    quantization = spec["quantization"]
    if quantization not in (None, "", "none") and quantization not in QUANTIZATIONS | set(QUANTIZATION_ALIASES):
        raise field_error(
            name,
            "quantization",
            quantization,
            f"must be int4 or int8 (resolved against the checkpoint), one of vLLM's methods "
            f"({', '.join(sorted(QUANTIZATIONS))}), or null",
        )
    out["quantization"] = quantization if quantization not in ("", "none") else None
    out["shm_size"] = parse_size(spec["shm_size"], name, "shm_size")
    out["max_model_len"] = (
        None if spec["max_model_len"] in (None, "") else as_int(spec["max_model_len"], name, "max_model_len", 1)
    )
    out["max_images"] = None if spec["max_images"] in (None, "") else as_int(spec["max_images"], name, "max_images", 0)
    out["max_num_seqs"] = as_int(spec["max_num_seqs"], name, "max_num_seqs", 1)
    out["rpm_limit"] = as_int(spec["rpm_limit"], name, "rpm_limit", 1)
    out["max_body_size"] = parse_size(spec["max_body_size"], name, "max_body_size")
    out["bind_address"] = validate_bind_address(spec["bind_address"], name)
    out["pids_limit"] = as_int(spec["pids_limit"], name, "pids_limit", 64)
    out["memory_limit"] = (
        None if spec["memory_limit"] in (None, "") else parse_size(spec["memory_limit"], name, "memory_limit")
    )
    out["cpus"] = None if spec["cpus"] in (None, "") else as_int(spec["cpus"], name, "cpus", 1)
    out["concurrency"] = as_int(spec["concurrency"], name, "concurrency", 1)
    if spec["mig_profile"] not in (None, "") and not isinstance(spec["mig_profile"], str):
        raise field_error(name, "mig_profile", spec["mig_profile"], "expected a MIG profile name such as 1g.10gb")
    out["mig_profile"] = spec["mig_profile"] or None
    out["mps_thread_percentage"] = (
        None
        if spec["mps_thread_percentage"] in (None, "")
        else as_int(spec["mps_thread_percentage"], name, "mps_thread_percentage", 1, 100)
    )
    out["host"] = spec["host"]
    out["gpu_pin"] = None if spec["gpu"] is None else as_int(spec["gpu"], name, "gpu", 0)
    if out["gpu_pin"] is not None and out["host"] is None:
        raise field_error(name, "gpu", spec["gpu"], "pinning a GPU needs the tenant's host pinned too")
    # Resolved after placement (engine.tenant_uid): the default depends on the GPU's mode.
    out["uid"] = None if spec["uid"] in (None, "") else as_int(spec["uid"], name, "uid", 65536, 2147483647)
    out["tls_names"] = validate_tls_names(spec["tls_names"], name)
    for field in ("tls_cert", "tls_key"):
        value = spec[field]
        if value not in (None, "") and not isinstance(value, str):
            raise field_error(name, field, value, "expected the path of a PEM file on the controller")
        out[field] = value or None
    if (out["tls_cert"] is None) != (out["tls_key"] is None):
        missing = "tls_key" if out["tls_key"] is None else "tls_cert"
        raise field_error(name, missing, None, "tls_cert and tls_key go together: set both, or neither")
    out["tls_min_days"] = as_int(spec["tls_min_days"], name, "tls_min_days", 0, 3650)
    out["adapters"] = adapters.validate(spec["adapters"], name)
    out["model_private"] = private
    out["model_files"] = []
    for adapter in out["adapters"]:
        if adapter["name"] == served:
            raise field_error(name, "adapters", adapter["name"], "is the model's own served_model_name; name it apart")
    return out


# A DNS name a certificate may hold: letters, digits and hyphens per label, 1-63 each,
# 253 in all; a wildcard only as the whole first label.
DNS_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def tls_name(value: Any) -> str | None:
    """The subject alternative name (``DNS:name`` or ``IP:address``) for one name a
    client uses, or None when it is neither a DNS name nor an IP address."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return f"IP:{ipaddress.ip_address(value)}"
    except ValueError:
        pass
    labels = value.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            return None
    if len(value) > 253 or not labels or not all(DNS_LABEL_RE.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None  # 10.0.0.256 and the like: a mistyped address, not a name
    return f"DNS:{value.lower()}"


def validate_tls_names(value: Any, tenant: str) -> list[str]:
    """tls_names: a list of DNS names or IP addresses (a single string is one name)."""
    if value in (None, ""):
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence) or isinstance(names, Mapping):
        raise field_error(tenant, "tls_names", value, "expected a list of DNS names or IP addresses")
    for name in names:
        if tls_name(name) is None:
            raise field_error(
                tenant,
                "tls_names",
                value,
                f"{name!r} is neither a DNS name (letters, digits, hyphens; a wildcard only as `*.` in front) "
                "nor an IP address",
            )
    return [str(name) for name in names]


def resolve_model_kind(tenant: dict[str, Any], models_dir: str) -> None:
    """Fill in what depends on the model itself: ``takes_images`` (it has a vision
    tower), ``max_images`` (images per prompt; 0 on a text-only model) and
    ``max_model_len`` when the tenant leaves them unset."""
    vision = sizing.takes_images(tenant["model"], models_dir)
    if tenant["max_images"] and vision is False:
        raise field_error(
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
    stored = sizing.checkpoint_quantization(tenant["model"], models_dir)
    model = tenant["model"]

    def refuse(why: str) -> AnsibleFilterError:
        return field_error(tenant["name"], "quantization", asked, why)

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


def check_names(tenants: list[dict[str, Any]]) -> None:
    """Before placement: a duplicate name is an input error whatever fits where."""
    seen_names: dict[str, str] = {}
    for tenant in tenants:
        key = tenant["name"].lower()
        if key in seen_names:
            other = seen_names[key]
            why = "duplicate name" if other == tenant["name"] else f"collides with tenant {other!r} (names ignore case)"
            raise field_error(tenant["name"], "name", tenant["name"], why)
        seen_names[key] = tenant["name"]


def check_ports(tenants: list[dict[str, Any]], metrics_port_offset: int = METRICS_PORT_OFFSET) -> None:
    """After placement (ports are per host)."""
    # Ports are host ports: each tenant's own and its metrics port (port + offset).
    seen_ports: dict[tuple[Any, int], str] = {}
    # A tenant being removed frees its ports in the same run.
    present = [t for t in tenants if t["state"] != "absent"]
    for tenant in present:
        key = (tenant["host"], tenant["port"])
        if key in seen_ports:
            raise field_error(tenant["name"], "port", tenant["port"], f"already used by tenant {seen_ports[key]!r}")
        seen_ports[key] = tenant["name"]
    # With one offset for all, two metrics ports never meet; a metrics port can be
    # another tenant's port.
    for tenant in present:
        metrics_port = tenant["port"] + metrics_port_offset
        if not 1024 <= metrics_port <= 65535:
            raise field_error(
                tenant["name"],
                "port",
                tenant["port"],
                f"its metrics port would be {metrics_port} (port + tenancy_metrics_port_offset "
                f"{metrics_port_offset}), outside 1024-65535; pick a port below {65536 - metrics_port_offset} "
                "or another offset",
            )
        other = seen_ports.get((tenant["host"], metrics_port))
        if other is not None:
            raise field_error(
                tenant["name"],
                "port",
                tenant["port"],
                f"its metrics port {metrics_port} (port + tenancy_metrics_port_offset {metrics_port_offset}) "
                f"is the port of tenant {other!r}",
            )


def check_uids(tenants: list[dict[str, Any]], uids: Mapping[str, int], gpus: Mapping[str, Any]) -> None:
    """After placement: no two tenants of a host share a uid, except the tenants of one
    MPS GPU, which must (MPS serves one uid at a time)."""
    seen: dict[tuple[Any, int], dict[str, Any]] = {}
    mps_uid: dict[tuple[Any, int], tuple[str, int]] = {}
    for tenant in tenants:
        if tenant["state"] == "absent":
            continue
        uid, gpu = uids[tenant["name"]], gpus.get(tenant["name"])
        mps = gpu is not None and gpu.get("mode") == "mps"
        if mps:
            first = mps_uid.setdefault((tenant["host"], gpu["index"]), (tenant["name"], uid))
            if first[1] != uid:
                raise field_error(
                    tenant["name"],
                    "uid",
                    uid,
                    f"tenant {first[0]!r} on the same MPS GPU {gpu['index']} runs as uid {first[1]}, and MPS "
                    "serves one uid at a time: leave uid unset on MPS tenants, or give them all the same",
                )
        other = seen.get((tenant["host"], uid))
        if other is not None and not (mps and other["mps"] and other["gpu"] == gpu["index"]):
            raise field_error(
                tenant["name"], "uid", uid, f"already the uid of tenant {other['name']!r} on host {tenant['host']!r}"
            )
        seen.setdefault(
            (tenant["host"], uid), {"name": tenant["name"], "mps": mps, "gpu": None if gpu is None else gpu["index"]}
        )


def validate_tenants(
    tenants: Any, defaults: Mapping[str, Any], overrides: Mapping[str, Any], models_dir: str, files_dir: str = ""
) -> list[dict[str, Any]]:
    """The whole input, checked before anything is sized or placed: the shared defaults
    and overrides, every tenant's fields (with the defaults under and the overrides
    over them), what depends on each tenant's model, and the names across tenants."""
    shared_fields = FIELDS - {"name", "port"}
    for variable, values in (("tenancy_tenant_defaults", defaults), ("tenancy_tenant_overrides", overrides)):
        unknown = sorted(set(values) - shared_fields)
        if unknown:
            raise AnsibleFilterError(
                f"{variable}: unknown field {unknown[0]!r}; known fields are {', '.join(sorted(shared_fields))}"
            )
    validated = [
        validate_tenant({**raw, **overrides}, defaults, i, files_dir)
        for i, raw in enumerate(normalise_tenants(tenants))
    ]
    for tenant in validated:
        resolve_model_kind(tenant, models_dir)
        resolve_quantization(tenant, models_dir)
    check_names(validated)
    return validated
