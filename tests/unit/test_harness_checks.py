"""The pure parts of the load and infra harness: the infra checks and the rate-limit
windows, on made-up observations (the live proof is tests/infra/plant_breaks.py)."""

from __future__ import annotations

import random

import checks
import pytest
import shapes
from report import (
    cpuset_cores,
    not_overlapping,
    p95_ratio,
    p95_ratio_interval,
    percentile,
    phase_p95,
    ratio_gate,
    read_samples,
    write_samples,
)
from tenancy_inventory import ROOT
from windows import window_counts

TENANT = {
    "name": "a",
    "port": 30001,
    "bind_address": "127.0.0.1",
    "names": {"network": "tenancy-a", "edge_network": "tenancy-a-edge", "config_dir": "/etc/tenancy/a"},
    "model_mounts": [{"source": "/m/tiny", "target": "/models/tiny"}],
}
DEFAULTS = {"tenant_data_dir": "/d", "nvidia_mps_pipe_root": "/run/nvidia-mps"}


def container(**host_config) -> dict:
    host = {
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
        "CapAdd": None,
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges"],
        "Memory": 1 << 30,
        "PidsLimit": 256,
        "PortBindings": {},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    return {
        "Config": {"User": "1000:1000"},
        "HostConfig": {**host, **host_config},
        "Mounts": [
            {"Type": "bind", "Source": "/m/tiny", "Destination": "/models/tiny", "RW": False},
            {"Type": "bind", "Source": "/d/a", "Destination": "/data", "RW": True},
        ],
        "NetworkSettings": {"Networks": {"tenancy-a": {}}},
    }


def test_a_hardened_engine_passes_every_check():
    attrs = container()
    assert all(check(attrs) == [] for check in checks.HARDENING.values())
    assert checks.only_expected_mounts(attrs, checks.expected_mounts(TENANT, "engine", DEFAULTS)) == []
    assert checks.engine_network(attrs, TENANT, internal=True) == []
    assert checks.foreign_data_mounts(attrs, TENANT, "/d") == []
    assert checks.foreign_model_mounts(attrs, TENANT, [OTHER], "/m") == []


# B serves a hub model (the hub cache's layout under the store) and shares nothing with A.
OTHER = {"name": "b", "model_mounts": [{"source": "/m/.hf/hub/models--o--n", "target": "/models/.hf/hub/models--o--n"}]}


def with_mount(source: str, destination: str) -> dict:
    attrs = container()
    attrs["Mounts"].append({"Type": "bind", "Source": source, "Destination": destination, "RW": False})
    return attrs


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("/m", "/m at /x, which holds every tenant's models"),
        ("/", "/ at /x, which holds every tenant's models"),
        ("/m/.hf", "/m/.hf at /x, the model of b"),
        ("/m/.hf/hub/models--o--n/snapshots", "/m/.hf/hub/models--o--n/snapshots at /x, the model of b"),
        ("/m/other", "/m/other at /x, a part of the model store not its own"),
    ],
)
def test_foreign_model_mounts(source, problem):
    assert checks.foreign_model_mounts(with_mount(source, "/x"), TENANT, [OTHER], "/m") == [f"mounts {problem}"]


def test_a_shared_base_model_is_not_another_tenants():
    """Two tenants of one base model mount the same store directory, one copy per host."""
    same = {"name": "c", "model_mounts": TENANT["model_mounts"]}
    assert checks.foreign_model_mounts(container(), TENANT, [same, OTHER], "/m/") == []
    assert checks.foreign_model_mounts(with_mount("/d/c", "/y"), TENANT, [OTHER], "/m") == []


@pytest.mark.parametrize(
    ("check", "change"),
    [
        ("read_only_rootfs", {"ReadonlyRootfs": False}),
        ("cap_drop_all", {"CapDrop": None}),
        ("cap_drop_all", {"CapAdd": ["NET_ADMIN"]}),
        ("cap_drop_all", {"Privileged": True}),
        ("no_new_privileges", {"SecurityOpt": None}),
        ("limits_set", {"Memory": 0}),
        ("limits_set", {"PidsLimit": -1}),
        ("logs_bounded", {"LogConfig": {"Type": "json-file", "Config": {}}}),
        ("logs_bounded", {"LogConfig": {"Type": "json-file", "Config": {"max-size": "-1", "max-file": "3"}}}),
        ("logs_bounded", {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}),
        ("logs_bounded", {"LogConfig": {"Type": "syslog", "Config": {}}}),
    ],
)
def test_each_hardening_check_reports_its_break(check, change):
    assert checks.HARDENING[check](container(**change)) != []


def test_root_user_socket_and_foreign_mounts_are_reported():
    attrs = container()
    attrs["Config"]["User"] = "0"
    attrs["Mounts"] += [
        {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/s", "RW": True},
        {"Type": "bind", "Source": "/d/b", "Destination": "/other", "RW": True},
    ]
    assert checks.non_root(attrs) != []
    assert checks.no_docker_socket(attrs) != []
    assert checks.foreign_data_mounts(attrs, TENANT, "/d") == ["mounts /d/b"]
    assert len(checks.only_expected_mounts(attrs, checks.expected_mounts(TENANT, "engine", DEFAULTS))) == 2


def test_engine_network_reports_ports_and_extra_networks():
    attrs = container(PortBindings={"8000/tcp": [{"HostPort": "1"}]})
    attrs["NetworkSettings"]["Networks"]["tenancy-b"] = {}
    assert len(checks.engine_network(attrs, TENANT, internal=False)) == 3


@pytest.mark.parametrize(
    ("statuses", "found"),
    [
        ({"/-/quit": 403, "/-/reload": 403}, 0),  # Prometheus 2.42 without --web.enable-lifecycle
        ({"/-/quit": 401, "/-/reload": 401}, 0),  # behind auth
        ({"/-/quit": 200, "/-/reload": 200}, 2),  # lifecycle on
        ({"/-/quit": 0, "/-/reload": 0}, 2),  # nothing answered: nothing proven
        ({"/-/quit": 403}, 1),
    ],
)
def test_prometheus_stoppable(statuses, found):
    assert len(checks.prometheus_stoppable("h", statuses)) == found


OWNED = {"name": "a", "uid": 2000030001}
OWN_VIEW = {"engine_user": "2000030001:2000030001", "strays": [], "account": ""}


@pytest.mark.parametrize(
    ("view", "neighbours", "found"),
    [
        (OWN_VIEW, {"b": "2000030002:2000030002"}, 0),
        ({**OWN_VIEW, "engine_user": "1000:1000"}, {"b": "1000:1000"}, 2),  # the old single uid
        (OWN_VIEW, {"b": "2000030001:2000030001"}, 1),
        ({**OWN_VIEW, "strays": [f"/d/a/f{i}" for i in range(7)]}, {}, 1),
        ({**OWN_VIEW, "account": "alice:x:2000030001"}, {}, 1),
    ],
)
def test_tenant_ownership(view, neighbours, found):
    problems = checks.tenant_ownership(OWNED, view, neighbours)
    assert len(problems) == found
    assert all("and 2 more" in p for p in problems if "file(s)" in p)


@pytest.mark.parametrize(
    ("statuses", "found"),
    [
        ({"expired": 401, "ending": 200, "ending_after": 401, "control": 200}, 0),
        # a gateway that only asks whether the key is in the map (the grace ends at the next run)
        ({"expired": 200, "ending": 200, "ending_after": 200, "control": 200}, 2),
        # entries that never reached the map: every 401 is the unknown-key 401
        ({"expired": 401, "ending": 401, "ending_after": 401, "control": 401}, 2),
        ({"expired": 401, "ending": 200, "control": 200}, 1),
    ],
)
def test_retired_key_outlives_grace(statuses, found):
    assert len(checks.retired_key_outlives_grace("a", statuses)) == found


MODELS = '{"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "vllm"}]}'


@pytest.mark.parametrize(
    ("route", "status", "body", "found"),
    [
        # inhibit_ipv4: no route into the subnet; what answers on the default route is not the engine
        ("172.23.0.2 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 65534 \\    cache ", 404, "Not Found", 0),
        ("172.23.0.2 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 65534", 0, "timed out", 0),
        # the host has an address on the internal bridge, and the engine answers
        ("172.23.0.2 dev br-85db4cd357f5 src 172.23.0.1 uid 65534 \\    cache ", 200, MODELS, 2),
        # a route in, but something refuses (still a way in: reported)
        ("172.23.0.2 dev br-85db4cd357f5 src 172.23.0.1 uid 65534", 0, "refused", 1),
        # no route in, yet the model list came back (through some other path): reported
        ("172.23.0.2 via 10.0.0.1 dev eth0 src 10.0.0.5", 200, MODELS, 1),
    ],
)
def test_engine_open_to_local_user(route, status, body, found):
    assert len(checks.engine_open_to_local_user("a", "br-85db4cd357f5", route, status, body)) == found


@pytest.mark.parametrize(
    ("listing", "encrypted", "ok"),
    [
        ("  a  x  NOT ENCRYPTED\n  b  x  NOT ENCRYPTED", False, True),
        ("  a  plan row\n  TENANT HOST VOLUME\n  a  x  NOT ENCRYPTED", False, True),
        ("  a  plan row NOT ENCRYPTED\n  TENANT HOST VOLUME\n  a  x  luks CLOSED", False, False),
        ("  a  x  luks open", True, True),
        ("  a  x  NOT ENCRYPTED", True, False),
        ("  a  x  luks CLOSED", True, False),
        ("  b  x  NOT ENCRYPTED", False, False),
    ],
)
def test_volume_marking(listing, encrypted, ok):
    assert (checks.volume_marking(listing, "a", encrypted) == []) is ok


MOUNTINFO_ON_VOLUME = """\
812 790 0:44 / / ro,relatime - overlay overlay rw
830 812 254:3 / /data rw,nosuid,nodev,relatime - ext4 /dev/mapper/tenancy-alpha-data rw
831 812 8:1 /var/lib/tenancy/models /models ro,relatime - ext4 /dev/vda1 rw
"""
# The planted break: the volume is not mounted, so the engine's /data is the bare
# directory on the host's root filesystem.
MOUNTINFO_BARE_DIR = """\
812 790 0:44 / / ro,relatime - overlay overlay rw
830 812 8:1 /var/lib/tenancy/data/alpha /data rw,relatime - ext4 /dev/vda1 rw
"""


def test_engine_data_on_volume():
    assert checks.engine_data_on_volume(MOUNTINFO_ON_VOLUME, "tenancy-alpha-data") == []
    assert checks.engine_data_on_volume(MOUNTINFO_BARE_DIR, "tenancy-alpha-data") == [
        "the engine's /data comes from /dev/vda1, not /dev/mapper/tenancy-alpha-data"
    ]
    assert checks.engine_data_on_volume(MOUNTINFO_ON_VOLUME, "tenancy-bravo-data") != []
    assert checks.engine_data_on_volume("812 790 0:44 / / ro - overlay overlay rw\n", "x") == [
        "the engine has no /data mount"
    ]


def test_luks_active():
    assert checks.luks_active("/dev/mapper/x is active.", "/dev/mapper/x\n", "x") == []
    assert len(checks.luks_active("/dev/mapper/x is inactive.", "/dev/loop0", "x")) == 2


def test_window_counts_follow_a_steady_rate():
    accepted = [i / 10 for i in range(1800)]  # 10/s for 180 s
    counts = window_counts(accepted, 60, 180)
    assert counts and set(counts) == {600}
    assert window_counts(accepted, 60, 110) == []


@pytest.mark.parametrize(
    ("cpuset", "cores"),
    [("0", {0}), ("1", {1}), ("0-3", {0, 1, 2, 3}), ("0-1,6", {0, 1, 6}), ("2, 4-5", {2, 4, 5})],
)
def test_cpuset_cores_reads_dockers_cpuset_syntax(cpuset, cores):
    assert cpuset_cores(cpuset) == cores


def test_percentile_is_exact_nearest_rank():
    values = list(range(1, 101))  # 1..100 ms
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.5) == 50
    assert percentile([104.0, 7.0], 0.95) == 104.0  # not rounded to a 10 ms bucket as Locust's
    assert percentile([3.0], 0.95) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.95)


def test_mps_engine_may_mount_only_its_own_gpus_pipe_directory():
    attrs = container()
    attrs["Mounts"].append(
        {"Type": "bind", "Source": "/run/nvidia-mps/1", "Destination": "/run/nvidia-mps/1", "RW": True}
    )
    mps = {**TENANT, "mode": "mps", "gpu": 1}
    assert checks.only_expected_mounts(attrs, checks.expected_mounts(mps, "engine", DEFAULTS)) == []
    # another GPU's pipe directory, or the same mount on a tenant that is not in MPS mode
    assert checks.only_expected_mounts(attrs, checks.expected_mounts({**mps, "gpu": 0}, "engine", DEFAULTS)) != []
    assert checks.only_expected_mounts(attrs, checks.expected_mounts(TENANT, "engine", DEFAULTS)) != []


def test_p95_ratio_compares_phases_over_every_round(tmp_path):
    solo = [(r, "solo", float(ms), False) for r in (1, 2) for ms in range(1, 101)]  # p95 95
    noisy = [(r, "noisy", float(ms) * 1.5, False) for r in (1, 2) for ms in range(1, 101)]  # p95 142.5
    settle = [(1, "settle", 10_000.0, True)]  # never counted
    samples = solo + noisy + settle
    assert phase_p95(samples, "solo", 2) == 95
    assert p95_ratio(samples) == pytest.approx(1.5)
    assert p95_ratio(solo) == float("inf")  # a missing phase can never pass a threshold
    write_samples(tmp_path / "v.csv", samples)
    assert read_samples(tmp_path / "v.csv") == samples


def test_a_baseline_request_that_overlaps_the_load_is_not_counted():
    """noisy_neighbour's flood requests outlive their phase; a victim solo request served
    while one still ran is no baseline (planted: with it counted, a slowdown of 2 looks
    like one of about 1.3)."""
    samples = [
        (1, "solo", 100.0, False),
        (2, "solo", 300.0, False),
        (2, "solo", 100.0, False),
        (2, "noisy", 200.0, False),
    ]
    spans = [(0.0, 0.1), (10.0, 10.3), (20.0, 20.1), (30.0, 30.2)]
    flood = [(4.0, 9.0), (5.0, 10.2), (29.9, 35.0)]  # the second ends 0.2 s into round 2's first solo request
    kept, moved = not_overlapping(samples, spans, flood)
    assert moved == 1
    assert kept == [samples[0], (2, "settle", 300.0, False), samples[2], samples[3]]
    assert phase_p95(kept, "solo") == 100 and p95_ratio(kept) == 2.0
    assert p95_ratio(samples) < 1.4  # the planted break, left in: the slowdown hidden
    assert not_overlapping(samples, spans, []) == (samples, 0)


def test_p95_ratio_interval_tells_noise_from_a_slowdown():
    """front_door's short-run gate: fail only when the whole interval is above the
    threshold. Two phases drawn from one distribution, with bursts of slow requests in
    some rounds, give an interval around 1; the same with every loaded request 2x slower
    (a break like a gateway on the victim's cores: 4.4x measured) lies wholly above 1.25."""
    rng = random.Random(7)

    def phase(name: str, factor: float) -> list:
        samples = []
        for round_number in range(1, 10):
            burst = rng.random() < 0.3  # a hiccup: a few slow requests in this round
            for i in range(17):
                ms = rng.gauss(110, 8) * (2.5 if burst and i < 3 else 1.0)
                samples.append((round_number, name, ms * factor, False))
        return samples

    control = phase("control", 1.0)
    same = phase("flood", 1.0)
    low, high = p95_ratio_interval(control + same, "flood", "control")
    assert low < 1.0 < high
    slower = [(r, "flood", ms * 2.0, bad) for r, _, ms, bad in same]
    low, high = p95_ratio_interval(control + slower, "flood", "control")
    assert 1.25 < low <= p95_ratio(control + slower, "flood", "control") <= high
    # Seeded: the same samples give the same interval.
    assert p95_ratio_interval(control + slower, "flood", "control") == (low, high)
    assert p95_ratio_interval(control, "flood", "control") == (float("inf"), float("inf"))


def test_a_phased_shape_finds_the_phase_of_any_moment():
    """front_door names each victim request by the shape's clock (shapes.phase_clock), not
    by Locust's once-a-second tick: phase_at must place a moment in the right phase."""
    shape = shapes.concrete(shapes.PhasedShape)()
    shape.phases = (shapes.Phase("solo", 5, 1), shapes.Phase("flood", 5, 2), shapes.Phase("settle", 2, 1))
    assert shape.phase_at(0.0) == (0, shape.phases[0], 0.0)
    assert shape.phase_at(4.99)[0] == 0
    index, phase, seconds_in = shape.phase_at(5.25)
    assert (index, phase.name, seconds_in) == (1, "flood", 0.25)
    assert shape.phase_at(11.9)[1].name == "settle"
    assert shape.phase_at(12.0) is None


def test_gateway_cpuset_must_be_its_tenants():
    pinned = {**TENANT, "cpuset": "0"}
    assert checks.gateway_cpuset(container(CpusetCpus="0"), pinned) == []
    want = ["gateway runs on cpuset '1', want its tenant's '0'"]
    assert checks.gateway_cpuset(container(CpusetCpus="1"), pinned) == want
    assert checks.gateway_cpuset(container(CpusetCpus=""), pinned) != []
    # A GPU tenant has no cpuset: neither has its gateway.
    assert checks.gateway_cpuset(container(CpusetCpus=""), {**TENANT, "cpuset": None}) == []


def test_config_loaded_reads_the_roles_script_output():
    assert checks.config_loaded("loaded\n", "gw") == []
    assert checks.config_loaded("stale\n", "gw") == ["gw runs an older config than its file ('stale')"]
    assert checks.config_loaded("", "gw") != []


@pytest.mark.parametrize(
    ("lines", "seconds", "ok"),
    [(10, 0.4, True), (20, 0.4, True), (21, 0.4, False), (2000, 0.4, False), (35, 2.5, True), (0, 0.4, False)],
)
def test_refused_log_lines_are_capped_per_second_and_not_zero(lines, seconds, ok):
    """A cap of 10 a second allows 10 per second begun plus one; no line at all is a
    gateway that logs nothing, not a bounded one."""
    assert (checks.refused_log_lines(lines, 2000, seconds, 10) == []) is ok


def test_flood_counts_pipelined_responses_whole():
    """loadtests/flood.py reads pipelined answers: only complete ones are counted and
    removed, a partial one waits for the rest."""
    from collections import Counter

    from flood import statuses

    one = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\n\r\nnope!"
    other = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}"
    buffer, counts = bytearray(one + other + one[:20]), Counter()
    assert statuses(buffer, counts) == 2
    assert counts == {"401": 1, "429": 1}
    assert bytes(buffer) == one[:20]
    buffer += one[20:]
    assert statuses(buffer, counts) == 1 and counts["401"] == 2 and not buffer


def test_make_test_runs_both_locust_groups_on_all_ci_scenarios():
    """scripts/ci.py runs the loadtests and loadtests-untimed targets; each runs its
    group (run.py --only timed alone, --only untimed beside other jobs) on `all`."""
    import re

    from ci import JOB_BY_NAME

    makefile = (ROOT / "Makefile").read_text()
    assert {"loadtests", "loadtests-untimed"} <= {job.target for job in JOB_BY_NAME.values()}
    assert re.search(r"run\.py --short --planted --only timed .*all$", makefile, re.M)
    assert re.search(r"run\.py --short --only untimed .*all$", makefile, re.M)

    from run import SCENARIOS

    in_ci = [s for s in SCENARIOS if s.in_all]
    assert {s.name for s in in_ci if not s.timed} == {"rotation", "rate_limit"}, "an untimed scenario must only count"
    assert any(s.timed for s in in_ci)


def test_ratio_gate_fails_on_the_estimate_or_on_the_whole_interval():
    """front_door's gate, applied to all cycles and to each kind's: the full run checks
    the ratio itself, the short one only the lower end of its 90 % interval."""
    control = [(r, "control", float(ms), False) for r in range(1, 4) for ms in range(100, 120)]
    mild = [(r, "flood", ms * 1.3, bad) for r, _, ms, bad in control]  # 1.3: over the estimate gate
    clear = [(r, "flood", ms * 2.0, bad) for r, _, ms, bad in control]
    assert ratio_gate(control + mild, "flood", "control", "estimate", 1.25, "victim") == (
        "victim p95 flood / control 1.30 > 1.25"
    )
    assert ratio_gate(control + mild, "flood", "control", "estimate", 1.4, "victim") is None
    problem = ratio_gate(control + clear, "flood", "control", "interval", 1.25, "victim (connect floods only)")
    assert problem.startswith("victim (connect floods only) p95 flood / control 2.00, 90 % interval 2.00-2.00")
    same = [(r, "flood", ms, bad) for r, _, ms, bad in control]
    assert ratio_gate(control + same, "flood", "control", "interval", 1.25, "victim") is None
    # A phase with no requests can never pass.
    assert ratio_gate(control, "flood", "control", "estimate", 1.25, "victim") is not None


def test_a_failed_scenario_s_reasons_are_repeated_under_the_summary(tmp_path, monkeypatch):
    """loadtests/run.py prints why each failed scenario failed at the very end (a CI log
    shows its tail), from the verdict file report.enforce() writes."""
    import run
    from report import enforce

    monkeypatch.setattr(run, "ROOT", tmp_path)
    prefix = run.report_prefix(next(s for s in run.SCENARIOS if s.name == "chaos"), short=True)
    prefix.parent.mkdir()

    class Environment:
        parsed_options = type("Options", (), {"csv_prefix": str(prefix)})()
        process_exit_code = None

    environment = Environment()
    enforce(environment, "chaos", ["usage of companyB: requests 182 in the report, 180 counted"], "engine killed")
    assert environment.process_exit_code == 1
    lines = run.failed_verdicts(["chaos", "qps", "planted noisy_neighbour"], short=True)
    assert lines[:3] == [
        "chaos:",
        "  THRESHOLD FAILED: usage of companyB: requests 182 in the report, 180 counted",
        "  measured: engine killed",
    ]
    assert "no verdict written" in lines[4] and "planted break MISSED" in lines[6]


# --- the gateway's path allowlist -------------------------------------------------------


def test_a_hidden_path_is_hidden_only_when_the_gateway_itself_refuses_it():
    engine_404 = '{"detail":"Not Found"}'  # vLLM's (FastAPI's) own answer for a route it lacks
    answers = {
        "/metrics": (404, checks.GATEWAY_NOT_FOUND),
        "/tokenize": (200, '{"tokens":[1]}'),
        "/v1/load_lora_adapter": (404, engine_404),
    }
    assert checks.exposed_paths(answers) == [
        "/tokenize -> 200",
        '/v1/load_lora_adapter -> 404 from behind the gateway (\'{"detail":"Not Found"}\'), not the gateway\'s own',
    ]
    assert checks.exposed_paths({"/": (404, checks.GATEWAY_NOT_FOUND + "\n")}) == []


def test_the_gateway_answers_hidden_paths_with_the_body_the_check_expects():
    template = (ROOT / "roles" / "tenant" / "templates" / "haproxy.cfg.j2").read_text()
    rule = [line for line in template.splitlines() if "http-request return status 404" in line and "odd_path" in line]
    assert len(rule) == 1, "haproxy.cfg.j2 has no single 404 rule for the paths outside /v1"
    assert f"string '{checks.GATEWAY_NOT_FOUND}'" in rule[0]
