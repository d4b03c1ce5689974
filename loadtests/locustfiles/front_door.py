"""Scenario `front_door`: does a flood on one tenant's port slow another tenant down?

noisy_neighbour loads a tenant with authenticated chats, which its engine pays for. Here
the flood never reaches an engine: it is what the shared parts in front of the engines
carry (the gateway, the kernel's NAT for published ports, Docker's log pipeline). The
victim tenant runs at a modest paced rate throughout; FLOOD_ROUNDS rounds of
  settle - the victim alone, not counted;
  solo   - the victim alone: its baseline;
  flood  - the victim at the same rate while loadtests/flood.py floods the flooded
           tenant's port, as fast as it can, with the round's kind:
             bad_key    pipelined requests with a key the gateway does not know (401);
             over_limit pipelined requests with the tenant's own key, far above its
                        rpm_limit (rpm_limit a minute reach the engine, the rest 429);
             connect    a new connection per request, bad key (accepting connections).
The kinds take turns, round by round (FLOOD_KINDS). The flood runs in its own processes
pinned to the flooded tenant's cpuset: its CPU is that tenant's, as a client elsewhere
would be. Locust (which times the victim) runs there too, at a raised priority, as in
noisy_neighbour; see that scenario for why.

The victim's p95 over every flood phase, against its p95 over every solo phase, must stay
within FLOOD_MAX_RATIO (1.25: issue #13's goal). The ratio of each kind is printed too
(docs/benchmarks.md, "Front door"). Moving the flooded tenant's gateway onto the victim's
cores fails the run (`loadtests/run.py --planted front_door`).

Settings and thresholds (environment variables, checked when Locust quits):
  FLOOD_TENANT / VICTIM_TENANT  default: the plan's first / second present tenant
  FLOOD_KINDS                   comma-separated kinds, one per round in turn
                                (default bad_key,over_limit,connect)
  FLOOD_ROUNDS                  rounds (default: one per kind)
  FLOOD_SOLO_S / FLOOD_FLOOD_S  phase lengths in seconds (default 30 / 30)
  FLOOD_SETTLE_S                settle phase length in seconds (default 5)
  FLOOD_PROCS                   flood processes (default: one per core of the flooded tenant)
  FLOOD_MAX_RATIO               largest victim p95 flood / solo (default 1.25)
  FLOOD_MIN_RATE                fewest answers a second the flood must get, or it was no
                                flood (default 1000)
  VICTIM_USERS                  victim users (default 2), each at VICTIM_RPS req/s (default 2)
  FLOOD_LOADGEN_NICE            Locust's nice value once pinned (default -10; needs root)
"""

from __future__ import annotations

import json
import math
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
    phase_p95,
    pin_load_generator,
    tenant_rows,
    write_samples,
    write_tenant_csv,
)
from tenancy_inventory import base_url, key_file

FLOODED, VICTIM = scenario_tenants("front_door", "FLOOD_TENANT", "VICTIM_TENANT")
KINDS = [k.strip() for k in os.environ.get("FLOOD_KINDS", "bad_key,over_limit,connect").split(",") if k.strip()]
ROUNDS = shapes.env_int("FLOOD_ROUNDS", len(KINDS))
VICTIM_USERS = shapes.env_int("VICTIM_USERS", 2)
FLOOD_S = env_float("FLOOD_FLOOD_S", 30)
MAX_RATIO = env_float("FLOOD_MAX_RATIO", 1.25)
MIN_RATE = env_float("FLOOD_MIN_RATE", 1000)
FLOOD_SCRIPT = Path(__file__).resolve().parents[1] / "flood.py"

PINNED = pin_load_generator(FLOODED, True, shapes.env_int("FLOOD_LOADGEN_NICE", -10))
print(f"front_door: flooded {FLOODED['name']}, victim {VICTIM['name']}, kinds {KINDS}; {PINNED}", flush=True)


def round_kind(round_number: int) -> str:
    return KINDS[(round_number - 1) % len(KINDS)]


PHASES_PER_ROUND = 3  # settle, solo, flood


def current_round() -> int:
    return shapes.current_phase_index() // PHASES_PER_ROUND + 1


Victim = bind(
    PhasedChatUser, VICTIM, wait_time=constant_throughput(env_float("VICTIM_RPS", 2.0)), fixed_count=VICTIM_USERS
)

# What each flood phase's flood.py reported (its JSON line), by round.
floods: dict[int, dict] = {}


class Flooder(User):
    """One per flood phase: runs loadtests/flood.py for the phase and stops it with the phase."""

    # Not fixed_count: the flood phase's one extra user goes to the only weighted class.
    wait_time = constant(1)

    def on_start(self) -> None:
        self.round = current_round()
        url = urlsplit(base_url(FLOODED))
        argv = [sys.executable, str(FLOOD_SCRIPT), url.hostname, str(url.port), "--kind", round_kind(self.round)]
        argv += ["--seconds", str(FLOOD_S + 5), "--key-file", str(key_file(INVENTORY, FLOODED["name"]))]
        if FLOODED.get("cpuset"):
            argv += ["--cpus", ",".join(str(c) for c in sorted(cpuset_cores(FLOODED["cpuset"])))]
        if os.environ.get("FLOOD_PROCS"):
            argv += ["--procs", os.environ["FLOOD_PROCS"]]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    @task
    def wait(self) -> None:
        gevent.sleep(0.5)

    def on_stop(self) -> None:
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        line = output.strip().splitlines()[-1] if output.strip() else "{}"
        floods[self.round] = json.loads(line)


class FrontDoorShape(shapes.PhasedShape):
    """FLOOD_ROUNDS x (settle, solo: the victim alone; flood: plus one Flooder)."""

    def __init__(self) -> None:
        super().__init__()
        settle, solo = env_float("FLOOD_SETTLE_S", 5), env_float("FLOOD_SOLO_S", 30)
        self.phases = shapes.victim_rounds(ROUNDS, Victim, VICTIM_USERS, settle, solo, "flood", FLOOD_S, Flooder, 1)


victim_samples: list[Sample] = []


@events.request.add_listener
def record_victim(name: str, response_time: float, exception: BaseException | None, **_kwargs) -> None:
    if name.startswith(f"{VICTIM['name']} chat ["):
        phase = name.rsplit("[", 1)[1].rstrip("]")
        # The flood phase is named "flood"; p95_ratio compares "noisy" with "solo".
        phase = "noisy" if phase == "flood" else phase
        victim_samples.append((current_round(), phase, response_time, exception is not None))


def kind_ratio(kind: str) -> float:
    rounds = {r for r in range(1, ROUNDS + 1) if round_kind(r) == kind}
    return p95_ratio([s for s in victim_samples if s[0] in rounds])


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    counts = {phase: sum(1 for _, ph, _, _ in victim_samples if ph == phase) for phase in ("solo", "noisy")}
    problems = []
    if not all(counts.values()):
        problems.append(f"victim requests solo={counts['solo']} flood={counts['noisy']}: a phase is missing")
    ratio = p95_ratio(victim_samples)
    if ratio > MAX_RATIO:
        problems.append(f"victim p95 flood/solo {ratio:.2f} > {MAX_RATIO}")
    failed = sum(1 for *_, bad in victim_samples if bad)
    if failed:
        problems.append(f"{failed} victim request(s) failed")
    rates = {r: f.get("per_second", 0) for r, f in floods.items()}
    weak = {r: rate for r, rate in rates.items() if rate < MIN_RATE}
    if len(floods) < ROUNDS or weak:
        problems.append(f"flood rounds {sorted(floods)} of {ROUNDS}; below {MIN_RATE:.0f} answers/s: {weak}")
    write_tenant_csv(environment, tenant_rows(environment.stats, [VICTIM["name"]]))
    prefix = environment.parsed_options.csv_prefix if environment.parsed_options else None
    if prefix:
        write_samples(f"{prefix}_victim.csv", victim_samples)
    per_round = ", ".join(
        f"{round_kind(r)} {phase_p95(victim_samples, 'solo', r):.0f}/{phase_p95(victim_samples, 'noisy', r):.0f} ms "
        f"at {rates.get(r, 0)}/s {floods.get(r, {}).get('answers', {})}"
        for r in range(1, ROUNDS + 1)
        if not math.isnan(phase_p95(victim_samples, "solo", r))
    )
    by_kind = ", ".join(f"{kind} {kind_ratio(kind):.2f}" for kind in KINDS)
    enforce(
        environment,
        "front_door",
        problems,
        f"victim {VICTIM['name']} p95 solo {phase_p95(victim_samples, 'solo'):.1f} ms ({counts['solo']} req), "
        f"flooded {phase_p95(victim_samples, 'noisy'):.1f} ms ({counts['noisy']} req), ratio {ratio:.2f} "
        f"(max {MAX_RATIO}); by kind: {by_kind}; per round solo/flood p95 and flood rate: {per_round}",
    )
