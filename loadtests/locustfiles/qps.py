"""Scenario `qps`: throughput and p50/p95/p99 per tenant, with enforced thresholds.

Thresholds (environment variables, checked when Locust quits; a miss sets a non-zero
exit code):
  QPS_MAX_FAIL_RATIO   largest share of failed requests (default 0.0)
  QPS_MAX_P95_MS       largest p95 of any tenant's completion/chat, in ms (default 5000)
  QPS_MIN_RPS          smallest aggregate requests/s (default 1.0)
"""

from __future__ import annotations

import os

from locust import events
from openai_user import tenant_users

globals().update(tenant_users())

MAX_FAIL_RATIO = float(os.environ.get("QPS_MAX_FAIL_RATIO", "0.0"))
MAX_P95_MS = float(os.environ.get("QPS_MAX_P95_MS", "5000"))
MIN_RPS = float(os.environ.get("QPS_MIN_RPS", "1.0"))


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    stats = environment.stats
    problems = []
    if stats.total.num_requests == 0:
        problems.append("no request was made")
    if stats.total.fail_ratio > MAX_FAIL_RATIO:
        problems.append(f"fail ratio {stats.total.fail_ratio:.3f} > {MAX_FAIL_RATIO}")
    if stats.total.total_rps < MIN_RPS:
        problems.append(f"aggregate {stats.total.total_rps:.2f} req/s < {MIN_RPS}")
    for entry in stats.entries.values():
        if entry.method == "TTFT" or entry.num_requests == 0:
            continue
        p95 = entry.get_response_time_percentile(0.95)
        if p95 > MAX_P95_MS:
            problems.append(f"{entry.name}: p95 {p95:.0f} ms > {MAX_P95_MS:.0f} ms")
    for problem in problems:
        print(f"THRESHOLD FAILED: {problem}")
    if problems:
        environment.process_exit_code = 1
    else:
        print(
            f"thresholds held: {stats.total.num_requests} requests, {stats.total.total_rps:.1f} req/s, "
            f"fail ratio {stats.total.fail_ratio:.3f}"
        )
