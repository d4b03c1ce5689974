"""Scenario `rate_limit`: drive one tenant above its rpm_limit and check that the gateway
lets through rpm_limit requests per minute (within RATE_TOLERANCE) and that the engine
saw only those.

How the gateway counts (roles/tenant/templates/haproxy.cfg.j2): gpc0_rate(60s) counts
only requests it let through, and HAProxy's rate is curr + prev * (1 - elapsed/60 s)
over fixed 60 s periods. So the period in which the overload begins lets through
whatever is left of the limit, possibly less than rpm_limit if the overload began late
in it; the next period makes up for that with a burst at its start; from the period
after that on, every period lets through exactly rpm_limit, spread evenly. The check
therefore looks only at 60 s windows that start at least 120 s after the overload began:
each must hold rpm_limit accepted requests, +-RATE_TOLERANCE. That needs a run of at
least 180 s (the short version runs 185 s), and it holds whatever the counter held
before the run. (A first version started the windows at 60 s: a simulation of HAProxy's
counter and a real run both showed windows 5-12 % low there.)

The engine side: vllm:request_success_total (read from inside the gateway, as
tenants-list does) must grow by exactly the number of 200s the clients got.

Settings and thresholds (environment variables):
  RATE_TENANT          tenant to drive (default: the plan's first present tenant)
  RATE_DEMAND_FACTOR   demand as a multiple of rpm_limit (default 2.0)
  RATE_USERS           users sharing that demand (default 4)
  RATE_TOLERANCE       allowed relative deviation per window (default 0.05)
  RATE_ENGINE_SLACK    allowed difference engine count - accepted (default 0)
Run it with --stop-timeout (loadtests/run.py does), so no request is cut off
between the gateway and the engine when the run ends.
"""

from __future__ import annotations

import json
import os
import time
from typing import ClassVar

from engine import requests_served
from locust import constant_throughput, events
from openai_user import TenantUser, bind, scenario_tenants
from report import enforce, env_float
from windows import window_counts

(TENANT,) = scenario_tenants("rate_limit", "RATE_TENANT")
LIMIT = TENANT["rpm_limit"]
DEMAND_RPS = env_float("RATE_DEMAND_FACTOR", 2.0) * LIMIT / 60
USERS = int(os.environ.get("RATE_USERS", "4"))
TOLERANCE = env_float("RATE_TOLERANCE", 0.05)
ENGINE_SLACK = env_float("RATE_ENGINE_SLACK", 0)
# Two counter periods: see the docstring.
WARMUP_S = 120
# Above this the limit cannot be driven from one Locust process on a small machine.
DRIVABLE_RPS = 200

answers: list[tuple[float, int]] = []
engine_before: dict[str, float] = {}


class RateUser(TenantUser):
    """One-token completions; 429 is an expected answer here, anything else but 200 fails."""

    abstract = True

    def send(self) -> None:
        payload = {"model": self.model, "prompt": "Hi", "max_tokens": 1}
        # The gateway decides when a request arrives: record the send time.
        sent = time.monotonic()
        answers.append((sent, self._post("completion", "/v1/completions", payload, expect=200)))

    def _post(self, kind: str, path: str, payload: dict, expect: int = 200) -> int:
        with self.client.post(
            path, data=json.dumps(payload), headers=self.headers, name=self.request_name(kind), catch_response=True
        ) as response:
            if response.status_code == 429:
                response.success()
            elif response.status_code != expect:
                response.failure(f"{kind}: expected 200 or 429, got {response.status_code}: {response.text[:200]}")
            return response.status_code

    tasks: ClassVar[list] = [send]


Driver = bind(RateUser, TENANT, wait_time=constant_throughput(DEMAND_RPS / USERS))


@events.test_start.add_listener
def read_engine_before(environment, **_kwargs) -> None:
    engine_before["served"] = requests_served(TENANT)


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    problems = []
    if LIMIT / 60 > DRIVABLE_RPS:
        problems.append(f"rpm_limit {LIMIT} of {TENANT['name']} is too high to drive above; use the inventory's limit")
    if not answers:
        enforce(environment, "rate_limit", [*problems, "no request was made"], "nothing")
        return
    first, last = min(t for t, _ in answers), max(t for t, _ in answers)
    accepted = [t for t, status in answers if status == 200]
    limited = sum(1 for _, status in answers if status == 429)
    counts = window_counts(accepted, first + WARMUP_S, last)
    if not counts:
        problems.append(f"the overload lasted {last - first:.0f} s; the check needs at least {WARMUP_S + 60} s")
    low, high = LIMIT * (1 - TOLERANCE), LIMIT * (1 + TOLERANCE)
    outside = [c for c in counts if not low <= c <= high]
    if outside:
        problems.append(f"{len(outside)} of {len(counts)} windows outside [{low:.0f}, {high:.0f}]: {outside[:5]}")
    served = requests_served(TENANT) - engine_before["served"]
    if abs(served - len(accepted)) > ENGINE_SLACK:
        problems.append(f"the engine served {served:.0f} requests, the gateway let through {len(accepted)}")
    offered = len(answers) / max(last - first, 1)
    expected_share = max(0.0, 1 - LIMIT / 60 / offered)
    enforce(
        environment,
        "rate_limit",
        problems,
        f"{TENANT['name']} rpm_limit {LIMIT}: {len(answers)} requests in {last - first:.0f} s "
        f"({offered:.1f} req/s offered), {len(accepted)} accepted, {limited} got 429 "
        f"(share {limited / len(answers):.3f}; steady-state expectation {expected_share:.3f}); "
        f"accepted per 60 s window from {WARMUP_S} s on: min {min(counts, default=0)} max {max(counts, default=0)} "
        f"(limit {LIMIT}, +-{TOLERANCE:.0%}); engine served {served:.0f}",
    )
