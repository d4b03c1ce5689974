"""Scenario `chaos`: a tenant's engine dies mid-load; Docker's restart policy brings it
back, and the other tenant notices nothing.

The engine is killed the way a crash (or the kernel's OOM killer) kills it: SIGKILL to
its main process from the host. `docker kill -s KILL` would not do: Docker marks a
container it was told to kill as manually stopped, and no restart policy restarts it
(checked on Docker 20.10: exited, RestartCount 0; moby daemon/kill.go).

Time to recovery: from the kill to the first 200 for a chat through the tenant's
gateway, with the engine's health check "healthy" again.

Settings and thresholds (environment variables):
  CHAOS_TENANT           tenant whose engine dies (default: the plan's first present tenant)
  CHAOS_KILL_AFTER_S     load before the kill (default 10)
  CHAOS_TAIL_S           load after recovery (default 5)
  CHAOS_MAX_RECOVERY_S   longest acceptable time to recovery (default 120; measured 50-60 s
                         on the 2-core reference machine, see docs/benchmarks.md)
  USAGE_MAX_ERROR        largest relative difference between the usage report and what
                         the clients counted, per tenant and figure (default 0.01)
  USAGE_SETTLE_S         quiet wait before the load and before the report, so the run's
                         window holds its own answers and all of them (default 12: two of
                         the monitoring role's 5 s scrapes and a margin)
Enforced: the other tenant got only 200s, the engine came back by restart (RestartCount
+1, not recreated) within CHAOS_MAX_RECOVERY_S, and what the gateway answered while the
engine was down (probed every 2 s) was OpenAI-style JSON with Retry-After, not HAProxy's
HTML page. The target's own failures during the outage are reported, not counted
against it. And, where the inventory turns monitoring on, the usage report
(playbooks/tenants-usage.yml) over the run, across the kill, against the requests and
prompt and generated tokens the clients counted from every answer's usage field (#16):
  - the other tenant: within USAGE_MAX_ERROR;
  - the killed tenant: never less than the clients counted (nothing served is lost to
    the crash), and more by at most USAGE_MAX_ERROR plus the work that was in flight
    when the engine died. The engine counts a request when it finishes and tokens as it
    processes them; a request it finished, or prefilled, just before the SIGKILL never
    reaches its client. In flight: at most one request per user of that tenant and one
    probe, each at most the largest prompt counted and max_tokens generated, plus one
    more for each request a client gave up on without an answer (a timeout). (Measured:
    exact on 2026-11-30 here; +1 request, +30 prompt and +18 generated tokens in a cold
    CI run the same day.)
The run ends with --stop-timeout (loadtests/run.py): the users' last requests finish
and are counted, instead of being cut off after the engine served them.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import docker
import gevent
import requests
from engine import container_state
from locust import constant_throughput, events
from openai_user import INVENTORY, TenantUser, bind, scenario_tenants
from report import enforce, env_float, merged, tenant_rows, write_tenant_csv
from tenancy_inventory import ROOT, api_key, base_url, run_usage_report

try:
    import yaml
except ImportError:  # the venv has it; a bare Locust install may not
    yaml = None

TARGET, OTHER = scenario_tenants("chaos", "CHAOS_TENANT", None)
KILL_AFTER_S = env_float("CHAOS_KILL_AFTER_S", 10)
TAIL_S = env_float("CHAOS_TAIL_S", 5)
MAX_RECOVERY_S = env_float("CHAOS_MAX_RECOVERY_S", 120)
GIVE_UP_S = max(MAX_RECOVERY_S * 2, 300)
USAGE_MAX_ERROR = env_float("USAGE_MAX_ERROR", 0.01)
USAGE_SETTLE_S = env_float("USAGE_SETTLE_S", 12)
chaos: dict[str, float | int | str] = {}
# What the clients counted from every 200's usage field (Locust's users and the probes).
FIGURES = ("requests", "prompt_tokens", "generation_tokens")
counted: dict[str, dict[str, int]] = {t["name"]: dict.fromkeys(FIGURES, 0) for t in (TARGET, OTHER)}
largest_prompt: dict[str, int] = {}
# Requests a client gave up on without an answer (a timeout, a reset connection): the
# engine may have served them, so each one widens the killed tenant's allowance.
abandoned: dict[str, int] = {t["name"]: 0 for t in (TARGET, OTHER)}


def count_usage(tenant: str, response) -> None:
    try:
        usage = response.json()["usage"]
    except (ValueError, KeyError, TypeError):
        return
    row = counted[tenant]
    row["requests"] += 1
    row["prompt_tokens"] += int(usage["prompt_tokens"])
    largest_prompt[tenant] = max(largest_prompt.get(tenant, 0), int(usage["prompt_tokens"]))
    row["generation_tokens"] += int(usage.get("completion_tokens") or 0)


@events.request.add_listener
def on_request(name, response=None, exception=None, **_kwargs) -> None:
    tenant = name.split(" ", 1)[0]
    if exception is not None and tenant in abandoned and (response is None or not response.status_code):
        abandoned[tenant] += 1
    if exception is None and response is not None and response.status_code == 200 and tenant in counted:
        count_usage(tenant, response)


class ChatUser(TenantUser):
    abstract = True
    tasks: ClassVar[list] = [TenantUser.chat]


# 2 users x 2 req/s per tenant: well below the demo's rpm_limit.
Target = bind(ChatUser, TARGET, wait_time=constant_throughput(2), fixed_count=2)
Other = bind(ChatUser, OTHER, wait_time=constant_throughput(2), fixed_count=2)


def chat_answers(tenant: dict, outage: bool = False) -> bool:
    """One chat through the gateway. During the outage, its error answer is checked and
    counted in chaos (a gateway that answers nothing at all is a problem too). After the
    restart the wait is long: a freshly started engine's first answer can be slow on a
    loaded machine, and an abandoned request is served but never counted by a client."""
    payload = {"model": tenant["served_model_name"], "messages": [{"role": "user", "content": "up?"}], "max_tokens": 2}
    headers = {"Authorization": f"Bearer {api_key(INVENTORY, tenant['name'])}"}
    try:
        response = requests.post(
            f"{base_url(tenant)}/v1/chat/completions", json=payload, headers=headers, timeout=10 if outage else 60
        )
    except requests.RequestException as exc:
        if isinstance(exc, requests.Timeout):
            abandoned[tenant["name"]] += 1
        if outage:
            chaos.setdefault("outage_problems", []).append(f"no answer: {type(exc).__name__}")
        return False
    if response.status_code == 200:
        count_usage(tenant["name"], response)
    if outage and not response.ok:
        chaos["outage_answers"] = int(chaos.get("outage_answers", 0)) + 1
        problem = outage_answer_problem(response)
        if problem:
            chaos.setdefault("outage_problems", []).append(problem)
    return response.ok


def outage_answer_problem(response: requests.Response) -> str | None:
    """What is wrong with an error answer while the engine is down: it must be OpenAI-style
    JSON ({"error": {...}}) and, from the gateway itself (502/503/504), carry Retry-After."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        return f"{status} is not JSON: {response.text[:60]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f"{status} is not an OpenAI-style error: {response.text[:60]!r}"
    if status in (502, 503, 504) and "Retry-After" not in response.headers:
        return f"{status} without Retry-After"
    return None


def crash_and_watch(environment) -> None:
    client = docker.from_env()
    engine = TARGET["names"]["engine"]
    gevent.sleep(KILL_AFTER_S)
    attrs = client.containers.get(engine).attrs
    chaos["restarts_before"] = attrs["RestartCount"]
    killed_at = time.monotonic()
    os.kill(attrs["State"]["Pid"], signal.SIGKILL)
    print(f"chaos: SIGKILL to {engine} (pid {attrs['State']['Pid']})")
    gevent.sleep(1)
    probed_at = 0.0
    while time.monotonic() - killed_at < GIVE_UP_S:
        _status, health, restarts = container_state(engine, client)
        if health == "healthy" and "healthy_s" not in chaos:
            chaos["healthy_s"] = time.monotonic() - killed_at
        if health == "healthy" and chat_answers(TARGET):
            chaos["recovered_s"] = time.monotonic() - killed_at
            chaos["restarts_after"] = restarts
            break
        if health != "healthy" and time.monotonic() - probed_at >= 2:
            probed_at = time.monotonic()
            chat_answers(TARGET, outage=True)  # what a client gets while the engine is down
        gevent.sleep(0.5)
    gevent.sleep(TAIL_S)
    environment.runner.quit()


@events.test_start.add_listener
def start_chaos(environment, **_kwargs) -> None:
    if monitoring_on():
        # The usage report counts from the last scrape before the start: wait until every
        # answer sent before this run (an earlier scenario's) has been scraped, so none
        # lands in this run's window. test_start runs before Locust spawns the users.
        gevent.sleep(USAGE_SETTLE_S)
    chaos["started_at"] = time.time()
    gevent.spawn(crash_and_watch, environment)


def monitoring_on() -> bool:
    """Whether the inventory turns monitoring on (the usage report needs Prometheus)."""
    if yaml is None:
        return False
    for path in sorted((ROOT / INVENTORY / "group_vars" / "all").glob("*.yml")):
        if (yaml.safe_load(path.read_text()) or {}).get("tenancy_monitoring"):
            return True
    return False


def usage_problems() -> tuple[list[str], str]:
    """The usage report over the whole run against what the clients counted."""
    time.sleep(USAGE_SETTLE_S)
    end = time.time()
    output = Path(tempfile.mkdtemp(prefix="chaos-usage-")) / "usage.json"
    result = run_usage_report(INVENTORY, float(chaos["started_at"]), end, output)
    if result.returncode != 0:
        return [f"tenants-usage.yml failed: {result.stdout[-600:]}"], ""
    rows = {row["tenant"]: row for row in json.loads(output.read_text())["rows"]}
    # What the killed tenant's engine may have done for answers that never arrived.
    in_flight = Target.fixed_count + 1 + abandoned[TARGET["name"]]
    allowance = {
        "requests": in_flight,
        "prompt_tokens": in_flight * largest_prompt.get(TARGET["name"], 0),
        "generation_tokens": in_flight * max(ChatUser.max_tokens, 2),
    }
    problems, seen = [], []
    for name, want in counted.items():
        got = {figure: int(rows.get(name, {}).get(figure, 0)) for figure in FIGURES}
        seen.append(f"{name} report {got} / clients {want}")
        for figure in FIGURES:
            slack = USAGE_MAX_ERROR * max(want[figure], 1)
            if name == TARGET["name"]:
                low, high = want[figure], want[figure] + slack + allowance[figure]
            else:
                low, high = want[figure] - slack, want[figure] + slack
            if not low <= got[figure] <= high:
                problems.append(
                    f"usage of {name}: {figure} {got[figure]} in the report, {want[figure]} counted "
                    f"(allowed {low:.0f}-{high:.0f})"
                )
    return problems, (
        "; usage across the kill: "
        + "; ".join(seen)
        + f" (in flight at the kill, or abandoned by a client ({abandoned[TARGET['name']]}): up to {allowance})"
    )


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    problems = []
    other = merged(environment.stats, f"{OTHER['name']} ")
    target = merged(environment.stats, f"{TARGET['name']} ")
    if other.num_requests == 0 or other.num_failures:
        problems.append(f"other tenant {OTHER['name']}: {other.num_failures} of {other.num_requests} requests failed")
    recovered = chaos.get("recovered_s")
    if "restarts_before" not in chaos:
        problems.append("the engine was never killed (run time too short?)")
    elif recovered is None:
        problems.append(f"{TARGET['name']} did not recover within {GIVE_UP_S:.0f} s")
    else:
        if float(recovered) > MAX_RECOVERY_S:
            problems.append(f"recovery took {float(recovered):.1f} s > {MAX_RECOVERY_S:.0f} s")
        if chaos["restarts_after"] != int(chaos["restarts_before"]) + 1:
            problems.append(f"RestartCount {chaos['restarts_before']} -> {chaos['restarts_after']}: not one restart")
    outage_problems = list(chaos.get("outage_problems", []))
    if "restarts_before" in chaos and not chaos.get("outage_answers") and not outage_problems:
        problems.append("no error answer was seen while the engine was down (nothing probed)")
    if outage_problems:
        problems.append(f"answers while the engine was down: {sorted(set(outage_problems))[:5]}")
    usage_seen = ""
    if monitoring_on() and "restarts_before" in chaos:
        found, usage_seen = usage_problems()
        problems += found
    write_tenant_csv(environment, tenant_rows(environment.stats, [TARGET["name"], OTHER["name"]]))
    enforce(
        environment,
        "chaos",
        problems,
        f"{TARGET['name']} engine killed; healthy again after {float(chaos.get('healthy_s', -1)):.1f} s, "
        f"first 200 after {float(chaos.get('recovered_s', -1)):.1f} s (max {MAX_RECOVERY_S:.0f} s); "
        f"{TARGET['name']}: {target.num_failures} of {target.num_requests} failed during the outage; "
        f"{int(chaos.get('outage_answers', 0))} error answer(s) probed, all JSON with Retry-After "
        f"unless listed; "
        f"{OTHER['name']}: {other.num_failures} of {other.num_requests} failed{usage_seen}",
    )
