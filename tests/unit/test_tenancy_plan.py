"""Unit tests for the tenancy_plan filter: every validation rule and its message."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.common import GIB, format_bytes
from ansible_collections.tenancy.core.plugins.plugin_utils.cpusets import cpu_list, parse_cpu_list
from ansible_collections.tenancy.core.plugins.plugin_utils.tenant_spec import parse_compact
from hypothesis import given
from hypothesis import strategies as st
from tenancy_plan import FilterModule, tenancy_plan
from tenancy_plan_table import tenancy_plan_table

A = {"name": "companyA", "port": 30001}
B = {"name": "companyB", "port": 30002}


def plan_one(**fields):
    return tenancy_plan([{**A, **fields}])[0]


def test_demo_pair_plans_with_defaults():
    plan = tenancy_plan([A, B], {"bind_address": "127.0.0.1"}, ["localhost"])
    assert [t["name"] for t in plan] == ["companyA", "companyB"]
    first = plan[0]
    assert first["host"] == "localhost"
    assert first["bind_address"] == "127.0.0.1"
    assert first["names"] == {
        "engine": "tenancy-companyA-engine",
        "gateway": "tenancy-companyA-gateway",
        "network": "tenancy-companyA",
        "edge_network": "tenancy-companyA-edge",
        "volume": "tenancy-companyA-data",
        "config_dir": "/etc/tenancy/companyA",
        "gpu_record": "/etc/tenancy/gpu-tenants/companyA.json",
        "label": "companyA",
    }
    assert first["engine_args"][0] == "/models/tiny-qwen3"
    assert "--max-model-len" in first["engine_args"]
    assert first["engine_env"]["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_each_engine_mounts_only_its_own_model():
    """A local model's directory, or a hub model's repo in the hub cache, never the store;
    the Hugging Face home (token, xet cache) on the tenant's own volume."""
    local, hub = tenancy_plan(
        [A, {**B, "model": "Qwen/Qwen3-VL-2B-Instruct"}], {}, ["h"], None, "/srv/models/", allow_unplaced=True
    )
    assert local["model_mounts"] == [{"source": "/srv/models/tiny-qwen3", "target": "/models/tiny-qwen3"}]
    repo = "models--Qwen--Qwen3-VL-2B-Instruct"
    assert hub["model_mounts"] == [{"source": f"/srv/models/.hf/hub/{repo}", "target": f"/models/.hf/hub/{repo}"}]
    for record in (local, hub):
        assert record["engine_env"]["HF_HUB_CACHE"] == "/models/.hf/hub"
        assert record["engine_env"]["HF_HOME"].startswith(record["data_mount"] + "/")
    assert hub["engine_args"][0] == "Qwen/Qwen3-VL-2B-Instruct"


@pytest.mark.parametrize(
    ("fields", "field", "value_fragment", "why"),
    [
        ({"colour": "blue"}, "colour", "'blue'", "unknown field"),
        ({"name": None}, "name", "None", "is required"),
        ({"port": None}, "port", "None", "is required"),
        ({"name": "-bad"}, "name", "'-bad'", "must match"),
        ({"name": "has_underscore"}, "name", "'has_underscore'", "must match"),
        ({"name": "x" * 32}, "name", "'" + "x" * 32 + "'", "must match"),
        ({"port": 80}, "port", "80", "between 1024 and 65535"),
        ({"port": 65536}, "port", "65536", "between 1024 and 65535"),
        ({"port": "http"}, "port", "'http'", "expected an integer"),
        ({"port": True}, "port", "True", "expected an integer"),
        ({"state": "running"}, "state", "'running'", "present, absent"),
        ({"gpu_memory": "0"}, "gpu_memory", "'0'", "greater than 0"),
        ({"gpu_memory": "lots"}, "gpu_memory", "'lots'", "expected a size"),
        ({"rpm_limit": 0}, "rpm_limit", "0", "at least 1"),
        ({"rpm_limit": 2.5}, "rpm_limit", "2.5", "expected an integer"),
        ({"max_model_len": 0}, "max_model_len", "0", "at least 1"),
        ({"quantization": "int3"}, "quantization", "'int3'", "must be int4 or int8"),
        ({"shm_size": "-1G"}, "shm_size", "'-1G'", "expected a size"),
        ({"model": "../etc"}, "model", "'../etc'", "expected a directory name"),
        ({"model": "a/b/c"}, "model", "'a/b/c'", "expected a directory name"),
        ({"bind_address": "300.0.0.1"}, "bind_address", "'300.0.0.1'", "IPv4"),
        ({"host": "gpu9"}, "host", "'gpu9'", "is not a tenancy host"),
        ({"gpu_memory": "512M"}, "gpu_memory", "'512MiB'", "below 1GiB"),
    ],
)
def test_invalid_field_names_tenant_field_and_value(fields, field, value_fragment, why):
    with pytest.raises(AnsibleFilterError) as excinfo:
        tenancy_plan([{**A, **fields}], {}, ["localhost"])
    message = str(excinfo.value)
    tenant = fields.get("name", A["name"]) or "#1"
    assert f"tenant {tenant!r}" in message
    assert f"field {field!r}" in message
    assert value_fragment in message
    assert why in message


def test_missing_name_is_reported_by_position():
    with pytest.raises(AnsibleFilterError, match=r"tenant '#2': field 'name' has invalid value None: is required"):
        tenancy_plan([A, {"port": 30005}])


def test_duplicate_name():
    with pytest.raises(AnsibleFilterError, match=r"tenant 'companyA': field 'name'.*duplicate name"):
        tenancy_plan([A, {"name": "companyA", "port": 30009}])


def test_names_collide_without_regard_to_case():
    with pytest.raises(AnsibleFilterError, match=r"tenant 'companya': field 'name'.*collides with tenant 'companyA'"):
        tenancy_plan([A, {"name": "companya", "port": 30009}])


def test_duplicate_port():
    with pytest.raises(AnsibleFilterError, match=r"tenant 'companyB': field 'port' has invalid value 30001.*companyA"):
        tenancy_plan([A, {"name": "companyB", "port": 30001}])


def test_unknown_default_field():
    with pytest.raises(AnsibleFilterError, match=r"tenancy_tenant_defaults: unknown field 'colour'"):
        tenancy_plan([A], {"colour": "blue"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10G", 10 * GIB), ("10GiB", 10 * GIB), ("10240M", 10 * GIB), (str(10 * GIB), 10 * GIB), (10 * GIB, 10 * GIB)],
)
def test_sizes_accept_iec_and_plain_bytes(text, expected):
    assert plan_one(gpu_memory=text)["memory_bytes"] == expected


def test_compact_string_form():
    plan = tenancy_plan("companyA:2G:30001, companyB:3GiB:30002")
    assert [(t["name"], t["memory_bytes"], t["port"]) for t in plan] == [
        ("companyA", 2 * GIB, 30001),
        ("companyB", 3 * GIB, 30002),
    ]


@pytest.mark.parametrize("text", ["companyA:2G", "companyA:2G:30001:extra"])
def test_compact_string_form_rejects_malformed_entries(text):
    with pytest.raises(AnsibleFilterError, match="expected name:gpu_memory:port"):
        parse_compact(text)


def test_json_string_is_rejected_with_a_hint():
    with pytest.raises(AnsibleFilterError, match="looks like JSON"):
        tenancy_plan('[{"name": "a", "port": 30001}]')


def test_tenants_key_mapping_is_accepted():
    assert len(tenancy_plan({"tenants": [A, B]})) == 2


def test_overrides_win_over_tenant_fields():
    plan = tenancy_plan([{**A, "rpm_limit": 5}, B], {"rpm_limit": 50}, [], {"rpm_limit": 100000})
    assert [t["rpm_limit"] for t in plan] == [100000, 100000]


def test_unknown_override_field():
    with pytest.raises(AnsibleFilterError, match=r"tenancy_tenant_overrides: unknown field 'colour'"):
        tenancy_plan([A], {}, [], {"colour": "blue"})


def test_tenant_fields_override_defaults():
    plan = tenancy_plan([{**A, "rpm_limit": 5}, B], {"rpm_limit": 50})
    assert [t["rpm_limit"] for t in plan] == [5, 50]


def test_hub_model_is_passed_as_repo_id():
    tenant = plan_one(model="Qwen/Qwen3-VL-8B-Instruct")
    assert tenant["engine_args"][0] == "Qwen/Qwen3-VL-8B-Instruct"
    assert tenant["served_model_name"] == "Qwen3-VL-8B-Instruct"


def test_quantization_is_passed_to_the_engine():
    # A model nothing is known about: the method is passed as given (vLLM checks it).
    args = plan_one(model="someorg/some-awq-model", quantization="awq")["engine_args"]
    assert args[args.index("--quantization") + 1] == "awq"


def test_unpinned_tenants_spread_over_hosts():
    plan = tenancy_plan([A, B, {"name": "c", "port": 30003}], {}, ["h1", "h2"])
    # Placed in name order onto the least-loaded host, ties on the host name.
    assert {t["name"]: t["host"] for t in plan} == {"c": "h1", "companyA": "h2", "companyB": "h1"}


def test_same_port_on_different_hosts_is_fine():
    plan = tenancy_plan([{**A, "host": "h1"}, {**B, "port": 30001, "host": "h2"}], {}, ["h1", "h2"])
    assert len(plan) == 2


def test_table_lists_every_tenant():
    lines = tenancy_plan_table(tenancy_plan([A, B]))
    assert lines[0].split()[0] == "TENANT"
    assert [line.split()[0] for line in lines[1:]] == ["companyA", "companyB"]


@pytest.mark.parametrize(
    ("size", "text"), [(GIB, "1GiB"), (3 * GIB // 2, "1.5GiB"), (512 * 1024**2, "512MiB"), (7, "7B")]
)
def test_format_bytes(size, text):
    assert format_bytes(size) == text


def test_filter_module_maps_names_to_functions():
    assert FilterModule().filters() == {"tenancy_plan": tenancy_plan}


names = st.from_regex(re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,30}"), fullmatch=True)


# Ports whose metrics port (port + 10000) is a valid port too (test_metering.py covers
# the ones above).
@given(st.lists(st.tuples(names, st.integers(1024, 55535)), max_size=8))
def test_plan_is_deterministic_and_unique(pairs):
    tenants = [{"name": n, "port": p} for n, p in pairs]
    try:
        first = tenancy_plan(tenants)
    except AnsibleFilterError as exc:
        # The only way valid names and ports fail is a collision (of names, ports, or a
        # metrics port on another tenant's port), and it must say so.
        message = str(exc)
        assert any(why in message for why in ("collides", "duplicate", "already used", "is the port of tenant"))
        return
    assert first == tenancy_plan(list(reversed(tenants)))
    assert len({t["name"].lower() for t in first}) == len(first)
    assert len({t["port"] for t in first}) == len(first)
    assert not {t["metrics_port"] for t in first} & {t["port"] for t in first}


# --- GPU placement (shared mode) --------------------------------------------------------

A100 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB"}


def gpu_hosts(**hosts):
    return {host: {"tenancy_gpus": gpus} for host, gpus in hosts.items()}


def test_gpu_fraction_is_quota_less_context_over_total_rounded_down():
    """vLLM's CUDA context comes on top of fraction x total: (20 GiB - 0.75 GiB) / 80 GiB."""
    plan = tenancy_plan([{**A, "gpu_memory": "20G"}], {}, gpu_hosts(g1=[A100]))
    tenant = plan[0]
    assert (tenant["mode"], tenant["gpu"], tenant["host"]) == ("shared", 0, "g1")
    assert tenant["gpu_memory_utilization"] == 0.24
    args = tenant["engine_args"]
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.24"
    assert "--enforce-eager" not in args
    assert "VLLM_CPU_KVCACHE_SPACE" not in tenant["engine_env"]


@pytest.mark.parametrize("hosts", [{}, gpu_hosts(g1=[A100])], ids=["cpu", "gpu"])
def test_every_engine_keeps_its_metrics_on_its_own_volume(hosts):
    """Counters in memory-mapped files under the engine's /data (the tenant's volume)
    outlive a SIGKILL: the usage report loses nothing to a crash."""
    tenant = tenancy_plan([{**A, "gpu_memory": "20G"}], {}, hosts)[0]
    assert tenant["engine_env"]["PROMETHEUS_MULTIPROC_DIR"] == "/data/.metrics"


def test_gpu_fraction_never_rounds_up():
    tenant = tenancy_plan([{**A, "gpu_memory": "10G"}], {}, gpu_hosts(g1=[{**A100, "memory": "79GiB"}]))[0]
    assert tenant["gpu_memory_utilization"] == 0.11  # (10 - 0.75)/79 = 0.1171...


def test_best_fit_decreasing_fills_the_tightest_gpu():
    gpus = [A100, {**A100, "index": 1, "memory": "40GiB"}]
    tenants = [
        {"name": "big", "port": 30001, "gpu_memory": "60G"},
        {"name": "small", "port": 30002, "gpu_memory": "30G"},
    ]
    plan = {t["name"]: t["gpu"] for t in tenancy_plan(tenants, {}, gpu_hosts(g1=gpus))}
    assert plan == {"big": 0, "small": 1}


def test_oversubscribed_gpu_lists_tenants_and_totals():
    tenants = [{"name": f"t{i}", "port": 30000 + i, "gpu_memory": "30G"} for i in range(3)]
    with pytest.raises(AnsibleFilterError) as excinfo:
        tenancy_plan(tenants, {}, gpu_hosts(g1=[A100]))
    message = str(excinfo.value)
    assert "tenant 't2': field 'gpu_memory'" in message
    assert "fits on no GPU" in message
    assert "t0 30GiB, t1 30GiB, 60GiB taken" in message
    assert "usable 79GiB" in message


def test_pinned_gpu_must_exist():
    with pytest.raises(
        AnsibleFilterError, match=r"tenant 'companyA': field 'gpu' has invalid value 3: is not a GPU of g1"
    ):
        tenancy_plan([{**A, "host": "g1", "gpu": 3}], {}, gpu_hosts(g1=[A100]))


def test_pinned_gpu_needs_a_pinned_host():
    with pytest.raises(AnsibleFilterError, match=r"field 'gpu'.*needs the tenant's host pinned"):
        tenancy_plan([{**A, "gpu": 0}], {}, gpu_hosts(g1=[A100]))


# From 2 GiB: a GPU tenant's minimum is at least the reserve and the CUDA context (1.2 GiB).
@given(st.lists(st.integers(2, 80), min_size=1, max_size=12), st.integers(1, 3))
def test_no_gpu_is_ever_oversubscribed(quotas_gib, gpu_count):
    gpus = [{**A100, "index": i} for i in range(gpu_count)]
    tenants = [{"name": f"t{i}", "port": 30000 + i, "gpu_memory": f"{q}G"} for i, q in enumerate(quotas_gib)]
    try:
        plan = tenancy_plan(tenants, {}, gpu_hosts(g1=gpus))
    except AnsibleFilterError as exc:
        assert "fits on no GPU" in str(exc)
        return
    for index in range(gpu_count):
        used = sum(t["memory_bytes"] for t in plan if t["gpu"] == index)
        assert used <= 79 * GIB


# --- CPU sets ---------------------------------------------------------------------------


def cpu_hosts(cores):
    return {"h": {"tenancy_cpus": cores}}


def test_cpu_tenants_get_disjoint_cores_in_list_order():
    plan = tenancy_plan([B, A, {"name": "c", "port": 30003}], {"cpus": 2}, cpu_hosts(8))
    cpusets = {t["name"]: t["cpuset"] for t in plan}
    assert cpusets == {"companyB": "0-1", "companyA": "2-3", "c": "4-5"}
    env = next(t for t in plan if t["name"] == "companyA")["engine_env"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "2-3"


def test_appending_a_tenant_keeps_earlier_cpusets():
    before = {t["name"]: t["cpuset"] for t in tenancy_plan([A, B], {"cpus": 1}, cpu_hosts(4))}
    after = {
        t["name"]: t["cpuset"] for t in tenancy_plan([A, B, {"name": "c", "port": 30003}], {"cpus": 1}, cpu_hosts(4))
    }
    assert {k: after[k] for k in before} == before


@pytest.mark.parametrize(("text", "cores"), [("0-2,5", [0, 1, 2, 5]), ("", []), ("9", []), ("a-b", [])])
def test_parse_cpu_list(text, cores):
    assert parse_cpu_list(text, 8) == cores


def test_automatic_share_splits_the_rest_equally():
    plan = tenancy_plan([A, B], {}, cpu_hosts(8))
    assert [t["cpuset"] for t in plan] == ["0-3", "4-7"]


def test_running_tenants_keep_their_cores_when_another_is_removed():
    hosts = {"h": {"tenancy_cpus": 4, "tenancy_cpusets_in_use": {"companyA": "0", "companyB": "1", "c": "2"}}}
    plan = tenancy_plan([A, {"name": "c", "port": 30003}], {"cpus": 1}, hosts)
    assert {t["name"]: t["cpuset"] for t in plan} == {"companyA": "0", "c": "2"}


def test_a_new_tenant_takes_free_cores():
    hosts = {"h": {"tenancy_cpus": 4, "tenancy_cpusets_in_use": {"companyB": "0"}}}
    plan = tenancy_plan([A, B], {"cpus": 1}, hosts)
    assert {t["name"]: t["cpuset"] for t in plan} == {"companyA": "1", "companyB": "0"}


def test_a_changed_core_count_moves_only_that_tenant():
    hosts = {"h": {"tenancy_cpus": 8, "tenancy_cpusets_in_use": {"companyA": "0-1", "companyB": "2-3"}}}
    plan = tenancy_plan([A, {**B, "cpus": 3}], {"cpus": 2}, hosts)
    assert {t["name"]: t["cpuset"] for t in plan} == {"companyA": "0-1", "companyB": "2-4"}


def test_absent_tenants_take_no_cores_or_gpu():
    plan = tenancy_plan([{**A, "state": "absent"}, B], {"cpus": 1}, cpu_hosts(2))
    assert {t["name"]: t["cpuset"] for t in plan} == {"companyA": None, "companyB": "0"}


def test_a_core_promised_to_a_tenant_is_never_handed_to_another():
    """Three one-core tenants on two cores: the third is refused, naming the tenant, the
    field, its value, the host and who holds the cores."""
    tenants = [{"name": f"t{i}", "port": 30000 + i} for i in range(3)]
    with pytest.raises(AnsibleFilterError) as error:
        tenancy_plan(tenants, {"cpus": 1}, cpu_hosts(2))
    message = str(error.value)
    assert message.startswith("tenant 't2': field 'cpus' has invalid value 1: host h has 2 core(s), 2 promised")
    assert "(t0 0, t1 1)" in message and "tenancy_cpu_oversubscribe" in message


def test_more_cores_than_the_host_has_are_refused():
    with pytest.raises(AnsibleFilterError, match="tenant 'companyA': field 'cpus' has invalid value 3: host h has 2"):
        tenancy_plan([{**A, "cpus": 3}], {}, cpu_hosts(2))


def test_running_tenants_keep_their_cores_and_a_newcomer_is_refused():
    """What #13 measured: tenant-add of a third tenant on a full host used to pin it onto
    companyA's core silently."""
    hosts = {"h": {"tenancy_cpus": 2, "tenancy_cpusets_in_use": {"companyA": "0", "companyB": "1"}}}
    with pytest.raises(AnsibleFilterError, match=r"tenant 'c': field 'cpus'.*companyA 0, companyB 1"):
        tenancy_plan([A, B, {"name": "c", "port": 30003}], {"cpus": 1}, hosts)


def test_oversubscription_is_an_explicit_visible_choice():
    tenants = [{"name": f"t{i}", "port": 30000 + i} for i in range(3)]
    plan = tenancy_plan(tenants, {"cpus": 1}, cpu_hosts(2), cpu_oversubscribe=True)
    assert [t["cpuset"] for t in plan] == ["0", "1", "0"]
    assert [t["cpu_shared"] for t in plan] == [True, False, True]
    table = tenancy_plan_table(plan)
    assert table[0].split()[-1] == "CORES"
    assert table[1].endswith("0 SHARED") and table[2].endswith("1") and table[3].endswith("0 SHARED")


def test_isolated_tenants_are_not_marked_shared():
    plan = tenancy_plan([A, B], {"cpus": 1}, cpu_hosts(2))
    assert [t["cpu_shared"] for t in plan] == [False, False]


def test_unknown_core_count_means_no_pinning():
    tenant = tenancy_plan([A])[0]
    assert tenant["cpuset"] is None
    assert "VLLM_CPU_OMP_THREADS_BIND" not in tenant["engine_env"]


@pytest.mark.parametrize(("cores", "text"), [([0], "0"), ([0, 1, 2], "0-2"), ([3, 0, 1], "0-1,3"), ([1, 1], "1")])
def test_cpu_list(cores, text):
    assert cpu_list(cores) == text


@pytest.mark.parametrize("on_gpu", [False, True])
def test_engine_runs_as_an_arbitrary_uid(on_gpu):
    """The engine's uid has no passwd entry in the upstream image: torch's getpass.getuser()
    needs USER or LOGNAME, and every cache must point at a writable place (the root
    filesystem is read-only): the compilers' caches on /tmp on CPU engines, on the tenant's
    own volume on GPU engines; vLLM's own cache on the volume on both (a restarted engine
    skips inspecting the model class in a subprocess: 42-47 s to 32-35 s on the demo)."""
    hosts = gpu_hosts(g1=[A100]) if on_gpu else ["localhost"]
    env = tenancy_plan([{**A, "gpu_memory": "2G"}], {}, hosts)[0]["engine_env"]
    assert env["USER"] and env["LOGNAME"] and env["HOME"] == "/tmp"
    root = "/data/.cache" if on_gpu else "/tmp/.cache"
    for variable in ("XDG_CACHE_HOME", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
        assert env[variable].startswith(root), variable
    assert env["VLLM_CACHE_ROOT"] == "/data/.cache/vllm"
    assert env["VLLM_CONFIG_ROOT"].startswith("/tmp/")


def test_a_tenant_too_small_for_itself_is_reported_before_cores_it_cannot_get():
    """The tenant's own fault first: on a full two-core host, a third tenant whose quota
    cannot hold max_model_len x concurrency is refused for its quota, not for its cores."""
    small = {"name": "c", "port": 30003, "gpu_memory": "1G", "max_model_len": 4096, "concurrency": 400}
    with pytest.raises(
        AnsibleFilterError, match=r"tenant 'c': field 'gpu_memory'.*max_model_len 4096 x concurrency 400"
    ):
        tenancy_plan([A, B, small], {"cpus": 1}, cpu_hosts(2))


def test_the_refusal_names_only_the_holders_on_that_host():
    hosts = {"h1": {"tenancy_cpus": 2}, "h2": {"tenancy_cpus": 1}}
    tenants = [
        {"name": "a", "port": 30001, "host": "h1"},
        {"name": "b", "port": 30002, "host": "h1"},
        {"name": "c", "port": 30003, "host": "h2"},
        {"name": "d", "port": 30004, "host": "h2"},
    ]
    with pytest.raises(AnsibleFilterError) as error:
        tenancy_plan(tenants, {"cpus": 1}, hosts)
    assert "tenant 'd': field 'cpus' has invalid value 1: host h2 has 1 core(s), 1 promised (c 0);" in str(error.value)


def test_each_tenant_gets_a_uid_of_its_own_from_its_port():
    plan = tenancy_plan([A, B])
    assert [t["uid"] for t in plan] == [2_000_030_001, 2_000_030_002]


def test_a_tenant_may_set_its_uid():
    assert plan_one(uid=70000)["uid"] == 70000


@pytest.mark.parametrize("uid", [1000, 65534, 2147483648, "x", True])
def test_a_uid_in_the_login_range_or_out_of_range_is_refused(uid):
    with pytest.raises(AnsibleFilterError, match=r"tenant 'companyA': field 'uid' has invalid value"):
        plan_one(uid=uid)


def test_two_tenants_of_a_host_never_share_a_uid():
    with pytest.raises(
        AnsibleFilterError, match=r"tenant 'companyB': field 'uid' has invalid value 2000030001: already the uid of"
    ):
        tenancy_plan([A, {**B, "uid": 2_000_030_001}])


def test_tenants_of_different_hosts_may_share_a_uid():
    plan = tenancy_plan([{**A, "host": "h1"}, {**B, "port": 30001, "host": "h2"}], {}, ["h1", "h2"])
    assert plan[0]["uid"] == plan[1]["uid"]


MPS_A100 = {**A100, "mode": "mps"}


def test_the_tenants_of_one_mps_gpu_share_its_uid():
    plan = tenancy_plan([{**A, "gpu_memory": "10G"}, {**B, "gpu_memory": "10G"}], {}, gpu_hosts(g1=[MPS_A100]))
    assert [(t["mode"], t["uid"]) for t in plan] == [("mps", 2_000_065_536), ("mps", 2_000_065_536)]


def test_mps_tenants_of_one_gpu_with_different_uids_are_refused():
    with pytest.raises(AnsibleFilterError, match=r"field 'uid' has invalid value 70001.*MPS serves one uid at a time"):
        tenancy_plan(
            [{**A, "gpu_memory": "10G", "uid": 70000}, {**B, "gpu_memory": "10G", "uid": 70001}],
            {},
            gpu_hosts(g1=[MPS_A100]),
        )
