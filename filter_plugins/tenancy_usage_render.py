"""Render a usage report (tenancy_usage) as a table, CSV, or an SVG chart of each
tenant's tokens over the range (playbooks/tenants-usage.yml)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_usage_render
short_description: A usage report as a table, CSV or an SVG chart
version_added: "0.1.0"
description:
  - C(table) - aligned columns, one row per tenant and host, then the totals.
  - C(csv) - the same columns with a header row, no totals.
  - C(svg) - a line chart of each tenant's tokens (prompt and generated) summed over the
    range, one line per tenant, with a legend; a standalone SVG file any browser opens.
  - An unknown format raises C(AnsibleFilterError).
positional: _input, format
options:
  _input:
    description: The report from C(tenancy_usage).
    type: dict
    required: true
  format:
    description: What to render.
    type: str
    choices: [table, csv, svg]
    default: table
"""

EXAMPLES = r"""
- name: Print the report
  ansible.builtin.debug:
    msg: "{{ usage | tenancy_usage_render('table') }}"
"""

RETURN = r"""
_value:
  description: The rendered report.
  type: str
"""

COLUMNS = (
    ("tenant", "TENANT"),
    ("host", "HOST"),
    ("requests", "REQUESTS"),
    ("prompt_tokens", "TOKENS IN"),
    ("generation_tokens", "TOKENS OUT"),
    ("tokens", "TOKENS"),
    ("share", "SHARE"),
    ("refused_4xx", "REFUSED 4XX"),
    ("unauthorized", "401 KEY"),
    ("too_large", "413 BODY"),
    ("rate_limited", "429 LIMIT"),
    ("failed_5xx", "FAILED 5XX"),
)
# Distinguishable on white, in order.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(key: str, value: Any) -> str:
    return f"{value * 100:.1f}%" if key == "share" else str(value)


def render_table(report: Mapping[str, Any]) -> str:
    rows = [[_cell(k, row[k]) for k, _ in COLUMNS] for row in report["rows"]]
    totals = report["totals"]
    rows.append(["TOTAL", "", *(_cell(k, totals.get(k, "")) if k != "share" else "" for k, _ in COLUMNS[2:])])
    header = [title for _, title in COLUMNS]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"usage {_when(report['start'])} - {_when(report['end'])}"]
    for row in [header, *rows]:
        cells = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in cells))
    return "\n".join(lines)


def render_csv(report: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "end", *(k for k, _ in COLUMNS)])
    for row in report["rows"]:
        writer.writerow([int(report["start"]), int(report["end"]), *(row[k] for k, _ in COLUMNS)])
    return out.getvalue()


def render_svg(report: Mapping[str, Any], width: int = 900, height: int = 420) -> str:
    left, right, top, bottom = 80, 190, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    start, end = float(report["start"]), float(report["end"])
    span = max(end - start, 1.0)
    series = report.get("series", {})
    peak = max([p[1] for points in series.values() for p in points] + [1.0])
    x = lambda t: left + (min(max(t, start), end) - start) / span * plot_w  # noqa: E731
    y = lambda v: top + plot_h - v / peak * plot_h  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15">Tokens per tenant, '
        f"{escape(_when(start))} - {escape(_when(end))}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for i in range(5):
        value = peak * i / 4
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
        parts.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{left + plot_w}" y2="{y(value):.1f}" stroke="#ddd"/>')
    for i, label in enumerate((start, start + span / 2, end)):
        anchor = ("start", "middle", "end")[i]
        stamp = datetime.fromtimestamp(label, UTC).strftime("%m-%d %H:%M")
        parts.append(f'<text x="{x(label):.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}">{stamp}</text>')
    for i, (tenant, points) in enumerate(sorted(series.items(), key=lambda item: item[0].lower())):
        color = PALETTE[i % len(PALETTE)]
        # A step line from 0 at the range's start to the total at its end.
        coords = [(x(start), y(0))]
        for t, v in points:
            coords.append((x(t), coords[-1][1]))
            coords.append((x(t), y(v)))
        coords.append((x(end), coords[-1][1]))
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        total = points[-1][1] if points else 0
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}">'
            f"<title>{escape(tenant)}: {total:,.0f} tokens</title></polyline>"
        )
        ly = top + 10 + i * 20
        parts.append(f'<rect x="{left + plot_w + 15}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 32}" y="{ly + 1}">{escape(tenant)} ({total:,.0f})</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def tenancy_usage_render(report: Any, fmt: str = "table") -> str:
    if not isinstance(report, Mapping) or not {"rows", "totals", "start", "end"} <= set(report):
        raise AnsibleFilterError("tenancy_usage_render: expected a report from tenancy_usage")
    renderers = {"table": render_table, "csv": render_csv, "svg": render_svg}
    if fmt not in renderers:
        raise AnsibleFilterError(
            f"usage report: field 'output' has invalid value {fmt!r}; expected table, json, csv or svg"
        )
    return renderers[fmt](report)


class FilterModule:
    """Tenancy usage rendering filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_usage_render": tenancy_usage_render}
