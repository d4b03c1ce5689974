"""The range and series of a usage report: playbooks/tenants-usage.yml hands them to the
tenancy_usage_samples module on each host, which reads that host's Prometheus, and sums
the folded answers with tenancy_usage."""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.usage import (
    LOOKBACK_S,
    MARKED_COLUMNS,
    RESTART_MARKER,
    USAGE_SERIES,
    parse_duration,
    parse_time,
)

DOCUMENTATION = r"""
name: tenancy_usage_range
short_description: The time range and Prometheus series of a usage report
version_added: "0.1.0"
description:
  - Turns the report's range (a duration back from C(end)) into Unix times, and gives the
    series selector of each usage column and the gateway's restart marker, for the
    C(tenancy_usage_samples) module. It reads each series' raw samples over the range plus
    C(lookback) seconds before it (each series' starting value).
  - A bad duration or time raises C(AnsibleFilterError) naming the field and the value.
positional: _input, end
options:
  _input:
    description: How far back from C(end) the report reaches, e.g. C(90s), C(15m), C(24h), C(30d), C(2w).
    type: str
    required: true
  end:
    description: End of the range - C(now), a Unix time, or an ISO 8601 time (UTC unless it says otherwise).
    type: str
    default: now
"""

EXAMPLES = r"""
- name: Work out the range and the series
  ansible.builtin.set_fact:
    usage_range: "{{ usage_since | default('24h') | tenancy_usage_range(usage_end | default('now')) }}"
"""

RETURN = r"""
_value:
  description: The range and its series.
  type: dict
  contains:
    start: {description: Start of the range, a Unix time, type: float}
    end: {description: End of the range, a Unix time, type: float}
    lookback: {description: Seconds read before C(start) for each series' starting value, type: int}
    series:
      description: Usage column to series selector (for the C(tenancy_usage_samples) module, which reads in chunks).
      type: dict
    restart_marker: {description: "The gateway worker's start time, which tells a reload (a reset)", type: str}
    marked_columns: {description: The columns whose counters the restart marker applies to, type: list}
"""


def tenancy_usage_range(since: Any, end: Any = "now", now: float | None = None) -> dict[str, Any]:
    seconds = parse_duration(since, "since")
    end_s = parse_time(end, "end", time.time() if now is None else now)
    return {
        "start": end_s - seconds,
        "end": end_s,
        "lookback": LOOKBACK_S,
        "series": dict(USAGE_SERIES),
        "restart_marker": RESTART_MARKER,
        "marked_columns": sorted(MARKED_COLUMNS),
    }


class FilterModule:
    """Tenancy usage query filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_usage_range": tenancy_usage_range}
