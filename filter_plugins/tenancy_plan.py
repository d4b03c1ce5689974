"""The filter tenancy_plan: tenant spec validation and planning, the only place that
decides anything.

Every playbook runs the tenants spec through ``tenancy_plan`` before any host is
touched. The filter is a thin orchestrator over the planner's stages, each a module of
the bundle's collection (collections/ansible_collections/tenancy/core/plugins/plugin_utils/):

1. ``tenant_spec``: normalise the input (list, JSON, or the compact
   ``name:gpu_memory:port`` string) and validate the whole of it, every tenant's fields
   and the names across tenants;
2. ``sizing``: what each tenant's model needs (weights, KV cache, vision encoder,
   activations, CUDA context);
3. ``placement`` and ``cpusets``: a host, a GPU, a MIG slice or a set of cores for each
   tenant; then the checks that depend on where a tenant landed (ports per host, the
   quota against the model's minimum and the slot);
4. ``engine``: the engine arguments, environment and limits, and the names of each
   tenant's Docker objects.

Roles take these values from the plan and never re-derive them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils import (
    adapters,
    cpusets,
    engine,
    files,
    sizing,
    tenant_spec,
    tls,
)
from ansible_collections.tenancy.core.plugins.plugin_utils.common import field_error, format_bytes
from ansible_collections.tenancy.core.plugins.plugin_utils.placement import Placement, place

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
    description:
      - The model store's directory on the hosts (tenancy_models_dir). Each engine mounts only its own
        model's directory under it (the record's C(model_mounts)).
      - Local models' config.json is read there on the controller for sizing, when it is readable.
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
  files_dir:
    description:
      - The directory a relative C(tls_cert), C(tls_key) or adapter C(path) is taken from
        (playbooks pass the inventory's directory). The files are read here, on the
        controller, and checked.
    type: str
    default: ""
  now:
    description: The time certificates are checked at (Unix seconds); the controller's clock when unset.
    type: float
"""

EXAMPLES = r"""
- name: Plan the tenants
  ansible.builtin.set_fact:
    tenancy_plan: "{{ tenants | tenancy_plan(tenancy_tenant_defaults, {'localhost': {}}) }}"

# Compact form from the command line:
#   ansible-playbook site.yml -e tenants=companyA:2G:30001,companyB:2G:30002
"""

RETURN = r"""
# generated by scripts/gen_docs.py from tenancy.core's schema (RECORD_KEYS); do not edit.
_value:
  description: One record per tenant, sorted by name.
  type: list
  elements: dict
  contains:
    name:
      description: Tenant name
      type: str
    port:
      description: The tenant's host port (its gateway)
      type: int
    state:
      description: present or absent; unplaced (with tenancy_allow_unplaced) for a tenant that fits no GPU
      type: str
    model_kind:
      description: 'local (a directory under the models dir), hub (a Hugging Face repo id) or private (the tenant''s
        own, from the controller: model is its absolute path there)'
      type: str
    model:
      description: The model, as the tenant named it
      type: str
    served_model_name:
      description: The model name clients send
      type: str
    gpu_memory:
      description: The quota in bytes, as the tenant set it
      type: int
    quantization:
      description: vLLM's --quantization, or null (int4/int8 resolve to null against the checkpoint)
      type: str
    shm_size:
      description: The engine's /dev/shm in bytes
      type: int
    max_model_len:
      description: The context length, the tenant's or the per-kind default
      type: int
    max_images:
      description: Images per prompt (--limit-mm-per-prompt), 0 for text only
      type: int
    max_num_seqs:
      description: vLLM's --max-num-seqs
      type: int
    rpm_limit:
      description: Requests a minute the gateway lets through
      type: int
    max_body_size:
      description: Largest request body the gateway accepts, in bytes
      type: int
    bind_address:
      description: Host address the tenant's port is published on
      type: str
    pids_limit:
      description: The engine container's process limit
      type: int
    memory_limit:
      description: The engine container's memory limit in bytes (the tenant's, or derived from its quota)
      type: int
    cpus:
      description: Cores the tenant asked for, or null for an equal share
      type: int
    concurrency:
      description: Requests the quota is sized for at max_model_len each
      type: int
    mig_profile:
      description: The MIG profile (MIG tenants), else null
      type: str
    mps_thread_percentage:
      description: CUDA_MPS_ACTIVE_THREAD_PERCENTAGE (MPS tenants), or null
      type: int
    host:
      description: Inventory host the tenant runs on
      type: str
    uid:
      description: uid and gid of the engine process and of the tenant's files on the host
      type: int
    tls_names:
      description: More names of the tenant's endpoint for its certificate, as the tenant set them
      type: list
      elements: str
    tls_cert:
      description: The operator's certificate file on the controller (absolute), or null for the bundle CA's
      type: str
    tls_key:
      description: The operator's key file on the controller, or null
      type: str
    tls_min_days:
      description: Days tls_cert must still be valid when a run starts
      type: int
    adapters:
      description: 'The tenant''s LoRA adapters: name, path (absolute, on the controller), rank, base and files
        (name, bytes, sha256 of each); served from /data/adapters/<name>'
      type: list
      elements: dict
    model_private:
      description: The model is the tenant's own, copied onto its volume
      type: bool
    model_files:
      description: A private model's files (name relative to its directory, bytes, sha256), copied to /data/model;
        empty for a shared model
      type: list
      elements: dict
    takes_images:
      description: The model has a vision tower (config.json has vision_config), or the tenant set max_images
      type: bool
    endpoint:
      description: The tenant's OpenAI base URL as clients reach it, https (bind_address, or the host's address
        for 0.0.0.0)
      type: str
    tls_sans:
      description: 'Subject alternative names of the gateway''s certificate (DNS:name or IP:address): the endpoint''s
        address, the host''s name and tls_names'
      type: list
      elements: str
    metrics_port:
      description: Host port of the tenant's operator-only metrics (port + metrics_port_offset)
      type: int
    unplaced_reason:
      description: Why an unplaced tenant fits nowhere (unplaced records only)
      type: str
    gpu:
      description: GPU index, or null on a CPU host
      type: int
    mode:
      description: cpu, shared, mps or mig (null for an unplaced tenant)
      type: str
    mig_start:
      description: The MIG instance's start slice (MIG tenants), else null
      type: int
    memory_bytes:
      description: The quota in bytes
      type: int
    engine_args:
      description: Arguments after vllm serve
      type: list
      elements: str
    engine_env:
      description: Environment of the engine container
      type: dict
    gpu_memory_utilization:
      description: vLLM fraction on a GPU, else null
      type: float
    kv_cache_bytes:
      description: The KV cache the engine gets. On a GPU (--kv-cache-memory-bytes) the quota less weights, the
        vision encoder's activations, activations and graphs, and the CUDA context; null for a model the planner
        cannot size. On a CPU host the quota.
      type: int
    cpuset:
      description: The engine's cores (CPU hosts whose core count is known), else null
      type: str
    cpu_shared:
      description: The cores are shared with another tenant (tenancy_cpu_oversubscribe)
      type: bool
    sizing:
      description: The tenancy_sizing terms of the tenant's model
      type: dict
    names:
      description: Names of the tenant's Docker objects and host paths
      type: dict
    engine_port:
      description: The port the engine listens on inside its container (only its gateway reaches it)
      type: int
    models_mount:
      description: Where the engine sees its own model (model_mounts) under
      type: str
    data_mount:
      description: Where the engine sees the tenant's own (encrypted) volume
      type: str
    model_mounts:
      description: 'What of the host''s model store the engine mounts, read-only: source (host path) and target
        (in the engine) of its own model''s directory only, never the store itself'
      type: list
      elements: dict
"""


def tenancy_plan(
    tenants: Any,
    defaults: Mapping[str, Any] | None = None,
    hosts: Mapping[str, Any] | Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    models_dir: str = "/var/lib/tenancy/models",
    allow_unplaced: bool = False,
    models_mount: str = engine.MODELS_MOUNT,
    placement: str = "spread",
    cpu_oversubscribe: bool = False,
    metrics_port_offset: int = tenant_spec.METRICS_PORT_OFFSET,
    files_dir: str = "",
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Validate ``tenants`` and return the plan: one record per tenant, sorted by name."""
    hosts = dict(hosts) if isinstance(hosts, Mapping) else {host: {} for host in hosts or []}
    metrics_port_offset = int(metrics_port_offset)
    # 1. The whole input, before anything is sized or placed.
    validated = tenant_spec.validate_tenants(
        tenants, dict(defaults or {}), dict(overrides or {}), models_dir, files_dir
    )
    # The files a tenant brings from the controller (a private model, adapters): read and
    # checked against the model. A tenant being removed needs none, and its files may be
    # gone already.
    for tenant in validated:
        if tenant["state"] == "present":
            if tenant["model_private"]:
                files.private_model(tenant)
            adapters.read(tenant, files_dir, sizing.model_geometry(tenant["model"], models_dir)[0])
        else:
            tenant["adapters"] = []
    # 2. What each model needs.
    sizings = {t["name"]: sizing.tenancy_sizing(t, models_dir) for t in validated}
    # 3. Where each tenant goes, and what can only be checked once it is there.
    state = place(validated, hosts, placement)
    if state.unplaced and not allow_unplaced:
        first = next(t for t in validated if t["name"] in state.unplaced)
        others = "; ".join(f"{name}: {why}" for name, why in sorted(state.unplaced.items()))
        raise field_error(
            first["name"],
            "gpu_memory",
            format_bytes(first["gpu_memory"]),
            f"{len(state.unplaced)} tenant(s) cannot be placed ({others}). "
            "Free MIG slices, lower quotas, or set tenancy_allow_unplaced to deploy the rest",
        )
    placed = [t for t in validated if t["name"] not in state.unplaced]
    tenant_spec.check_ports(placed, metrics_port_offset)
    uids = {t["name"]: engine.tenant_uid(t, state.placed.get(t["name"])) for t in validated}
    tenant_spec.check_uids(placed, uids, state.placed)
    for tenant in placed:
        if tenant["state"] == "present":
            tls.check_operator_certificate(tenant, engine.required_tls_names(tenant, hosts), files_dir, now)
    mig_slices = state.mig_starts()
    fractions = {}
    for tenant in placed:
        gpu = state.placed[tenant["name"]]
        if gpu is not None:
            fractions[tenant["name"]] = engine.gpu_memory_fraction(tenant, gpu, mig_slices.get(tenant["name"]))
        mig_slice = mig_slices.get(tenant["name"])
        sizing.check_minimum(
            tenant,
            sizings[tenant["name"]],
            gpu is not None,
            fractions.get(tenant["name"]),
            None if mig_slice is None else mig_slice[0].name,
        )
    cores, shared_cores = cpusets.cpu_sets(validated, state.placed, hosts, cpu_oversubscribe)
    # 4. The records the roles read.
    return [
        _record(
            tenant,
            hosts,
            state,
            mig_slices,
            cores,
            shared_cores,
            sizings[tenant["name"]],
            models_dir,
            models_mount,
            tenant["port"] + metrics_port_offset,
        )
        for tenant in sorted(validated, key=lambda t: t["name"].lower())
    ]


def _record(
    tenant: dict[str, Any],
    hosts: Mapping[str, Any],
    state: Placement,
    mig_slices: Mapping[str, Any],
    cores: Mapping[str, str],
    shared_cores: set[str],
    model_sizing: Mapping[str, Any],
    models_dir: str,
    models_mount: str,
    metrics_port: int,
) -> dict[str, Any]:
    """One tenant's plan record (RETURN above), its keys in the order they have always had."""
    name = tenant["name"]
    record = {k: v for k, v in tenant.items() if k != "gpu_pin"}
    record["uid"] = engine.tenant_uid(tenant, state.placed.get(name))
    record["endpoint"] = engine.endpoint(tenant, hosts)
    record["tls_sans"] = engine.tls_sans(tenant, hosts)
    record["metrics_port"] = metrics_port
    if name in state.unplaced:
        return record | {
            "state": "unplaced",
            "unplaced_reason": state.unplaced[name],
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
            "sizing": model_sizing,
            "names": engine.object_names(name),
            **engine.mounts(tenant, models_dir, models_mount),
        }
    gpu = state.placed[name]
    mig_slice = mig_slices.get(name)
    return record | {
        "gpu": None if gpu is None else gpu["index"],
        "mode": "cpu" if gpu is None else gpu["mode"],
        "mig_profile": None if mig_slice is None else mig_slice[0].name,
        "mig_start": None if mig_slice is None else mig_slice[1],
        "memory_bytes": tenant["gpu_memory"],
        **engine.engine_settings(tenant, models_mount, gpu, cores.get(name), mig_slice, model_sizing),
        "cpuset": cores.get(name),
        "cpu_shared": name in shared_cores,
        "sizing": model_sizing,
        "names": engine.object_names(name),
        **engine.mounts(tenant, models_dir, models_mount),
    }


class FilterModule:
    """Tenancy planner filters."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_plan": tenancy_plan}
