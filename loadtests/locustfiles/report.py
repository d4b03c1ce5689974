"""Per-tenant numbers and threshold enforcement shared by the scenarios.

Locust's own CSV (--csv) has percentiles per request name; `write_tenant_csv` adds one
row per tenant (all its request names merged) to <csv prefix>_tenants.csv, which is
what docs/benchmarks.md quotes.
"""

from __future__ import annotations

import bisect
import csv
import math
import os
import random
from collections.abc import Iterable
from pathlib import Path

from locust.env import Environment
from locust.stats import RequestStats, StatsEntry

PERCENTILES = (0.5, 0.95, 0.99)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


def cpuset_cores(cpuset: str) -> set[int]:
    """The cores of a cpuset written the way Docker's --cpuset-cpus reads it: "0-3,6"."""
    cores: set[int] = set()
    for part in cpuset.split(","):
        first, _, last = part.strip().partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


def pin_load_generator(tenant: dict, pin: bool, nice: int) -> str:
    """Move this process onto `tenant`'s cores (its cpuset in the plan) at priority
    `nice`; say what was done. The scenarios that load one tenant and time another run
    Locust on the loaded tenant's cores: its CPU is charged to that side, and at a higher
    priority it is woken at once when a victim's response arrives, so it times the
    victim, not the scheduler's queue on the loaded core."""
    if not pin:
        return "Locust is not pinned"
    if not tenant.get("cpuset"):
        return f"{tenant['name']} has no cpuset in the plan: Locust is not pinned"
    os.sched_setaffinity(0, cpuset_cores(tenant["cpuset"]))
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        priority = f"nice {nice}"
    except PermissionError:
        priority = f"nice {os.getpriority(os.PRIO_PROCESS, 0)} (raising it needs root)"
    return f"Locust pinned to {tenant['name']}'s cpuset {tenant['cpuset']}, {priority}"


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile of the values, exact (Locust's own rounds response
    times above 100 ms to 10 ms buckets, which is a 10 % step at 100 ms)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


# One request of a phased scenario: (round, phase, response time in ms, failed).
Sample = tuple[int, str, float, bool]


def phase_p95(samples: Iterable[Sample], phase: str, round_number: int | None = None) -> float:
    """Exact p95 of a phase's response times (of one round, or all); NaN when it has none."""
    values = [ms for r, ph, ms, _ in samples if ph == phase and round_number in (None, r)]
    return percentile(values, 0.95) if values else float("nan")


def not_overlapping(
    samples: list[Sample],
    spans: list[tuple[float, float]],
    load: list[tuple[float, float]],
    phase: str = "solo",
    into: str = "settle",
) -> tuple[list[Sample], int]:
    """The samples with each `phase` sample whose own span (start, end; seconds) overlaps
    a span of the load relabelled `into` (not counted), and how many were. A baseline
    phase is the victim alone: a flood request that was still being served when it began
    (the flood's last requests finish after their phase ends) makes it no baseline. Left
    in, such samples raise the baseline exactly when the load reaches the victim, and so
    hide the slowdown the comparison looks for."""
    ordered = sorted(load)
    starts = [a for a, _ in ordered]
    # Each load span's latest end among those starting no later than it (for bisection).
    latest_end: list[float] = []
    for _, end in ordered:
        latest_end.append(max(end, latest_end[-1]) if latest_end else end)
    out, moved = [], 0
    for sample, (begin, end) in zip(samples, spans, strict=True):
        index = bisect.bisect_left(starts, end) - 1  # load spans that started before this sample ended
        if sample[1] == phase and index >= 0 and latest_end[index] > begin:
            out.append((sample[0], into, sample[2], sample[3]))
            moved += 1
        else:
            out.append(sample)
    return out, moved


def p95_ratio(samples: list[Sample], numerator: str = "noisy", denominator: str = "solo") -> float:
    """p95 of one phase over another's (noisy_neighbour's threshold); inf when either is empty."""
    if not all(any(ph == phase for _, ph, _, _ in samples) for phase in (numerator, denominator)):
        return float("inf")
    return phase_p95(samples, numerator) / max(phase_p95(samples, denominator), 1.0)


def p95_ratio_interval(
    samples: list[Sample], numerator: str, denominator: str, confidence: float = 0.9, draws: int = 2000
) -> tuple[float, float]:
    """The central `confidence` interval of p95_ratio(numerator, denominator) by a block
    bootstrap: each phase's rounds (one block of requests each) drawn again with
    replacement, `draws` times (seeded: the same samples give the same interval).
    Rounds, not single requests, are drawn because a victim's slow requests come in
    bursts (a hiccup of the machine slows the few requests of that moment); drawing
    requests one by one would pretend they were independent and give too narrow an
    interval. (inf, inf) when a phase has no requests."""
    blocks: dict[str, list[list[float]]] = {}
    for phase in (numerator, denominator):
        rounds: dict[int, list[float]] = {}
        for round_number, ph, ms, _ in samples:
            if ph == phase:
                rounds.setdefault(round_number, []).append(ms)
        blocks[phase] = list(rounds.values())
    if not all(blocks.values()):
        return float("inf"), float("inf")
    rng = random.Random(0)

    def p95_of_draw(phase: str) -> float:
        chosen = rng.choices(blocks[phase], k=len(blocks[phase]))
        return percentile([ms for block in chosen for ms in block], 0.95)

    ratios = sorted(p95_of_draw(numerator) / max(p95_of_draw(denominator), 1.0) for _ in range(draws))
    tail = (1 - confidence) / 2
    return ratios[int(tail * draws)], ratios[min(int((1 - tail) * draws), draws - 1)]


def ratio_gate(
    samples: list[Sample], numerator: str, denominator: str, gate: str, limit: float, label: str
) -> str | None:
    """One p95-ratio threshold: with gate "estimate" the ratio itself must be at most
    `limit`; with "interval" the lower end of its 90 % interval must be (a detector of
    clear breaks for runs too short to estimate the ratio). The problem, or None."""
    estimate = p95_ratio(samples, numerator, denominator)
    if gate == "estimate":
        return f"{label} p95 {numerator} / {denominator} {estimate:.2f} > {limit}" if estimate > limit else None
    low, high = p95_ratio_interval(samples, numerator, denominator)
    if low > limit:
        return (
            f"{label} p95 {numerator} / {denominator} {estimate:.2f}, "
            f"90 % interval {low:.2f}-{high:.2f}: all above {limit}"
        )
    return None


def write_samples(path: str | Path, samples: Iterable[Sample]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["round", "phase", "response_time_ms", "failed"])
        writer.writerows(samples)


def read_samples(path: str | Path) -> list[Sample]:
    """What write_samples wrote, typed again."""
    with open(path, newline="") as handle:
        return [
            (int(r["round"]), r["phase"], float(r["response_time_ms"]), r["failed"] == "True")
            for r in csv.DictReader(handle)
        ]


def merged(stats: RequestStats, prefix: str, exclude_method: str = "TTFT") -> StatsEntry:
    """All request entries whose name starts with `prefix`, as one entry."""
    total = StatsEntry(stats, prefix, "", use_response_times_cache=False)
    for entry in stats.entries.values():
        if entry.name.startswith(prefix) and entry.method != exclude_method:
            total.extend(entry)
    return total


def rate(entry: StatsEntry) -> float:
    """Requests per second over the entry's own span (first to last request), so a phase
    that ran for part of the test is not diluted by the rest of it."""
    span = (entry.last_request_timestamp or 0) - (entry.start_time or 0)
    return entry.num_requests / span if span > 0 else 0.0


def tenant_rows(stats: RequestStats, tenants: Iterable[str]) -> list[dict[str, object]]:
    rows = []
    for tenant in tenants:
        entry = merged(stats, f"{tenant} ")
        rows.append(
            {
                "tenant": tenant,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": round(rate(entry), 2),
                **{f"p{int(p * 100)}_ms": round(entry.get_response_time_percentile(p) or 0) for p in PERCENTILES},
            }
        )
    return rows


def write_tenant_csv(environment: Environment, rows: list[dict[str, object]]) -> None:
    """Print the rows and write them beside Locust's own CSV files (when --csv is set)."""
    for row in rows:
        print("  ".join(f"{key}={value}" for key, value in row.items()))
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or not rows:
        return
    path = Path(f"{prefix}_tenants.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"per-tenant numbers: {path}")


def enforce(environment: Environment, scenario: str, problems: list[str], measured: str) -> None:
    """Print what was measured; any problem sets a non-zero exit code. The verdict is
    also written beside the CSV reports (<prefix>_verdict.txt), so loadtests/run.py can
    repeat it under its summary table: the last lines a CI log shows."""
    print(f"{scenario}: {measured}")
    for problem in problems:
        print(f"THRESHOLD FAILED: {scenario}: {problem}")
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        lines = [f"THRESHOLD FAILED: {problem}" for problem in problems] or ["thresholds held"]
        Path(f"{prefix}_verdict.txt").write_text("\n".join([*lines, f"measured: {measured}"]) + "\n")
    if problems:
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0
        print(f"thresholds held: {scenario}")
