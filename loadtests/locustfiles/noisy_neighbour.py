"""Scenario `noisy_neighbour`: does a saturated tenant slow another one down?

Two phases in one run (shapes.PhasedShape):
  solo  - only the victim tenant runs, at a modest paced rate: its baseline p95;
  noisy - the victim keeps its rate while the noisy tenant is flooded by many users
          with no wait time, each generating NOISY_MAX_TOKENS tokens.
The victim's requests are named "<tenant> chat [solo]" / "[noisy]", so Locust's CSV
holds both p95s. On a CPU host the isolation comes from the planner's disjoint cpusets;
see loadtests/README.md for what holds on a GPU.

Settings and thresholds (environment variables, checked when Locust quits):
  NOISY_TENANT / VICTIM_TENANT  default: the plan's first / second present tenant
  NOISY_USERS                   users flooding the noisy tenant (default 16)
  NOISY_MAX_TOKENS              tokens each noisy request generates (default 256, ignore_eos)
  VICTIM_USERS                  victim users (default 2), each at VICTIM_RPS req/s (default 2)
  NOISY_SOLO_S / NOISY_NOISY_S  phase lengths in seconds (default 30 / 30)
  NOISY_MAX_RATIO               largest victim p95 noisy / solo (default 1.25)
  NOISY_MAX_FAIL_RATIO          largest share of failed victim requests (default 0.0)
"""

from __future__ import annotations

import os
from typing import ClassVar

import shapes
from locust import constant, constant_throughput, events
from openai_user import TenantUser, bind, present_tenants
from report import enforce, env_float, merged, rate, tenant_rows, write_tenant_csv

TENANTS = {t["name"]: t for t in present_tenants()}
if len(TENANTS) < 2:
    raise SystemExit("noisy_neighbour needs two present tenants")
NOISY = TENANTS[os.environ.get("NOISY_TENANT", next(iter(TENANTS)))]
VICTIM = TENANTS[os.environ.get("VICTIM_TENANT", next(n for n in TENANTS if n != NOISY["name"]))]
NOISY_USERS = shapes.env_int("NOISY_USERS", 16)
VICTIM_USERS = shapes.env_int("VICTIM_USERS", 2)
MAX_RATIO = env_float("NOISY_MAX_RATIO", 1.25)
MAX_FAIL_RATIO = env_float("NOISY_MAX_FAIL_RATIO", 0.0)


class PhasedChatUser(TenantUser):
    """Chats only, each request named after the phase it was sent in."""

    abstract = True
    tasks: ClassVar[list] = [TenantUser.chat]

    def request_name(self, kind: str) -> str:
        return f"{self.tenant} {kind} [{shapes.current_phase()}]"


# Long generations keep the noisy engine saturated at a few requests per second, so the
# load generator (which shares the host's cores here) adds little noise of its own.
Noisy = bind(
    PhasedChatUser, NOISY, wait_time=constant(0), max_tokens=shapes.env_int("NOISY_MAX_TOKENS", 256), ignore_eos=True
)
Victim = bind(
    PhasedChatUser, VICTIM, wait_time=constant_throughput(env_float("VICTIM_RPS", 2.0)), fixed_count=VICTIM_USERS
)


class NoisyNeighbourShape(shapes.PhasedShape):
    """solo: the victim alone; noisy: the victim plus NOISY_USERS users on the noisy tenant."""

    def __init__(self) -> None:
        super().__init__()
        self.phases = (
            shapes.Phase("solo", env_float("NOISY_SOLO_S", 30), VICTIM_USERS, [Victim]),
            shapes.Phase("noisy", env_float("NOISY_NOISY_S", 30), VICTIM_USERS + NOISY_USERS, [Victim, Noisy]),
        )


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    stats = environment.stats
    solo = merged(stats, f"{VICTIM['name']} chat [solo]")
    noisy = merged(stats, f"{VICTIM['name']} chat [noisy]")
    flood = merged(stats, f"{NOISY['name']} chat [noisy]")
    problems = []
    if solo.num_requests == 0 or noisy.num_requests == 0:
        problems.append(f"victim requests solo={solo.num_requests} noisy={noisy.num_requests}: a phase is missing")
        ratio = float("inf")
    else:
        ratio = noisy.get_response_time_percentile(0.95) / max(solo.get_response_time_percentile(0.95), 1)
    if ratio > MAX_RATIO:
        problems.append(f"victim p95 noisy/solo {ratio:.2f} > {MAX_RATIO}")
    victim = merged(stats, f"{VICTIM['name']} ")
    if victim.fail_ratio > MAX_FAIL_RATIO:
        problems.append(f"victim fail ratio {victim.fail_ratio:.3f} > {MAX_FAIL_RATIO}")
    write_tenant_csv(environment, tenant_rows(stats, [NOISY["name"], VICTIM["name"]]))
    enforce(
        environment,
        "noisy_neighbour",
        problems,
        f"victim {VICTIM['name']} p95 solo {solo.get_response_time_percentile(0.95):.0f} ms "
        f"({solo.num_requests} req), noisy {noisy.get_response_time_percentile(0.95):.0f} ms "
        f"({noisy.num_requests} req), ratio {ratio:.2f} (max {MAX_RATIO}); noisy tenant {NOISY['name']} "
        f"{flood.num_requests} requests at {rate(flood):.1f} req/s, {flood.num_failures} failed",
    )
