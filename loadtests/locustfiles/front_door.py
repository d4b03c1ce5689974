"""Scenario `front_door`: does a flood on one tenant's port slow another tenant down?

noisy_neighbour loads a tenant with authenticated chats, which its engine pays for. Here
the flood never reaches an engine: it is what the shared parts in front of the engines
carry (the gateway, the kernel's NAT for published ports, Docker's log pipeline). The
victim tenant runs at a paced rate throughout (one user: it never overlaps itself, see
VICTIM_USERS), through FLOOD_CYCLES cycles of four short phases:
  solo    - the victim alone: its baseline;
  control - the victim while a CPU burner (`flood.py --kind burn`) keeps every core of
            the flooded tenant's cpuset busy: what that tenant may do with its own cores;
  flood   - the victim while loadtests/flood.py floods the flooded tenant's port as fast
            as it can, with the cycle's kind:
              bad_key    pipelined requests with a key the gateway does not know (401);
              over_limit pipelined requests with the tenant's own key, far above its
                         rpm_limit (rpm_limit a minute reach the engine, the rest 429);
              connect    a new connection per request, bad key (accepting connections);
  settle  - the victim alone, not counted: whatever the flood left behind drains.
The kinds take turns, cycle by cycle (FLOOD_KINDS). The burner and the flood run in the
same way: processes pinned to the flooded tenant's cpuset, at nice 0 (their CPU is that
tenant's, as a client elsewhere would be). Locust, which times the victim, runs there
too at a raised priority, as in noisy_neighbour; see that scenario for why. The phases
are seconds long and interleaved so that the machine's own drift (on the 2-vCPU
reference machine a victim's p95 wanders by 30 % from one half-minute to the next) falls
on every phase alike; a victim request counts for the phase it was sent in, read from
the shape's clock, except in a phase's first FLOOD_EDGE_S and last FLOOD_EDGE_S / 2
(the burner or flood starting and stopping).

The gate: the victim's p95 over every flood phase against its p95 over every control
phase must stay within FLOOD_MAX_RATIO (1.25, issue #13's goal); and no kind's cycles
alone may lie wholly above it (each kind's 90 % interval; run one kind with FLOOD_KINDS
to measure its own ratio). With FLOOD_GATE=interval
(the short run, CI) the run fails only when that ratio's whole 90 % interval (a block
bootstrap over the cycles, report.p95_ratio_interval) lies above it: nine 5-second
phases a side give a p95 that moves by +-0.2 with nothing loaded at all (1.19 measured
so), so the short run is a detector of clear breaks (the planted one: 4x), and the
full run (24 cycles) the measurement. Against the control,
not the solo phase, because a core kept busy costs its neighbour something on machines
whose cores are not independent: on the 2-vCPU reference machine, a bare CPU burner on
core 0 alone took the victim on core 1 from p95 129 to 175 ms (docs/benchmarks.md, "Front
door"). What the front door must not do is cost more than that: a flood must be charged
to the flooded tenant like any other use of its own cores. flood / solo and control / solo
are printed as well, by kind too. Moving the flooded tenant's gateway onto the victim's
cores fails the run (`loadtests/run.py --planted front_door`).

Settings and thresholds (environment variables, checked when Locust quits):
  FLOOD_TENANT / VICTIM_TENANT  default: the plan's first / second present tenant
  FLOOD_KINDS                   comma-separated kinds, one per cycle in turn
                                (default bad_key,over_limit,connect)
  FLOOD_CYCLES                  cycles (default: two per kind)
  FLOOD_PHASE_S                 solo, control and flood length in seconds (default 5)
  FLOOD_SETTLE_S                settle length in seconds (default 2)
  FLOOD_EDGE_S                  not counted at a phase's start (default 0.5; half of
                                it at its end)
  FLOOD_PROCS                   burner and flood processes (default: one per core of
                                the flooded tenant)
  FLOOD_MAX_RATIO               largest victim p95 flood / control (default 1.25)
  FLOOD_GATE                    estimate (default: the ratio itself) or interval (its
                                90 % interval's lower end) must be at most FLOOD_MAX_RATIO
  FLOOD_MIN_RATE                fewest answers a second a flood must get, or it was no
                                flood (default 1000)
  FLOOD_MIN_CONNECT_RATE        the same for the connect flood, which pays a TLS handshake
                                per request (default 400; 514-523 measured on a 2-core
                                machine, 2026-12-07)
  FLOOD_MIN_BUSY                least share of its cores the burner must have used, or
                                it was no control (default 0.6; it measured 0.78-0.94:
                                it shares them with Locust at nice -10 and that tenant's
                                own containers)
  VICTIM_USERS                  victim users (default 1), each at VICTIM_RPS req/s
                                (default 4). One user never overlaps itself: with two,
                                requests that met in the engine made a second mode near
                                twice the median, and the p95 jumped between the modes
                                (130 -> 260 ms in a CI run) on a small shift of the first
  FLOOD_LOADGEN_NICE            Locust's nice value once pinned (default -10; needs root)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import gevent
import shapes
from locust import User, constant, constant_throughput, events, task
from openai_user import INVENTORY, PhasedChatUser, bind, scenario_tenants
from report import (
    Sample,
    cpuset_cores,
    enforce,
    env_float,
    p95_ratio,
    p95_ratio_interval,
    phase_p95,
    pin_load_generator,
    ratio_gate,
    tenant_rows,
    write_samples,
    write_tenant_csv,
)
from tenancy_inventory import base_url, key_file

FLOODED, VICTIM = scenario_tenants("front_door", "FLOOD_TENANT", "VICTIM_TENANT")
KINDS = [k.strip() for k in os.environ.get("FLOOD_KINDS", "bad_key,over_limit,connect").split(",") if k.strip()]
CYCLES = shapes.env_int("FLOOD_CYCLES", 2 * len(KINDS))
VICTIM_USERS = shapes.env_int("VICTIM_USERS", 1)
PHASE_S = env_float("FLOOD_PHASE_S", 5)
SETTLE_S = env_float("FLOOD_SETTLE_S", 2)
EDGE_S = env_float("FLOOD_EDGE_S", 0.5)
MAX_RATIO = env_float("FLOOD_MAX_RATIO", 1.25)
GATE = os.environ.get("FLOOD_GATE", "estimate")
if GATE not in ("estimate", "interval"):
    raise SystemExit(f"front_door: FLOOD_GATE is {GATE!r}; want estimate or interval")
MIN_RATE = env_float("FLOOD_MIN_RATE", 1000)
# A new TLS connection per request: the handshake, not the request, is the unit of work.
MIN_CONNECT_RATE = env_float("FLOOD_MIN_CONNECT_RATE", 400)
MIN_BUSY = env_float("FLOOD_MIN_BUSY", 0.6)
FLOOD_SCRIPT = Path(__file__).resolve().parents[1] / "flood.py"
FLOODED_CORES = sorted(cpuset_cores(FLOODED["cpuset"])) if FLOODED.get("cpuset") else []

PINNED = pin_load_generator(FLOODED, True, shapes.env_int("FLOOD_LOADGEN_NICE", -10))
print(f"front_door: flooded {FLOODED['name']}, victim {VICTIM['name']}, kinds {KINDS}; {PINNED}", flush=True)

PHASES = ("solo", "control", "flood", "settle")


def cycle_kind(cycle: int) -> str:
    return KINDS[(cycle - 1) % len(KINDS)]


def cycle_of(phase_index: int) -> int:
    return phase_index // len(PHASES) + 1


def load_of(phase_index: int) -> str | None:
    """What runs on the flooded tenant's cores in a phase: burn, a flood kind, or nothing."""
    name = PHASES[phase_index % len(PHASES)]
    return {"control": "burn", "flood": cycle_kind(cycle_of(phase_index))}.get(name)


def counted_phase(phase: shapes.Phase | None, seconds_in: float) -> str:
    """The phase a victim request sent `seconds_in` into `phase` counts for; "edge" (not
    counted) near a phase's start or end, where the load starts or stops."""
    if phase is None or seconds_in < EDGE_S or seconds_in > phase.seconds - EDGE_S / 2:
        return "edge"
    return phase.name


class FrontDoorVictim(PhasedChatUser):
    """Names each request after the phase it is sent in, by the shape's own clock."""

    abstract = True

    def request_name(self, kind: str) -> str:
        _, phase, seconds_in = shapes.phase_clock()
        return f"{self.tenant} {kind} [{counted_phase(phase, seconds_in)}]"


Victim = bind(
    FrontDoorVictim,
    VICTIM,
    wait_time=constant_throughput(env_float("VICTIM_RPS", 4.0)),
    fixed_count=VICTIM_USERS,
)

# What each loaded phase's flood.py reported (its JSON line), by phase index.
loads: dict[int, dict] = {}


class Loader(User):
    """Starts, for each phase, what runs on the flooded tenant's cores (load_of), and stops
    it when the phase ends: one user for the whole run, following the shape's clock."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        self.process: subprocess.Popen | None = None
        self.index = -1

    @task
    def follow_the_phases(self) -> None:
        index, _, _ = shapes.phase_clock()
        if index != self.index:
            self.end()
            self.index = index
            kind = load_of(index)
            if kind:
                self.begin(kind)
        gevent.sleep(0.02)

    def begin(self, kind: str) -> None:
        url = urlsplit(base_url(FLOODED))
        argv = [sys.executable, str(FLOOD_SCRIPT), url.hostname, str(url.port), "--kind", kind]
        argv += ["--seconds", str(PHASE_S + 5), "--key-file", str(key_file(INVENTORY, FLOODED["name"]))]
        if FLOODED_CORES:
            argv += ["--cpus", ",".join(str(c) for c in FLOODED_CORES)]
        if os.environ.get("FLOOD_PROCS"):
            argv += ["--procs", os.environ["FLOOD_PROCS"]]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    def end(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        line = output.strip().splitlines()[-1] if output.strip() else "{}"
        loads[self.index] = json.loads(line)
        self.process = None

    def on_stop(self) -> None:
        self.end()


class FrontDoorShape(shapes.PhasedShape):
    """FLOOD_CYCLES x (solo, control, flood, settle), the victim and the Loader throughout."""

    def __init__(self) -> None:
        super().__init__()
        lengths = {"settle": SETTLE_S}
        self.phases = tuple(
            shapes.Phase(name, lengths.get(name, PHASE_S), VICTIM_USERS + 1) for _ in range(CYCLES) for name in PHASES
        )


victim_samples: list[Sample] = []


@events.request.add_listener
def record_victim(name: str, response_time: float, exception: BaseException | None, **_kwargs) -> None:
    if name.startswith(f"{VICTIM['name']} chat ["):
        phase = name.rsplit("[", 1)[1].rstrip("]")
        victim_samples.append((cycle_of(shapes.phase_clock()[0]), phase, response_time, exception is not None))


def ratio(numerator: str, denominator: str, kind: str | None = None) -> float:
    """The victim's p95 in one phase over another's, over every cycle (of one kind)."""
    samples = [s for s in victim_samples if kind is None or cycle_kind(s[0]) == kind]
    return p95_ratio(samples, numerator, denominator)


def load_problems() -> list[str]:
    """Every flood got at least MIN_RATE answers a second and every burner kept its cores
    at least MIN_BUSY busy; every loaded phase reported."""
    problems = []
    expected = [i for i in range(CYCLES * len(PHASES)) if load_of(i)]
    missing = [i for i in expected if i not in loads]
    if missing:
        problems.append(f"no report from the load of phase(s) {missing}")
    floods = {i: r for i, r in loads.items() if r.get("kind") != "burn"}

    def floor(record: dict) -> float:
        return MIN_CONNECT_RATE if record.get("kind") == "connect" else MIN_RATE

    weak = {i: r.get("per_second", 0) for i, r in floods.items() if r.get("per_second", 0) < floor(r)}
    if weak:
        problems.append(
            f"floods below {MIN_RATE:.0f} answers a second ({MIN_CONNECT_RATE:.0f} for connect) (by phase): {weak}"
        )
    idle = {i: r.get("busy", 0) for i, r in loads.items() if r.get("kind") == "burn" and r.get("busy", 0) < MIN_BUSY}
    if idle:
        problems.append(f"burners below {MIN_BUSY:.0%} of their cores (by phase): {idle}")
    return problems


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    counts = {phase: sum(1 for _, ph, _, _ in victim_samples if ph == phase) for phase in ("solo", "control", "flood")}
    problems = []
    if not all(counts.values()):
        problems.append(f"victim requests by phase {counts}: a phase is missing")
    gate = ratio("flood", "control")
    low, high = p95_ratio_interval(victim_samples, "flood", "control")
    # All the floods together by FLOOD_GATE; each kind of flood on its own (issue #13: each
    # of 401s, 429s and connection floods leaves the victim within FLOOD_MAX_RATIO) by its
    # interval: a third of the cycles gives an estimate that moves by +-0.2 between runs
    # of the full length (over_limit 1.01 to 1.35), so a kind fails the run only when its
    # whole interval is above the limit. A single kind's own ratio is measured with
    # FLOOD_KINDS=<kind> (docs/benchmarks.md, "Front door").
    problem = ratio_gate(victim_samples, "flood", "control", GATE, MAX_RATIO, "victim")
    if problem:
        problems.append(problem)
    by_kind_samples = {kind: [s for s in victim_samples if cycle_kind(s[0]) == kind] for kind in KINDS}
    for kind, samples in by_kind_samples.items() if len(KINDS) > 1 else []:
        problem = ratio_gate(samples, "flood", "control", "interval", MAX_RATIO, f"victim ({kind} floods only)")
        if problem:
            problems.append(problem)
    failed = sum(1 for *_, bad in victim_samples if bad)
    if failed:
        problems.append(f"{failed} victim request(s) failed")
    problems += load_problems()
    write_tenant_csv(environment, tenant_rows(environment.stats, [VICTIM["name"]]))
    prefix = environment.parsed_options.csv_prefix if environment.parsed_options else None
    if prefix:
        write_samples(f"{prefix}_victim.csv", victim_samples)
    by_kind = ", ".join(
        f"{kind} {ratio('flood', 'control', kind):.2f} (90 % interval "
        + "{:.2f}-{:.2f}".format(*p95_ratio_interval(by_kind_samples[kind], "flood", "control"))
        + f"; {ratio('flood', 'solo', kind):.2f} of solo)"
        for kind in KINDS
    )
    rates: dict[str, list] = {}
    for report in loads.values():
        rates.setdefault(report.get("kind", "?"), []).append(report.get("per_second") or report.get("busy"))
    p95 = {phase: phase_p95(victim_samples, phase) for phase in counts}
    enforce(
        environment,
        "front_door",
        problems,
        f"victim {VICTIM['name']} p95 solo {p95['solo']:.1f} ms, control {p95['control']:.1f} ms, "
        f"flood {p95['flood']:.1f} ms (requests {counts}); "
        f"flood / control {gate:.2f}, 90 % interval {low:.2f}-{high:.2f} "
        f"(gate: the {GATE} at most {MAX_RATIO}), "
        f"control / solo {ratio('control', 'solo'):.2f}, flood / solo {ratio('flood', 'solo'):.2f}; "
        f"by kind flood / control: {by_kind}; answers a second (burn: share of its cores busy): "
        + "; ".join(f"{kind} {min(v)}-{max(v)}" for kind, v in rates.items()),
    )
