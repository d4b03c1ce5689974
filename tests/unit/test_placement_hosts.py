"""Placement over several hosts: the spread/pack policy, tenants keeping their host, the
endpoint each tenant is reached at, and the host facts read from running engines."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st
from tenancy_host_facts import tenancy_host_engines, tenancy_host_facts
from tenancy_host_tenants import tenancy_host_tenants
from tenancy_plan import tenancy_plan
from tenancy_plan_diff import tenancy_plan_diff

A100 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB"}


def tenant(name, port, **fields):
    return {"name": name, "port": port, **fields}


def hosts_of(plan):
    return {t["name"]: t["host"] for t in plan}


def two_gpu_hosts(**extra):
    return {h: {"tenancy_gpus": [A100], **extra.get(h, {})} for h in ("g1", "g2")}


def test_spread_is_the_default_and_uses_every_gpu_host():
    tenants = [tenant(f"t{i}", 30000 + i, gpu_memory="10G") for i in range(4)]
    plan = tenancy_plan(tenants, {}, two_gpu_hosts())
    assert sorted(hosts_of(plan).values()) == ["g1", "g1", "g2", "g2"]


def test_pack_fills_one_gpu_host_first():
    tenants = [tenant(f"t{i}", 30000 + i, gpu_memory="10G") for i in range(4)]
    plan = tenancy_plan(tenants, {}, two_gpu_hosts(), placement="pack")
    # Best fit over all GPUs: every tenant lands on the fuller GPU while it has room.
    assert set(hosts_of(plan).values()) == {"g1"}


def test_spread_still_places_a_tenant_that_fits_only_on_the_busier_host():
    hosts = {"g1": {"tenancy_gpus": [A100]}, "g2": {"tenancy_gpus": [{**A100, "memory": "24GiB"}]}}
    tenants = [tenant("big", 30001, gpu_memory="60G"), tenant("huge", 30002, gpu_memory="15G", host="g1")]
    # g1 holds one tenant already, g2 none, but 60G fits only on g1.
    assert hosts_of(tenancy_plan(tenants, {}, hosts))["big"] == "g1"


def test_spread_on_cpu_hosts_balances_tenant_counts():
    tenants = [tenant("a", 30001), tenant("b", 30002, host="h2"), tenant("c", 30003)]
    plan = tenancy_plan(tenants, {}, {"h1": {"tenancy_cpus": 2}, "h2": {"tenancy_cpus": 2}})
    assert hosts_of(plan) == {"a": "h1", "b": "h2", "c": "h1"}


def test_pack_on_cpu_hosts_fills_the_host_with_the_fewest_free_cores():
    tenants = [tenant("a", 30001, cpus=1), tenant("b", 30002, cpus=1), tenant("c", 30003, cpus=1)]
    plan = tenancy_plan(tenants, {}, {"h1": {"tenancy_cpus": 2}, "h2": {"tenancy_cpus": 4}}, placement="pack")
    # a: both hosts free, h1 has fewer free cores; b fills h1; c no longer fits there.
    assert hosts_of(plan) == {"a": "h1", "b": "h1", "c": "h2"}


def test_unknown_placement_is_refused():
    with pytest.raises(AnsibleFilterError, match="tenancy_placement: 'random' is not one of spread, pack"):
        tenancy_plan([tenant("a", 30001)], {}, ["h1"], placement="random")


def test_a_running_tenant_keeps_its_host_when_the_spread_would_move_it():
    # Without facts, a (first by name) would go to h1. It runs on h2: it stays there.
    hosts = {"h1": {}, "h2": {"tenancy_tenants_running": ["a"]}}
    plan = tenancy_plan([tenant("a", 30001), tenant("b", 30002)], {}, hosts)
    assert hosts_of(plan) == {"a": "h2", "b": "h1"}


def test_removing_a_tenant_moves_no_other_tenant_to_another_host():
    everyone = [tenant(n, 30001 + i) for i, n in enumerate("abcd")]
    first = tenancy_plan(everyone, {}, ["h1", "h2"])
    running = {h: {"tenancy_tenants_running": [t["name"] for t in first if t["host"] == h]} for h in ("h1", "h2")}
    after = tenancy_plan([t for t in everyone if t["name"] != "a"], {}, running)
    assert {n: h for n, h in hosts_of(first).items() if n != "a"} == hosts_of(after)


def test_pinning_a_running_tenant_to_another_host_is_refused():
    hosts = {"h1": {"tenancy_tenants_running": ["a"]}, "h2": {}}
    with pytest.raises(AnsibleFilterError) as excinfo:
        tenancy_plan([tenant("a", 30001, host="h2")], {}, hosts)
    message = str(excinfo.value)
    assert message.startswith("tenant 'a': field 'host' has invalid value 'h2'")
    assert "runs on h1" in message and "tenant-remove" in message


def test_a_tenant_being_removed_is_removed_where_it_runs():
    hosts = {"h1": {"tenancy_tenants_running": ["a"]}, "h2": {}}
    plan = tenancy_plan([tenant("a", 30001, host="h2", state="absent")], {}, hosts)
    assert (plan[0]["state"], plan[0]["host"]) == ("absent", "h1")
    # Running nowhere: no host, so the removal runs on every host.
    assert tenancy_plan([tenant("b", 30002, state="absent")], {}, hosts)[0]["host"] is None


def test_a_port_being_freed_can_be_taken_in_the_same_run():
    hosts = {"h1": {"tenancy_tenants_running": ["a"]}}
    plan = tenancy_plan([tenant("a", 30001, state="absent"), tenant("b", 30001)], {}, hosts)
    assert {t["name"]: t["host"] for t in plan} == {"a": "h1", "b": "h1"}


def test_plan_diff_names_new_gone_and_changed_tenants():
    before = tenancy_plan([tenant("a", 30001), tenant("b", 30002), tenant("c", 30003)], {}, ["h1"])
    after = tenancy_plan([tenant("a", 30001), tenant("b", 30002, rpm_limit=5), tenant("d", 30004)], {}, ["h1"])
    assert tenancy_plan_diff(before, after) == ["b", "c", "d"]
    assert tenancy_plan_diff(after, after) == []


def test_plan_diff_catches_a_neighbour_moved_by_the_edit():
    """Tenants without cpus share the cores: adding one moves the other's cpuset."""
    hosts = {"h1": {"tenancy_cpus": 4}}
    before = tenancy_plan([tenant("a", 30001)], {}, hosts)
    after = tenancy_plan([tenant("a", 30001), tenant("b", 30002)], {}, hosts)
    assert tenancy_plan_diff(before, after) == ["a", "b"]


@pytest.mark.parametrize("bad", [None, "x", [{"port": 1}], [["a"]]])
def test_plan_diff_refuses_what_is_not_a_plan(bad):
    with pytest.raises(AnsibleFilterError, match="tenancy_plan_diff"):
        tenancy_plan_diff(bad, [])


@pytest.mark.parametrize(
    ("bind", "facts", "expected"),
    [
        ("0.0.0.0", {"tenancy_address": "10.0.0.5"}, "https://10.0.0.5:30001/v1"),
        ("0.0.0.0", {}, "https://h1:30001/v1"),
        ("192.0.2.7", {"tenancy_address": "10.0.0.5"}, "https://192.0.2.7:30001/v1"),
        ("0.0.0.0", {"tenancy_address": "localhost"}, "https://127.0.0.1:30001/v1"),
    ],
)
def test_endpoint_is_where_clients_reach_the_tenant(bind, facts, expected):
    plan = tenancy_plan([tenant("a", 30001, bind_address=bind)], {}, {"h1": facts})
    assert plan[0]["endpoint"] == expected


@given(
    counts=st.lists(st.integers(min_value=0, max_value=3), min_size=2, max_size=4),
    new=st.integers(min_value=1, max_value=4),
)
def test_spread_never_puts_a_new_tenant_on_a_busier_cpu_host(counts, new):
    """Whatever runs where, a new unpinned tenant goes to a host with the fewest tenants."""
    hosts, tenants = {}, []
    for h, count in enumerate(counts):
        names = [f"h{h}t{i}" for i in range(count)]
        hosts[f"h{h}"] = {"tenancy_tenants_running": names}
        tenants += [tenant(n, 30000 + 10 * h + i) for i, n in enumerate(names)]
    tenants += [tenant(f"new{i}", 31000 + i) for i in range(new)]
    plan = tenancy_plan(tenants, {}, hosts)
    load = dict.fromkeys(hosts, 0)
    for record in plan:
        if not record["name"].startswith("new"):
            load[record["host"]] += 1
    for record in sorted(plan, key=lambda r: r["name"]):
        if record["name"].startswith("new"):
            assert load[record["host"]] == min(load.values())
            load[record["host"]] += 1


def test_host_engines_reads_tenants_and_cpusets():
    containers = [
        {"Labels": {"tenancy.tenant": "b", "tenancy.role": "engine", "tenancy.cpuset": "1"}},
        {"Labels": {"tenancy.tenant": "a", "tenancy.role": "engine", "tenancy.cpuset": ""}},
        {"Labels": {"other": "x"}},
        {"Labels": None},
    ]
    assert tenancy_host_engines(containers) == {
        "tenancy_tenants_running": ["a", "b"],
        "tenancy_cpusets_in_use": {"b": "1"},
    }


def test_host_engines_of_nothing_is_empty():
    assert tenancy_host_engines(None) == {"tenancy_tenants_running": [], "tenancy_cpusets_in_use": {}}


@pytest.mark.parametrize("bad", ["text", {"Labels": {}}, [["not", "a", "mapping"]]])
def test_host_engines_refuses_what_is_not_a_container_list(bad):
    with pytest.raises(AnsibleFilterError, match="tenancy_host_facts"):
        tenancy_host_engines(bad)


NVML_ANSWER = {
    "available": True,
    "gpus": [
        {"index": 0, "name": "NVIDIA H200", "memory_total": 150_754_820_096, "mig_capable": True, "uuid": "GPU-x"},
        {"index": 1, "name": "NVIDIA H200", "memory_total": 150_754_820_096, "mig_capable": True, "uuid": "GPU-y"},
    ],
}


def test_host_facts_take_the_gpus_nvml_found_in_the_hosts_mode():
    facts = tenancy_host_facts([], gpu_facts=NVML_ANSWER, gpu_mode="mps", cpus="16", address="10.0.0.5")
    assert facts == {
        "tenancy_tenants_running": [],
        "tenancy_cpusets_in_use": {},
        "tenancy_gpus": [
            {"index": 0, "name": "NVIDIA H200", "memory": 150_754_820_096, "mig": True, "mode": "mps"},
            {"index": 1, "name": "NVIDIA H200", "memory": 150_754_820_096, "mig": True, "mode": "mps"},
        ],
        "tenancy_cpus": 16,
        "tenancy_address": "10.0.0.5",
    }


def test_host_facts_prefer_the_inventorys_gpus_and_plan_a_cpu_host_without_any():
    listed = [{"index": 0, "name": "A100", "memory": "80G", "mode": "mig"}]
    assert tenancy_host_facts(None, gpus=listed, gpu_facts=NVML_ANSWER)["tenancy_gpus"] == listed
    assert tenancy_host_facts(None, gpus=[], gpu_facts=NVML_ANSWER)["tenancy_gpus"] == []
    assert tenancy_host_facts(None, gpu_facts={"available": False, "reason": "no driver"})["tenancy_gpus"] == []
    assert tenancy_host_facts(None)["tenancy_cpus"] == 0


def test_host_facts_refuse_gpu_facts_that_are_not_a_list():
    with pytest.raises(AnsibleFilterError, match=r"tenancy_host_facts: gpu_facts\.gpus is str"):
        tenancy_host_facts([], gpu_facts={"gpus": "GPU 0"})


# --- tenancy_host_tenants: what one host converges -----------------------------------


def _record(name: str, host: str | None, state: str = "present", mode: str = "cpu") -> dict:
    return {"name": name, "host": host, "state": state, "mode": mode}


PLAN = [
    _record("a", "h1"),
    _record("b", "h2"),
    _record("c", None, state="absent", mode=None),
    _record("d", "h1", state="unplaced", mode=None),
    _record("e", "h1", mode="shared"),
    _record("f", "h1", state="absent"),
]


def test_host_tenants_keeps_its_own_and_unlocated_absent_records_in_plan_order():
    assert [r["name"] for r in tenancy_host_tenants(PLAN, "h1")] == ["a", "c", "e", "f"]
    assert [r["name"] for r in tenancy_host_tenants(PLAN, "h2")] == ["b", "c"]


def test_host_tenants_keeps_only_the_named_ones():
    assert [r["name"] for r in tenancy_host_tenants(PLAN, "h1", ["e", "b"])] == ["e"]
    assert tenancy_host_tenants(PLAN, "h1", []) == []


def test_host_tenants_of_one_mode_are_present_ones():
    assert [r["name"] for r in tenancy_host_tenants(PLAN, "h1", None, "cpu")] == ["a"]
    assert [r["name"] for r in tenancy_host_tenants(PLAN, "h1", None, "shared")] == ["e"]


@pytest.mark.parametrize(
    ("plan", "names", "message"),
    [
        ("a,b", None, "the plan is str"),
        ([{"host": "h1"}], None, "a record of the plan has no name"),
        (PLAN, "a", "names is str"),
    ],
)
def test_host_tenants_refuses_what_is_not_a_plan(plan, names, message):
    with pytest.raises(AnsibleFilterError, match=message):
        tenancy_host_tenants(plan, "h1", names)
