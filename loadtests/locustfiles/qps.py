"""Scenario `qps`: throughput and p50/p95/p99 per tenant, with enforced thresholds.

Every present tenant is loaded at once (LOADTEST_TENANTS=companyA loads one alone, which
gives the "2 tenants / 1 tenant" ratio). LOADTEST_SHAPE=steady|step|spike runs one of
the shapes in shapes.py instead of --users/--run-time. Per-tenant p50/p95/p99 and req/s
go to <csv prefix>_tenants.csv, next to Locust's own CSV and HTML report.

Thresholds (environment variables, checked when Locust quits; a miss sets a non-zero
exit code):
  QPS_MAX_FAIL_RATIO   largest share of failed requests (default 0.0)
  QPS_MAX_P95_MS       largest p95 of any tenant's completion/chat, in ms (default 5000)
  QPS_MIN_RPS          smallest aggregate requests/s (default 1.0)
The gateway's rpm_limit applies: to measure the engines rather than the limit, run it
with the limit lifted (loadtests/run.py does that for qps).
"""

from __future__ import annotations

import os

import shapes
from locust import events
from openai_user import tenant_users
from report import enforce, env_float, tenant_rows, write_tenant_csv

USERS = tenant_users()
globals().update(USERS)
if os.environ.get("LOADTEST_SHAPE"):
    Shape = shapes.concrete(shapes.SHAPES[os.environ["LOADTEST_SHAPE"]])

MAX_FAIL_RATIO = env_float("QPS_MAX_FAIL_RATIO", 0.0)
MAX_P95_MS = env_float("QPS_MAX_P95_MS", 5000)
MIN_RPS = env_float("QPS_MIN_RPS", 1.0)


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    stats = environment.stats
    rows = tenant_rows(stats, [user.tenant for user in USERS.values()])
    # Per-tenant rows leave out the TTFT samples, which Locust's own total counts as requests.
    requests = sum(int(row["requests"]) for row in rows)
    failures = sum(int(row["failures"]) for row in rows)
    aggregate_rps = sum(float(row["rps"]) for row in rows)
    fail_ratio = failures / requests if requests else 1.0
    problems = []
    if requests == 0:
        problems.append("no request was made")
    if fail_ratio > MAX_FAIL_RATIO:
        problems.append(f"fail ratio {fail_ratio:.3f} > {MAX_FAIL_RATIO}")
    if aggregate_rps < MIN_RPS:
        problems.append(f"aggregate {aggregate_rps:.2f} req/s < {MIN_RPS}")
    for entry in stats.entries.values():
        if entry.method == "TTFT" or entry.num_requests == 0:
            continue
        p95 = entry.get_response_time_percentile(0.95)
        if p95 > MAX_P95_MS:
            problems.append(f"{entry.name}: p95 {p95:.0f} ms > {MAX_P95_MS:.0f} ms")
    write_tenant_csv(environment, rows)
    enforce(
        environment,
        "qps",
        problems,
        f"{requests} requests, {aggregate_rps:.1f} req/s aggregate over {len(rows)} tenant(s), "
        f"fail ratio {fail_ratio:.3f}",
    )
