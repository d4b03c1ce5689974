#!/usr/bin/python
"""Read a range of usage counters from the host's Prometheus in chunks and fold each
series' exact increase on the host, so a month's report ships a few numbers per series
to the controller instead of half a million samples."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tenancy_usage_samples
short_description: Fold each usage counter's exact increase over a range, reading Prometheus in chunks
version_added: "0.1.0"
description:
  - For each usage column, asks the host's Prometheus for the raw samples of its series,
    one chunk of the range at a time (an instant query of a range vector, C(selector[chunk]),
    at the chunk's end), and folds every series sample by sample as the C(tenancy_usage)
    filter does (module_utils C(usage_fold.CounterFold)) - exact across counter resets,
    nothing extrapolated.
  - A month at 5 s scrapes is about 518,000 samples per series; read in one answer that
    is beyond what Prometheus (capped at 512 MiB here) or Ansible should carry. In chunks
    of O(chunk_seconds), each answer is small, and what comes back per series is its
    total and at most O(points) running totals for the chart.
  - Read-only; supports check mode. A Prometheus that does not answer, or answers an
    error, fails the task naming the column and the query.
options:
  url:
    description: Prometheus' base URL, as the host reaches it.
    type: str
    default: http://127.0.0.1:9090
  series:
    description: Column name to series selector (the report's USAGE_SERIES).
    type: dict
    required: true
  start:
    description: Start of the range, a Unix time.
    type: float
    required: true
  end:
    description: End of the range, a Unix time.
    type: float
    required: true
  lookback_seconds:
    description: Read this much before O(start) for each series' starting value.
    type: int
    default: 300
  chunk_seconds:
    description: Length of the piece of the range each query reads.
    type: int
    default: 21600
  points:
    description: Running totals kept per series for the chart.
    type: int
    default: 1000
  timeout:
    description: Seconds to wait for each answer.
    type: int
    default: 60
  restart_marker:
    description:
      - Selector of a series that gives, per tenant and host, the start time of the process
        that keeps the O(marked_columns)' counters (HAProxy's worker). A new start time is a
        reset even when the new counter has already passed the old value; a sample from an
        older process than one already seen is skipped.
    type: str
  marked_columns:
    description: The columns folded with O(restart_marker).
    type: list
    elements: str
    default: []
author: tenancy maintainers
"""

EXAMPLES = r"""
- name: Fold this host's usage counters over the range
  tenancy_usage_samples:
    url: http://127.0.0.1:9090
    series: {requests: 'vllm:request_success_total{job="tenancy_engine"}'}
    start: 1764547200
    end: 1767225600
  register: usage
"""

RETURN = r"""
series:
  description: One entry per column and series.
  returned: always
  type: list
  elements: dict
  contains:
    column: {description: The column, type: str}
    metric: {description: The series' labels, type: dict}
    total: {description: Its exact increase over the range, type: float}
    running: {description: "[time, running total] where it grew, at most O(points)", type: list}
queries:
  description: How many queries were sent to Prometheus.
  returned: always
  type: int
"""

import json  # noqa: E402  (Ansible's convention: the doc blocks come first)
from urllib.parse import urlencode  # noqa: E402  (same)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402  (same)
from ansible.module_utils.urls import open_url  # noqa: E402  (same)
from ansible_collections.tenancy.core.plugins.module_utils.usage_fold import (  # noqa: E402  (same)
    CounterFold,
    change_points,
)


def chunks(start: float, end: float, lookback: float, chunk: float) -> list[tuple[float, float]]:
    """(from, to] pieces covering (start - lookback, end], each at most ``chunk`` long."""
    pieces, left = [], start - lookback
    while left < end:
        right = min(left + chunk, end)
        pieces.append((left, right))
        left = right
    return pieces


def fold_usage(
    query,
    series: dict,
    start: float,
    end: float,
    lookback: float,
    chunk: float,
    points: int,
    marker: str | None = None,
    marked: frozenset | set = frozenset(),
):
    """Fold every series of every column; ``query(promql, at)`` returns Prometheus'
    ``data.result`` for an instant query. A ``marker`` (a process start time per tenant
    and host) is read first; the columns in ``marked`` are folded with it, so a new
    process is a reset however high its counter already is. Returns (entries, queries)."""
    pieces = chunks(start, end, lookback, chunk)
    sent = 0

    def read(selector: str):
        nonlocal sent
        for left, right in pieces:
            # A range vector selects samples in (right - window, right]; Prometheus 2
            # also takes one exactly at the left edge, which the fold skips as seen.
            window_ms = max(1, round((right - left) * 1000))
            sent += 1
            yield from query(f"{selector}[{window_ms}ms]", right)

    restarts: dict[tuple, list] = {}
    if marker and marked:
        for item in read(marker):
            labels = item.get("metric", {})
            where = (labels.get("tenant"), labels.get("host"))
            change_points(((float(t), float(v)) for t, v in item.get("values", [])), restarts.setdefault(where, []))
    entries = []
    for column, selector in series.items():
        folds: dict[tuple, tuple[dict, CounterFold]] = {}
        for item in read(selector):
            labels = item.get("metric", {})
            key = tuple(sorted(labels.items()))
            if key not in folds:
                where = (labels.get("tenant"), labels.get("host"))
                marks = restarts.get(where, []) if column in marked else []
                folds[key] = (labels, CounterFold(start, end, points, marks))
            folds[key][1].feed((float(t), float(v)) for t, v in item.get("values", []))
        for labels, fold in folds.values():
            entries.append(
                {"column": column, "metric": labels, "total": fold.total, "running": [list(p) for p in fold.running]}
            )
    return entries, sent


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "default": "http://127.0.0.1:9090"},
            "series": {"type": "dict", "required": True},
            "start": {"type": "float", "required": True},
            "end": {"type": "float", "required": True},
            "lookback_seconds": {"type": "int", "default": 300},
            "chunk_seconds": {"type": "int", "default": 21600},
            "points": {"type": "int", "default": 1000},
            "timeout": {"type": "int", "default": 60},
            "restart_marker": {"type": "str"},
            "marked_columns": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["end"] <= params["start"] or params["chunk_seconds"] <= 0:
        module.fail_json(msg=f"usage report: empty range or chunk (start {params['start']}, end {params['end']})")
    endpoint = params["url"].rstrip("/") + "/api/v1/query"

    def query(promql: str, at: float) -> list:
        body = urlencode({"query": promql, "time": f"{at:.3f}"})
        try:
            response = open_url(
                endpoint,
                data=body,
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=params["timeout"],
            )
            answer = json.loads(response.read())
        except Exception as error:
            detail = ""
            if hasattr(error, "read"):
                try:
                    detail = json.loads(error.read()).get("error", "")
                except Exception:
                    detail = ""
            module.fail_json(msg=f"usage report: {endpoint} did not answer {promql!r}: {error} {detail}".strip())
        if answer.get("status") != "success":
            module.fail_json(msg=f"usage report: {endpoint} answered {promql!r} with {answer.get('error', answer)}")
        return answer.get("data", {}).get("result", [])

    entries, sent = fold_usage(
        query,
        params["series"],
        params["start"],
        params["end"],
        params["lookback_seconds"],
        params["chunk_seconds"],
        params["points"],
        params["restart_marker"],
        set(params["marked_columns"]),
    )
    module.exit_json(changed=False, series=entries, queries=sent)


if __name__ == "__main__":
    main()
