"""Scenario `noisy_neighbour`: does a saturated tenant slow another one down?

The victim tenant runs at a modest paced rate throughout; the noisy tenant is flooded
in some phases only (shapes.PhasedShape). NOISY_ROUNDS rounds of
  settle - the victim alone, not counted (warm-up, and the flood's last requests draining);
  solo   - the victim alone: its baseline;
  noisy  - the victim at the same rate while NOISY_USERS users with no wait time flood
           the noisy tenant, each generating NOISY_MAX_TOKENS tokens.
The victim's requests are named "<tenant> chat [solo]" / "[noisy]" / "[settle]", so
Locust's CSV holds both p95s, each over every round. The flood's last requests outlive
their phase (run.py gives this scenario a --stop-timeout, so they finish and are timed
instead of being cut off while the engine still serves them): a solo request that
overlaps one is no baseline and is counted as settle (report.not_overlapping). Left in,
such requests raise the baseline exactly when the flood reaches the victim: a shared
core then measured 1.31 instead of about 2 (docs/benchmarks.md). Interleaving the
rounds, instead of one solo then one noisy phase, keeps slow drift on the host (other
containers' health checks, page cache) from landing on one side of the comparison only.
On a CPU host the isolation comes from the planner's disjoint cpusets; see
loadtests/README.md for what holds on a GPU.

The load generator runs on the same host, and it is not part of what is measured: in
production the clients are elsewhere. Left to the scheduler, Locust lands on the
victim's cores as soon as the noisy engine saturates its own, and the ratio then
measures Locust (1.09 to 1.53 over five single-round runs on 2 cores). So this
locustfile pins its own process to the noisy tenant's cpuset when the plan gives one,
charging the load generator's CPU to the noisy side, and raises its priority so it
does not time the noisy core's run queue. Moving the noisy engine onto the victim's
core fails the run (`loadtests/run.py --planted`).

Settings and thresholds (environment variables, checked when Locust quits):
  NOISY_TENANT / VICTIM_TENANT  default: the plan's first / second present tenant
  NOISY_USERS                   users flooding the noisy tenant (default 16)
  NOISY_MAX_TOKENS              tokens each noisy request generates (default 256, ignore_eos)
  NOISY_IMAGE_SIDE              0 (default): the flood is text chats. N > 0: each flood request
                                carries an N x N PNG of random pixels (about 4 N^2 bytes of
                                base64); the noisy tenant's model must take images
                                (`run.py noisy_images`: 1800, a 13 MB body, with 16 tokens out)
  VICTIM_USERS                  victim users (default 2), each at VICTIM_RPS req/s (default 2)
  NOISY_ROUNDS                  settle + solo + noisy rounds (default 2)
  NOISY_SOLO_S / NOISY_NOISY_S  phase lengths in seconds (default 30 / 30)
  NOISY_SETTLE_S                settle phase length in seconds (default 5)
  NOISY_MAX_RATIO               largest victim p95 noisy / solo (default 1.25)
  NOISY_MAX_FAIL_RATIO          largest share of failed victim requests (default 0.0)
  NOISY_PIN_LOADGEN             1 (default): run Locust on the noisy tenant's cpuset; 0: don't
  NOISY_LOADGEN_NICE            Locust's nice value once pinned (default -10; needs root)
"""

from __future__ import annotations

import math
import os
import time
from typing import ClassVar

import shapes
from locust import constant, constant_throughput, events
from openai_user import PhasedChatUser, TenantUser, bind, noise_png, scenario_tenants
from report import (
    Sample,
    enforce,
    env_float,
    merged,
    not_overlapping,
    p95_ratio,
    phase_p95,
    pin_load_generator,
    tenant_rows,
    write_samples,
    write_tenant_csv,
)

NOISY, VICTIM = scenario_tenants("noisy_neighbour", "NOISY_TENANT", "VICTIM_TENANT")
NOISY_USERS = shapes.env_int("NOISY_USERS", 16)
VICTIM_USERS = shapes.env_int("VICTIM_USERS", 2)
MAX_RATIO = env_float("NOISY_MAX_RATIO", 1.25)
MAX_FAIL_RATIO = env_float("NOISY_MAX_FAIL_RATIO", 0.0)
ROUNDS = shapes.env_int("NOISY_ROUNDS", 2)
NOISY_S = env_float("NOISY_NOISY_S", 30)
LOADGEN_NICE = shapes.env_int("NOISY_LOADGEN_NICE", -10)


PINNED = pin_load_generator(NOISY, os.environ.get("NOISY_PIN_LOADGEN", "1") != "0", LOADGEN_NICE)
print(f"noisy_neighbour: noisy {NOISY['name']}, victim {VICTIM['name']}; {PINNED}", flush=True)


class PhasedImageChatUser(PhasedChatUser):
    """Image chats only (the picture is the class's image_url), named after the phase."""

    abstract = True
    tasks: ClassVar[list] = [TenantUser.image_chat]


IMAGE_SIDE = shapes.env_int("NOISY_IMAGE_SIDE", 0)
if IMAGE_SIDE and not NOISY.get("takes_images"):
    raise SystemExit(f"noisy_neighbour: NOISY_IMAGE_SIDE={IMAGE_SIDE} but {NOISY['name']}'s model takes no images")

# Long generations keep the noisy engine saturated at a few requests per second, so the
# load generator (which shares the host's cores here) adds little noise of its own. With
# NOISY_IMAGE_SIDE the flood is big bodies instead: the gateway, the engine's image
# processor and its vision tower, all of which must stay on the noisy tenant's side.
Noisy = bind(
    PhasedImageChatUser if IMAGE_SIDE else PhasedChatUser,
    NOISY,
    wait_time=constant(0),
    max_tokens=shapes.env_int("NOISY_MAX_TOKENS", 256),
    ignore_eos=True,
    image_url=noise_png(IMAGE_SIDE) if IMAGE_SIDE else None,
)
Victim = bind(
    PhasedChatUser, VICTIM, wait_time=constant_throughput(env_float("VICTIM_RPS", 2.0)), fixed_count=VICTIM_USERS
)


PHASES_PER_ROUND = 3  # settle, solo, noisy: what one_round below holds


class NoisyNeighbourShape(shapes.PhasedShape):
    """NOISY_ROUNDS x (settle, solo: the victim alone; noisy: plus NOISY_USERS on the noisy tenant)."""

    def __init__(self) -> None:
        super().__init__()
        settle, solo = env_float("NOISY_SETTLE_S", 5), env_float("NOISY_SOLO_S", 30)
        self.phases = shapes.victim_rounds(
            ROUNDS, Victim, VICTIM_USERS, settle, solo, "noisy", NOISY_S, Noisy, NOISY_USERS
        )


# Every victim response time, exact (report.Sample: round, phase, milliseconds, failed),
# each victim request's span and each flood request's span (start, end: Unix seconds).
victim_samples: list[Sample] = []
victim_spans: list[tuple[float, float]] = []
flood_spans: list[tuple[float, float]] = []


@events.request.add_listener
def record_victim(name: str, response_time: float, exception: BaseException | None, **kwargs) -> None:
    start = kwargs.get("start_time") or time.time() - response_time / 1000
    if name.startswith(f"{VICTIM['name']} chat ["):
        round_number = shapes.current_phase_index() // PHASES_PER_ROUND + 1
        victim_samples.append((round_number, name.rsplit("[", 1)[1].rstrip("]"), response_time, exception is not None))
        victim_spans.append((start, start + response_time / 1000))
    elif name.startswith(f"{NOISY['name']} "):
        flood_spans.append((start, start + response_time / 1000))


def p95(phase: str, round_number: int | None = None) -> float:
    return phase_p95(victim_samples, phase, round_number)


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    global victim_samples
    victim_samples, overlapped = not_overlapping(victim_samples, victim_spans, flood_spans)
    stats = environment.stats
    flood = merged(stats, f"{NOISY['name']} {'image chat' if IMAGE_SIDE else 'chat'} [noisy]")
    counts = {phase: sum(1 for _, ph, _, _ in victim_samples if ph == phase) for phase in ("solo", "noisy")}
    problems = []
    if not all(counts.values()):
        problems.append(f"victim requests solo={counts['solo']} noisy={counts['noisy']}: a phase is missing")
    if overlapped > counts["solo"]:
        problems.append(
            f"{overlapped} victim solo requests overlapped the flood's last requests, more than the {counts['solo']} "
            "left: the settle phase is too short for them (NOISY_SETTLE_S)"
        )
    ratio = p95_ratio(victim_samples)
    if ratio > MAX_RATIO:
        problems.append(f"victim p95 noisy/solo {ratio:.2f} > {MAX_RATIO}")
    failed = sum(1 for *_, bad in victim_samples if bad)  # settle included: no victim request may fail
    if victim_samples and failed / len(victim_samples) > MAX_FAIL_RATIO:
        problems.append(f"victim fail ratio {failed / len(victim_samples):.3f} > {MAX_FAIL_RATIO}")
    write_tenant_csv(environment, tenant_rows(stats, [NOISY["name"], VICTIM["name"]]))
    prefix = environment.parsed_options.csv_prefix if environment.parsed_options else None
    if prefix:  # every victim request, for a closer look at a ratio (and for run.py --planted)
        write_samples(f"{prefix}_victim.csv", victim_samples)
    rounds = ", ".join(
        f"{p95('solo', r):.0f}/{p95('noisy', r):.0f}" for r in range(1, ROUNDS + 1) if not math.isnan(p95("solo", r))
    )
    enforce(
        environment,
        "noisy_neighbour",
        problems,
        f"victim {VICTIM['name']} p95 solo {p95('solo'):.1f} ms ({counts['solo']} req; {overlapped} more overlapped "
        f"the flood's last requests, not counted), noisy "
        f"{p95('noisy'):.1f} ms ({counts['noisy']} req), ratio {ratio:.2f} (max {MAX_RATIO}); per round solo/noisy "
        f"ms: {rounds}; noisy tenant {NOISY['name']} {flood.num_requests} requests, "
        f"{flood.num_requests / (ROUNDS * NOISY_S):.1f} req/s while flooded, {flood.num_failures} failed",
    )
