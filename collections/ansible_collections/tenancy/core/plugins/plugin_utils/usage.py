"""Metering code the usage filters share (tenancy_usage, tenancy_usage_range): which
series make up a tenant's usage, and how a time range is read."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError

# The usage report's columns and the series each one sums, per tenant. The engine's
# counters (vLLM) count what it served; the gateway's (HAProxy's exporter, frontend
# "tenant") count what it answered itself or passed on, by status class.
USAGE_SERIES: dict[str, str] = {
    "requests": 'vllm:request_success_total{job="tenancy_engine"}',
    "prompt_tokens": 'vllm:prompt_tokens_total{job="tenancy_engine"}',
    "generation_tokens": 'vllm:generation_tokens_total{job="tenancy_engine"}',
    "refused_4xx": 'haproxy_frontend_http_responses_total{job="tenancy_gateway",proxy="tenant",code="4xx"}',
    # Of those, each answered by a gateway backend of its own: a missing or unknown key
    # (401), a body above max_body_size (413), above the tenant's rpm_limit (429).
    "unauthorized": 'haproxy_backend_http_requests_total{job="tenancy_gateway",proxy="unauthorized"}',
    "too_large": 'haproxy_backend_http_requests_total{job="tenancy_gateway",proxy="too_large"}',
    "rate_limited": 'haproxy_backend_http_requests_total{job="tenancy_gateway",proxy="rate_limited"}',
    "failed_5xx": 'haproxy_frontend_http_responses_total{job="tenancy_gateway",proxy="tenant",code="5xx"}',
}
# The gateway's counters live in its HAProxy worker and start again at 0 when a config
# change reloads it (the engine's survive restarts: they are files on the tenant's
# volume). The worker's start time tells a reload even when the new count has already
# passed the old one by the next scrape; the fold uses it for these columns.
RESTART_MARKER = 'haproxy_process_start_time_seconds{job="tenancy_gateway"}'
MARKED_COLUMNS = frozenset(c for c, s in USAGE_SERIES.items() if 'job="tenancy_gateway"' in s)
# The pseudo-column of the marker's answers (read with the usage series over tenancy_usage_range's range).
RESTARTS_COLUMN = "restarts"

# Samples before the range's start that give each series its starting value.
LOOKBACK_S = 300

# Running-total points kept per series for the chart (CounterFold's stretches of the
# range); the chart then merges a tenant's series into at most CHART_POINTS points.
CHART_SOURCE_POINTS = 1000

DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any, field: str) -> int:
    """``90s``, ``15m``, ``24h``, ``30d``, ``2w`` in seconds."""
    match = DURATION_RE.match(str(value).strip())
    if not match or int(match.group(1)) == 0:
        raise AnsibleFilterError(
            f"usage report: field {field!r} has invalid value {value!r}; expected e.g. 90s, 15m, 24h, 30d"
        )
    return int(match.group(1)) * UNITS[match.group(2)]


def parse_time(value: Any, field: str, now: float) -> float:
    """A Unix time, an ISO 8601 time (UTC unless it says otherwise) or ``now``."""
    if value in (None, "", "now"):
        return float(now)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AnsibleFilterError(
            f"usage report: field {field!r} has invalid value {value!r}; expected now, a Unix time or "
            "an ISO 8601 time such as 2026-11-30T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
