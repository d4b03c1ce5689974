"""tenancy_mig_state: nvidia-smi's MIG tables against the plan (samples are hand-written, see fixtures/nvidia_smi)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.mig import place, profiles
from hypothesis import given
from hypothesis import strategies as st
from tenancy_mig_state import parse_lci, parse_lgi, tenancy_mig_state

SAMPLES = Path(__file__).parent / "fixtures" / "nvidia_smi"
A100 = {
    "index": 0,
    "name": "NVIDIA A100-SXM4-80GB",
    "memory_total": 85899345920,
    "mig_devices": [
        {"uuid": "MIG-aaaa", "gpu_instance_id": 13, "compute_instance_id": 0},
        {"uuid": "MIG-bbbb", "gpu_instance_id": 2, "compute_instance_id": 0},
    ],
}


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def tenant(name, gpu=0, profile="1g.10gb", start=6, host="gpu1", mode="mig", state="present"):
    return {
        "name": name,
        "host": host,
        "gpu": gpu,
        "mode": mode,
        "state": state,
        "mig_profile": profile,
        "mig_start": start,
    }


def test_parse_lgi_reads_every_row():
    assert parse_lgi(sample("lgi_a100_two.txt")) == [
        {"gpu": 0, "gi": 13, "profile": "1g.10gb", "profile_id": 19, "start": 6, "size": 1},
        {"gpu": 0, "gi": 2, "profile": "3g.40gb", "profile_id": 9, "start": 0, "size": 4},
    ]


def test_parse_lci_reads_every_row():
    assert parse_lci(sample("lci_a100_two.txt")) == [
        {"gpu": 0, "gi": 13, "ci": 0, "profile": "1g.10gb"},
        {"gpu": 0, "gi": 2, "ci": 0, "profile": "3g.40gb"},
    ]


@pytest.mark.parametrize("text", ["", "No GPU instances found: Not Found\n", "No MIG-enabled devices found.\n"])
def test_no_instances(text):
    assert parse_lgi(text) == []


def test_planned_and_present_means_nothing_to_do_and_uuids_are_mapped():
    plan = [tenant("companyA", start=6), tenant("companyB", profile="3g.40gb", start=0)]
    state = tenancy_mig_state(plan, "gpu1", sample("lgi_a100_two.txt"), sample("lci_a100_two.txt"), [A100])
    assert (state["create"], state["create_ci"], state["conflicts"], state["unplanned"]) == ([], [], [], [])
    assert state["tenants"]["companyA"] == {"gpu": 0, "gi": 13, "profile": "1g.10gb", "start": 6, "uuid": "MIG-aaaa"}
    assert state["tenants"]["companyB"]["uuid"] == "MIG-bbbb"
    assert state["gpus"] == [0]


def test_missing_instances_are_created_and_nothing_else_is_touched():
    plan = [tenant("companyA", start=6), tenant("companyC", profile="1g.10gb", start=4)]
    state = tenancy_mig_state(plan, "gpu1", sample("lgi_a100_two.txt"), sample("lci_a100_two.txt"), [A100])
    assert state["create"] == [{"tenant": "companyC", "gpu": 0, "profile": "1g.10gb", "start": 4}]
    # 3g.40gb@0 is nobody's in this plan, but it is in nobody's way either: left alone.
    assert [i["gi"] for i in state["unplanned"]] == [2]
    assert state["conflicts"] == []
    assert "companyC" not in state["tenants"]


def test_an_unplanned_instance_in_the_way_is_a_conflict():
    plan = [tenant("companyD", profile="1g.20gb", start=2)]
    lgi = sample("lgi_a100_two.txt").replace(
        "3g.40gb          9        2          0:4", "2g.20gb         14        2          2:2"
    )
    state = tenancy_mig_state(plan, "gpu1", lgi, sample("lci_none.txt"), [A100])
    assert [(c["gi"], c["tenant"]) for c in state["conflicts"]] == [(2, "companyD")]
    assert state["create"] == [{"tenant": "companyD", "gpu": 0, "profile": "1g.20gb", "start": 2}]


def test_same_start_but_another_profile_is_a_conflict_not_a_match():
    plan = [tenant("companyB", profile="4g.40gb", start=0)]
    state = tenancy_mig_state(plan, "gpu1", sample("lgi_a100_two.txt"), sample("lci_a100_two.txt"), [A100])
    assert [c["gi"] for c in state["conflicts"]] == [2]
    assert state["create"][0]["profile"] == "4g.40gb"


def test_an_instance_without_compute_instance_gets_one():
    plan = [tenant("companyA", start=6)]
    state = tenancy_mig_state(plan, "gpu1", sample("lgi_a100_two.txt"), sample("lci_none.txt"), [A100])
    assert state["create_ci"] == [{"tenant": "companyA", "gpu": 0, "gi": 13}]


def test_uuid_is_none_until_nvml_lists_the_device():
    plan = [tenant("companyA", start=6)]
    gpu = {**A100, "mig_devices": []}
    state = tenancy_mig_state(plan, "gpu1", sample("lgi_a100_two.txt"), sample("lci_a100_two.txt"), [gpu])
    assert state["tenants"]["companyA"]["uuid"] is None


@pytest.mark.parametrize(
    "record",
    [
        tenant("other-host", host="gpu2"),
        tenant("shared", mode="shared"),
        tenant("gone", state="absent"),
        tenant("unplaced", state="unplaced"),
    ],
    ids=["other host", "shared mode", "absent", "unplaced"],
)
def test_records_that_are_not_this_hosts_mig_tenants_are_ignored(record):
    state = tenancy_mig_state([record], "gpu1", "", "", [A100])
    assert state == {
        "gpus": [],
        "instances": [],
        "create": [],
        "create_ci": [],
        "conflicts": [],
        "unplanned": [],
        "tenants": {},
    }


@pytest.mark.parametrize(
    ("plan", "lgi", "gpus", "message"),
    [
        ("nope", "", [A100], "plan must be a list"),
        ([{"host": "gpu1"}], "", [A100], "is not a tenancy_plan record"),
        ([tenant("x", profile=None)], "", [A100], "without gpu, mig_profile, mig_start"),
        ([tenant("x", gpu=3)], "", [A100], "planned on GPU 3; NVML does not list it"),
        ([tenant("x", profile="9g.99gb")], "", [A100], "'9g.99gb' is not a MIG profile of GPU 0"),
        ([], "|   0  MIG garbled |", [A100], "cannot read the row"),
        ([], "Failed to initialize NVML: Driver/library version mismatch", [A100], "not an nvidia-smi mig table"),
        ([], None, [A100], "lgi must be nvidia-smi's text"),
        ([], "", "nope", "gpus must be the list"),
    ],
)
def test_bad_input_names_what_is_wrong(plan, lgi, gpus, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tenancy_mig_state(plan, "gpu1", lgi, "", gpus)


def _render_lgi(rows):
    """An -lgi table in nvidia-smi's layout for (profile, gi, start, size) rows."""
    lines = ["+---+", "| GPU instances:  |", "|====|"]
    for profile, gi, start, size in rows:
        lines += [f"|   0  MIG {profile:<12} 19 {gi:>8} {start:>10}:{size}     |", "+---+"]
    return "\n".join(lines) + "\n"


PROFILES = profiles(A100["name"], A100["memory_total"])


@given(st.lists(st.sampled_from(PROFILES), min_size=1, max_size=7))
def test_a_host_that_matches_its_plan_needs_nothing(chosen):
    starts = place(chosen)
    if starts is None:
        return  # not a placeable layout; the planner never produces it
    plan = [tenant(f"t{i}", profile=p.name, start=s) for i, (p, s) in enumerate(zip(chosen, starts, strict=True))]
    lgi = _render_lgi([(p.name, 10 + i, s, p.slices) for i, (p, s) in enumerate(zip(chosen, starts, strict=True))])
    lci = "\n".join(f"|   0 {10 + i:>6}       MIG {p.name}  0  0  0:1 |" for i, p in enumerate(chosen))
    state = tenancy_mig_state(plan, "gpu1", lgi, lci, [A100])
    assert (state["create"], state["create_ci"], state["conflicts"], state["unplanned"]) == ([], [], [], [])
    assert sorted(state["tenants"]) == sorted(r["name"] for r in plan)


@given(st.lists(st.sampled_from(PROFILES), min_size=1, max_size=7))
def test_an_empty_gpu_gets_every_planned_instance(chosen):
    starts = place(chosen)
    if starts is None:
        return
    plan = [tenant(f"t{i}", profile=p.name, start=s) for i, (p, s) in enumerate(zip(chosen, starts, strict=True))]
    state = tenancy_mig_state(plan, "gpu1", "No GPU instances found: Not Found\n", "", [A100])
    assert len(state["create"]) == len(plan) and not state["conflicts"]
