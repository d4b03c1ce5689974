"""Per-tenant usage over a time range, exact across engine restarts, from the raw
samples of each host's Prometheus (playbooks/tenants-usage.yml).

Also the metering code the other metering filters import (tenancy_scrape_targets,
tenancy_usage_range, tenancy_usage_render): which series make up a tenant's usage,
and exact counter increases. Tested in tests/unit/test_metering.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.module_utils.usage_fold import CounterFold, change_points
from ansible_collections.tenancy.core.plugins.plugin_utils.usage import (
    CHART_SOURCE_POINTS,
    MARKED_COLUMNS,
    RESTARTS_COLUMN,
    USAGE_SERIES,
)

DOCUMENTATION = r"""
name: tenancy_usage
short_description: Per-tenant usage over a time range, exact across engine restarts
version_added: "0.1.0"
description:
  - Sums, per tenant and host, the increase of each usage series over the range from
    the raw samples Prometheus stored over C(tenancy_usage_range)'s range (read by the
    C(tenancy_usage_samples) module), not PromQL's extrapolating C(increase()).
  - A counter that goes down was reset (its engine restarted), so its new value is all
    new usage. A series with no sample at or before C(start) starts from 0.
  - Columns - C(requests) (requests the engine served), C(prompt_tokens),
    C(generation_tokens), C(tokens) (both), C(refused_4xx) (answered 4xx by the gateway
    or the engine), of those C(unauthorized) (401, a missing or unknown key),
    C(too_large) (413, a body above max_body_size) and C(rate_limited) (429, above the
    tenant's rpm_limit),
    C(failed_5xx), and C(share) (of all tenants' tokens).
  - Anything malformed raises C(AnsibleFilterError).
positional: _input, start, end
options:
  _input:
    description:
      - A list of the series the C(tenancy_usage_samples) module folded on each host
        (C({column, metric, total, running}), as tenants-usage.yml collects them; the
        module fails on a query Prometheus did not answer); or of C({column, result}),
        C(result) being a Prometheus range-vector answer's C(data.result), which this
        filter folds itself (the unit tests' reference for the module's folding).
    type: list
    elements: dict
    required: true
  start:
    description: Start of the range, a Unix time.
    type: float
    required: true
  end:
    description: End of the range, a Unix time.
    type: float
    required: true
"""

EXAMPLES = r"""
- name: Sum the usage
  ansible.builtin.set_fact:
    usage: "{{ answers | tenancy_usage(range.start, range.end) }}"
"""

RETURN = r"""
_value:
  description: The report.
  type: dict
  contains:
    rows: {description: One row per tenant and host, type: list, elements: dict}
    totals: {description: The sum of each column, type: dict}
    series: {description: Per tenant, its running token total at each sample, for the chart, type: dict}
    start: {description: Start of the range, type: float}
    end: {description: End of the range, type: float}
"""


def exact_increase(
    samples: Sequence[tuple[float, float]],
    start: float,
    end: float | None = None,
    restarts: Sequence[tuple[float, float]] = (),
) -> tuple[float, list[tuple[float, float]]]:
    """The exact increase of one counter series after ``start`` (up to ``end``), and its
    running total where it grew (module_utils.usage_fold.CounterFold, which says how)."""
    fold = CounterFold(start, end, CHART_SOURCE_POINTS, restarts)
    fold.feed(samples)
    return fold.total, fold.running


def series_samples(result: Mapping[str, Any]) -> list[tuple[float, float]]:
    """One series of a Prometheus range-vector answer as (time, value) pairs."""
    return [(float(t), float(v)) for t, v in result.get("values", [])]


def tenant_of(labels: Mapping[str, Any]) -> tuple[str, str]:
    """(tenant, host) of a series; a series without them is not ours."""
    tenant, host = labels.get("tenant"), labels.get("host")
    if not tenant or not host:
        raise AnsibleFilterError(f"usage report: a series has no tenant or host label: {dict(labels)!r}")
    return str(tenant), str(host)


def sorted_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["tenant"].lower(), r["host"]))


def tenancy_usage(results: Any, start: Any, end: Any) -> dict[str, Any]:
    """Sum each tenant's usage between ``start`` and ``end`` (Unix times) from the
    raw samples the tenancy_usage_samples module read over tenancy_usage_range's range."""
    try:
        start, end = float(start), float(end)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"tenancy_usage: start {start!r} and end {end!r} must be Unix times") from None
    if not isinstance(results, Sequence) or isinstance(results, (str, bytes)):
        raise AnsibleFilterError("tenancy_usage: expected a list of {column, host, result} answers")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    running: dict[str, list[tuple[float, float]]] = {}
    answers = [_answer(result) for result in results]
    # The gateway workers' start times first (raw answers only; the module folds with them
    # on the host): a reload is a reset even when the new count has passed the old one.
    restarts: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for answer in (a for a in answers if a.get("column") == RESTARTS_COLUMN):
        for series in answer.get("result") or []:
            change_points(series_samples(series), restarts.setdefault(tenant_of(series.get("metric", {})), []))
    for answer in (a for a in answers if a.get("column") != RESTARTS_COLUMN):
        column = answer.get("column")
        if column not in USAGE_SERIES:
            raise AnsibleFilterError(f"tenancy_usage: unknown column {column!r}; known: {', '.join(USAGE_SERIES)}")
        for series in answer.get("result") or []:
            tenant, host = tenant_of(series.get("metric", {}))
            row = rows.setdefault((tenant, host), {"tenant": tenant, "host": host, **dict.fromkeys(USAGE_SERIES, 0)})
            if "total" in series:
                # Folded on the host already (the tenancy_usage_samples module).
                total, steps = float(series["total"]), [(float(t), float(v)) for t, v in series.get("running", [])]
            else:
                marks = restarts.get((tenant, host), []) if column in MARKED_COLUMNS else []
                total, steps = exact_increase(series_samples(series), start, end, marks)
            row[column] += total
            if column in ("prompt_tokens", "generation_tokens"):
                running.setdefault(tenant, []).extend(steps_as_deltas(steps))
    tokens_total = sum(r["prompt_tokens"] + r["generation_tokens"] for r in rows.values())
    out_rows = []
    for row in sorted_rows(rows.values()):
        for column in USAGE_SERIES:
            row[column] = round(row[column])
        row["tokens"] = row["prompt_tokens"] + row["generation_tokens"]
        row["share"] = round(row["tokens"] / tokens_total, 4) if tokens_total else 0.0
        out_rows.append(row)
    totals = {column: sum(r[column] for r in out_rows) for column in (*USAGE_SERIES, "tokens")}
    return {
        "start": start,
        "end": end,
        "rows": out_rows,
        "totals": totals,
        "series": {tenant: cumulative(deltas) for tenant, deltas in sorted(running.items())},
    }


def _answer(entry: Any) -> Mapping[str, Any]:
    """``{column, result}``; or one series the tenancy_usage_samples module folded on its
    host (``{column, metric, total, running}``, as tenants-usage.yml collects them)."""
    if isinstance(entry, Mapping) and "result" in entry:
        return entry
    if isinstance(entry, Mapping) and "total" in entry and "metric" in entry:
        return {"column": entry.get("column"), "result": [entry]}
    raise AnsibleFilterError(f"tenancy_usage: not an answer ({{column, result}} or a folded series): {entry!r}")


def steps_as_deltas(steps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A series' running totals as (time, increase since its previous sample)."""
    deltas, before = [], 0.0
    for time, total in steps:
        deltas.append((time, total - before))
        before = total
    return deltas


# Points per tenant in the report's series (the chart): a month of 5 s samples would be
# half a million.
CHART_POINTS = 300


def cumulative(deltas: list[tuple[float, float]], points: int = CHART_POINTS) -> list[list[float]]:
    """Several series' (time, increase) merged into one running total, in time order,
    keeping only the points where it grew, at most ``points`` of them (the last of each
    equal stretch of time)."""
    out: list[list[float]] = []
    total = 0.0
    for time, delta in sorted(deltas):
        if delta:
            total += delta
            out.append([time, total])
    if len(out) <= points:
        return out
    first, last = out[0][0], out[-1][0]
    width = (last - first) / points or 1.0
    kept: dict[int, list[float]] = {}
    for point in out:
        kept[min(int((point[0] - first) / width), points - 1)] = point
    return [kept[i] for i in sorted(kept)]


class FilterModule:
    """Tenancy usage filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_usage": tenancy_usage}
