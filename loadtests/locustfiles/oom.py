"""Scenario `oom`: requests beyond a tenant's limits are refused cleanly, and a pile of
long requests queues instead of failing, without touching the other tenant.

Users (the target is the plan's first present tenant, OOM_TENANT to change it):
  probe     - one user cycling through requests that must be refused:
              a prompt longer than max_model_len   -> 400 with vLLM's "maximum context length"
              max_tokens above max_model_len        -> 400 (vLLM caps max_tokens there)
              a body above max_body_size            -> 413 from the gateway
  long      - every other user (run with --users 27: 24 long users, above max_num_seqs) each generating
              max_model_len - 64 tokens (ignore_eos): they must all finish with 200
  bystander - the other tenant at a modest rate: no failure, p95 under a threshold

Thresholds (environment variables, checked when Locust quits):
  OOM_BYSTANDER_MAX_P95_MS   largest bystander p95 in ms (default 2000)
  OOM_MAX_LONG_FAIL_RATIO    largest share of failed long requests (default 0.0)
Also enforced: every probe got its expected answer at least once and never anything
else, and the target engine neither restarted nor was OOM-killed.
"""

from __future__ import annotations

import json
import time
from typing import ClassVar

import docker
from engine import container_state
from gateway_probe import post_refused_early
from locust import constant, constant_throughput, events
from openai_user import TenantUser, bind, scenario_tenants
from report import enforce, env_float, merged, tenant_rows, write_tenant_csv

TARGET, BYSTANDER = scenario_tenants("oom", "OOM_TENANT", None)
MAX_P95_MS = env_float("OOM_BYSTANDER_MAX_P95_MS", 2000)
MAX_LONG_FAIL_RATIO = env_float("OOM_MAX_LONG_FAIL_RATIO", 0.0)
PROBES = ("prompt over max_model_len", "max_tokens over cap", "body over max_body_size")
engine_before: dict[str, object] = {}
server_errors = {"count": 0}


class ProbeUser(TenantUser):
    """Sends each request that must be refused, checks the status and the message."""

    abstract = True
    wait_time = constant(1)

    def refused(self, probe: str, body: bytes, status: int, says: str) -> None:
        with self.client.post(
            "/v1/chat/completions",
            data=body,
            headers=self.headers,
            name=f"{self.tenant} probe {probe}",
            catch_response=True,
        ) as response:
            if response.status_code != status or says.lower() not in response.text.lower():
                response.failure(
                    f"{probe}: expected {status} saying {says!r}, got {response.status_code}: {response.text[:200]}"
                )
            else:
                response.success()

    def probes(self) -> None:
        limit = TARGET["max_model_len"]
        long_prompt = " ".join(str(n) for n in range(2 * limit))
        self.refused(PROBES[0], json.dumps(self.chat_payload(long_prompt)).encode(), 400, "context length")
        over_cap = {**self.chat_payload(), "max_tokens": limit + 1}
        self.refused(PROBES[1], json.dumps(over_cap).encode(), 400, "max_tokens")
        huge = b'{"x": "' + b"x" * TARGET["max_body_size"] + b'"}'
        self.refused_early(PROBES[2], huge, 413, "larger than")

    def refused_early(self, probe: str, body: bytes, status: int, says: str) -> None:
        """A body the gateway refuses on its first buffer, uploaded as a careful client
        does (gateway_probe.post_refused_early: over TLS, a client that writes on after the
        gateway's 413 and close gets an EOF instead of the answer)."""
        started, error = time.perf_counter(), None
        try:
            got, text = post_refused_early(f"{self.host}/v1/chat/completions", self.headers, body)
            if got != status or says.lower() not in text.decode(errors="replace").lower():
                error = AssertionError(f"{probe}: expected {status} saying {says!r}, got {got}: {text[:200]!r}")
        except OSError as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="POST",
            name=f"{self.tenant} probe {probe}",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(body),
            exception=error,
            context={},
        )

    tasks: ClassVar[list] = [probes]


class LongUser(TenantUser):
    """Generates up to the context limit; must finish with 200 however many queue."""

    abstract = True
    wait_time = constant(0)

    def long_generation(self) -> None:
        payload = {**self.chat_payload("Tell a long story"), "max_tokens": TARGET["max_model_len"] - 64}
        if self._post("long", "/v1/chat/completions", {**payload, "ignore_eos": True}) >= 500:
            server_errors["count"] += 1

    tasks: ClassVar[list] = [long_generation]


class BystanderUser(TenantUser):
    abstract = True
    tasks: ClassVar[list] = [TenantUser.chat]


Probe = bind(ProbeUser, TARGET, fixed_count=1)
Long = bind(LongUser, TARGET)
Bystander = bind(BystanderUser, BYSTANDER, wait_time=constant_throughput(2), fixed_count=2)


@events.test_start.add_listener
def remember_engine(environment, **_kwargs) -> None:
    engine_before["restarts"] = container_state(TARGET["names"]["engine"])[2]


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    stats = environment.stats
    problems = []
    for probe in PROBES:
        entry = merged(stats, f"{TARGET['name']} probe {probe}")
        if entry.num_requests == 0 or entry.num_failures:
            problems.append(f"probe {probe}: {entry.num_failures} of {entry.num_requests} got the wrong answer")
    long = merged(stats, f"{TARGET['name']} long")
    if long.num_requests == 0 or long.fail_ratio > MAX_LONG_FAIL_RATIO:
        problems.append(f"long requests: {long.num_failures} of {long.num_requests} failed")
    if server_errors["count"]:
        problems.append(f"{server_errors['count']} long requests to {TARGET['name']} got a 5xx")
    bystander = merged(stats, f"{BYSTANDER['name']} ")
    p95 = bystander.get_response_time_percentile(0.95) or 0
    if bystander.num_requests == 0 or bystander.num_failures:
        problems.append(f"bystander {BYSTANDER['name']}: {bystander.num_failures} of {bystander.num_requests} failed")
    if p95 > MAX_P95_MS:
        problems.append(f"bystander {BYSTANDER['name']}: p95 {p95:.0f} ms > {MAX_P95_MS:.0f} ms")
    status, _health, restarts = container_state(TARGET["names"]["engine"])
    oom_killed = docker.from_env().containers.get(TARGET["names"]["engine"]).attrs["State"]["OOMKilled"]
    if restarts != engine_before["restarts"] or status != "running" or oom_killed:
        problems.append(f"engine {status}, restarts {engine_before['restarts']} -> {restarts}, OOMKilled {oom_killed}")
    write_tenant_csv(environment, tenant_rows(stats, [TARGET["name"], BYSTANDER["name"]]))
    enforce(
        environment,
        "oom",
        problems,
        f"long requests {long.num_requests} ({long.num_failures} failed, "
        f"p95 {long.get_response_time_percentile(0.95):.0f} ms); "
        f"bystander {bystander.num_requests} requests, p95 {p95:.0f} ms; engine restarts {restarts}",
    )
