"""Metering: the planner's metrics ports, the scrape targets, the usage report's exact
counting across engine restarts, and its table, CSV and chart (docs/metering.md)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from tenancy_plan import tenancy_plan
from tenancy_scrape_targets import tenancy_scrape_targets
from tenancy_usage import USAGE_SERIES, exact_increase, tenancy_usage
from tenancy_usage_range import tenancy_usage_range
from tenancy_usage_render import tenancy_usage_render

ROOT = Path(__file__).resolve().parents[2]
A = {"name": "companyA", "port": 30001}
B = {"name": "companyB", "port": 30002}


# --- the planner's metrics ports ------------------------------------------------------


def test_metrics_port_is_the_port_plus_the_offset():
    plan = tenancy_plan([A, B], {}, ["localhost"])
    assert [t["metrics_port"] for t in plan] == [40001, 40002]
    plan = tenancy_plan([A, B], {}, ["localhost"], metrics_port_offset=5)
    assert [t["metrics_port"] for t in plan] == [30006, 30007]


def test_a_metrics_port_on_another_tenants_port_is_refused_naming_both():
    with pytest.raises(AnsibleFilterError) as error:
        tenancy_plan([A, {"name": "companyC", "port": 40001}], {}, ["localhost"])
    message = str(error.value)
    assert "tenant 'companyA': field 'port' has invalid value 30001" in message
    assert "metrics port 40001" in message and "is the port of tenant 'companyC'" in message


def test_with_another_offset_the_collision_is_found_too():
    with pytest.raises(AnsibleFilterError, match=r"metrics port 30003 .* is the port of tenant 'companyC'"):
        tenancy_plan([A, {"name": "companyC", "port": 30003}], {}, ["localhost"], metrics_port_offset=2)


def test_a_metrics_port_above_65535_is_refused_with_the_way_out():
    with pytest.raises(AnsibleFilterError) as error:
        tenancy_plan([{"name": "companyA", "port": 60000}], {}, ["localhost"])
    assert "field 'port' has invalid value 60000" in str(error.value)
    assert "70000" in str(error.value) and "below 55536" in str(error.value)


def test_metrics_ports_on_different_hosts_do_not_collide():
    plan = tenancy_plan([{**A, "host": "h1"}, {"name": "companyC", "port": 40001, "host": "h2"}], {}, ["h1", "h2"])
    assert {t["name"]: t["metrics_port"] for t in plan} == {"companyA": 40001, "companyC": 50001}


# --- scrape targets ---------------------------------------------------------------------


def test_scrape_targets_are_this_hosts_present_tenants_with_their_labels():
    plan = tenancy_plan([{**A, "host": "h1"}, {**B, "host": "h2"}], {}, ["h1", "h2"])
    plan.append({**plan[0], "name": "gone", "state": "absent"})
    assert tenancy_scrape_targets(plan, "h1") == [
        {"targets": ["127.0.0.1:40001"], "labels": {"tenant": "companyA", "host": "h1"}}
    ]
    assert tenancy_scrape_targets(plan, "h2", "10.0.0.5")[0]["targets"] == ["10.0.0.5:40002"]
    assert tenancy_scrape_targets(plan, "h2", "0.0.0.0")[0]["targets"] == ["127.0.0.1:40002"]
    assert tenancy_scrape_targets(plan, "h3") == []


def test_scrape_targets_refuse_what_is_not_a_plan():
    with pytest.raises(AnsibleFilterError):
        tenancy_scrape_targets("companyA", "h1")
    with pytest.raises(AnsibleFilterError, match="no metrics_port"):
        tenancy_scrape_targets([{"name": "a", "host": "h1", "state": "present"}], "h1")


# --- exact counting -----------------------------------------------------------------------


def test_increase_starts_from_the_last_sample_at_or_before_the_start():
    total, running = exact_increase([(90, 5), (100, 7), (105, 9), (110, 12)], start=100)
    assert total == 5
    assert running == [(105, 2), (110, 5)]


def test_a_reset_counts_the_whole_new_value():
    # 10 -> 14 (+4), engine restarts, 3 (+3), 8 (+5)
    total, _ = exact_increase([(0, 10), (5, 14), (10, 3), (15, 8)], start=0)
    assert total == 12


def test_a_gateway_reload_is_a_reset_even_when_the_new_count_passed_the_old():
    """Planted break: without the worker's start time, 40 -> 55 reads as +15, but the new
    worker began at 0 and answered 55 since its reload (its old worker had 40 before)."""
    samples = [(0, 30.0), (5, 40.0), (10, 55.0), (15, 60.0)]
    assert exact_increase(samples, start=0)[0] == 30
    restarts = [(0, 1000.0), (10, 1007.0)]
    assert exact_increase(samples, start=0, restarts=restarts)[0] == 10 + 55 + 5


def test_a_scrape_answered_by_the_old_worker_after_a_reload_is_skipped():
    """After a reload, a scrape may still reach the old worker (a kept-alive connection):
    flipping between its count and the new worker's would count resets that are not."""
    samples = [(0, 30.0), (5, 40.0), (10, 3.0), (15, 41.0), (20, 6.0)]
    restarts = [(0, 1000.0), (10, 1007.0), (15, 1000.0), (20, 1007.0)]
    assert exact_increase(samples, start=0, restarts=restarts)[0] == 10 + 3 + 3
    # Without the marker each flip is a reset: 10 + 3 + 38 + 6.
    assert exact_increase(samples, start=0)[0] == 57


def test_the_report_applies_the_gateways_restarts_to_the_gateway_columns_only():
    def answer(column, values, tenant="a"):
        return {"column": column, "result": [{"metric": {"tenant": tenant, "host": "h"}, "values": values}]}

    counter = [[0, "30"], [5, "40"], [10, "55"]]
    restarts = [[0, "1000"], [5, "1000"], [10, "1007"]]
    report = tenancy_usage(
        [answer("unauthorized", counter), answer("requests", counter), answer("restarts", restarts)], 0, 10
    )
    (row,) = report["rows"]
    assert row["unauthorized"] == 10 + 55  # the gateway's worker changed at 10
    assert row["requests"] == 25  # the engine's counters survive restarts: no marker


def test_a_series_born_inside_the_range_counts_from_zero():
    total, _ = exact_increase([(50, 4), (55, 6)], start=40)
    assert total == 6


def test_nothing_is_extrapolated_to_the_edges():
    # PromQL's increase() over [0, 100] would stretch 2 -> 4 to the whole window.
    total, _ = exact_increase([(20, 2), (80, 4)], start=0)
    assert total == 4


def series(tenant, host, values, **labels):
    return {"metric": {"tenant": tenant, "host": host, **labels}, "values": [[t, str(v)] for t, v in values]}


def test_usage_sums_each_tenant_across_series_restarts_and_hosts():
    answers = [
        # companyA's engine restarts at t=30; two finished_reason series.
        {
            "column": "requests",
            "result": [
                series("companyA", "h1", [(0, 100), (10, 110), (20, 120), (30, 2), (40, 5)], finished_reason="stop"),
                series("companyA", "h1", [(0, 1), (40, 3)], finished_reason="length"),
                series("companyB", "h2", [(0, 0), (40, 40)], finished_reason="stop"),
            ],
        },
        {
            "column": "prompt_tokens",
            "result": [series("companyA", "h1", [(0, 0), (20, 300)]), series("companyB", "h2", [(0, 0), (40, 100)])],
        },
        {"column": "generation_tokens", "result": [series("companyA", "h1", [(0, 0), (20, 100)])]},
        {"column": "refused_4xx", "result": [series("companyB", "h2", [(0, 5), (40, 7)], code="4xx")]},
    ]
    report = tenancy_usage(answers, 0, 40)
    rows = {r["tenant"]: r for r in report["rows"]}
    assert rows["companyA"]["requests"] == 20 + 5 + 2
    assert rows["companyA"]["tokens"] == 400 and rows["companyB"]["tokens"] == 100
    assert rows["companyA"]["share"] == 0.8 and rows["companyB"]["share"] == 0.2
    assert rows["companyB"]["refused_4xx"] == 2 and rows["companyA"]["refused_4xx"] == 0
    assert report["totals"]["requests"] == 27 + 40 and report["totals"]["tokens"] == 500
    assert report["series"]["companyA"][-1] == [20.0, 400.0]


def test_samples_after_the_end_are_left_out():
    answers = [{"column": "prompt_tokens", "result": [series("a", "h", [(0, 0), (10, 5), (20, 50)])]}]
    assert tenancy_usage(answers, 0, 10)["rows"][0]["prompt_tokens"] == 5


def test_an_entry_that_is_no_answer_is_refused():
    with pytest.raises(AnsibleFilterError, match="not an answer"):
        tenancy_usage([{"item": {"column": "requests"}, "json": {"status": "success"}}], 0, 5)


def test_a_series_without_tenant_label_is_refused():
    with pytest.raises(AnsibleFilterError, match="no tenant or host label"):
        tenancy_usage([{"column": "requests", "result": [{"metric": {"host": "h"}, "values": [[1, "1"]]}]}], 0, 5)


# --- the range and its queries ---------------------------------------------------------------


def test_the_range_names_every_column_the_lookback_and_the_restart_marker():
    usage_range = tenancy_usage_range("1h", "1000000", now=0)
    assert usage_range["start"] == 1000000 - 3600 and usage_range["end"] == 1000000
    assert list(usage_range["series"]) == list(USAGE_SERIES)
    assert usage_range["lookback"] == 300
    assert usage_range["restart_marker"] == 'haproxy_process_start_time_seconds{job="tenancy_gateway"}'
    assert set(usage_range["marked_columns"]) <= set(USAGE_SERIES)


def test_end_accepts_now_and_iso_times():
    assert tenancy_usage_range("15m", "now", now=5000)["end"] == 5000
    assert tenancy_usage_range("1d", "2026-11-30T00:00:00Z")["end"] == 1795996800
    assert tenancy_usage_range("1d", "2026-11-30T01:00:00+01:00")["end"] == 1795996800


@pytest.mark.parametrize(
    ("since", "end", "field"), [("yesterday", "now", "since"), ("0h", "now", "since"), ("1h", "tuesday", "end")]
)
def test_bad_range_names_the_field_and_value(since, end, field):
    with pytest.raises(AnsibleFilterError, match=f"field '{field}' has invalid value"):
        tenancy_usage_range(since, end)


# --- rendering -------------------------------------------------------------------------------


REPORT = {
    "start": 1795996800.0,
    "end": 1796000400.0,
    "rows": [
        {
            "tenant": "companyA",
            "host": "h1",
            "requests": 10,
            "prompt_tokens": 300,
            "generation_tokens": 100,
            "tokens": 400,
            "share": 0.8,
            "refused_4xx": 1,
            "unauthorized": 1,
            "too_large": 0,
            "rate_limited": 0,
            "failed_5xx": 0,
        },
        {
            "tenant": "companyZ<&>",
            "host": "h2",
            "requests": 3,
            "prompt_tokens": 80,
            "generation_tokens": 20,
            "tokens": 100,
            "share": 0.2,
            "refused_4xx": 3,
            "unauthorized": 0,
            "too_large": 0,
            "rate_limited": 3,
            "failed_5xx": 2,
        },
    ],
    "totals": {
        "requests": 13,
        "prompt_tokens": 380,
        "generation_tokens": 120,
        "tokens": 500,
        "refused_4xx": 4,
        "unauthorized": 1,
        "too_large": 0,
        "rate_limited": 3,
        "failed_5xx": 2,
    },
    "series": {"companyA": [[1795996900.0, 150.0], [1795997600.0, 400.0]], "companyZ<&>": [[1795998600.0, 100.0]]},
}


def test_table_has_a_row_per_tenant_and_the_totals():
    lines = tenancy_usage_render(REPORT, "table").splitlines()
    assert lines[0] == "usage 2026-11-30 00:00:00 UTC - 2026-11-30 01:00:00 UTC"
    assert lines[1].split()[:3] == ["TENANT", "HOST", "REQUESTS"]
    assert lines[1].split()[9:] == ["REFUSED", "4XX", "401", "KEY", "413", "BODY", "429", "LIMIT", "FAILED", "5XX"]
    assert lines[2].split() == ["companyA", "h1", "10", "300", "100", "400", "80.0%", "1", "1", "0", "0", "0"]
    assert lines[-1].split() == ["TOTAL", "13", "380", "120", "500", "4", "1", "0", "3", "2"]


def test_csv_round_trips():
    rows = list(csv.DictReader(io.StringIO(tenancy_usage_render(REPORT, "csv"))))
    assert [r["tenant"] for r in rows] == ["companyA", "companyZ<&>"]
    assert rows[0]["tokens"] == "400" and rows[0]["start"] == "1795996800"


def test_chart_is_an_svg_with_a_line_and_a_legend_entry_per_tenant():
    root = ET.fromstring(tenancy_usage_render(REPORT, "svg"))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    lines = root.findall("svg:polyline", ns)
    assert [line.find("svg:title", ns).text for line in lines] == ["companyA: 400 tokens", "companyZ<&>: 100 tokens"]
    texts = [t.text for t in root.findall("svg:text", ns)]
    assert "companyA (400)" in texts and "companyZ<&> (100)" in texts
    # The line rises from the axis at the start to the total at the end of the range.
    points = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert points[0][1] > points[-1][1] and points[0][0] < points[-1][0]


def test_unknown_format_is_refused():
    with pytest.raises(AnsibleFilterError, match="field 'output' has invalid value 'pdf'"):
        tenancy_usage_render(REPORT, "pdf")


# --- Prometheus rules -----------------------------------------------------------------------


def test_every_recorded_series_and_alert_keeps_the_tenant_label():
    rules = yaml.safe_load((ROOT / "roles/monitoring/files/rules/tenancy.yml").read_text())
    exprs = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {r.get("alert") for r in exprs} >= {"TenancyGatewayDown", "TenancyEngineDown", "TenancyGateway5xx"}
    for rule in exprs:
        expr = rule["expr"]
        # The GPU exporter's series carry their tenant themselves (and the host from the scrape);
        # the gateways' own (tenancy_gateway_*) both, from their scrape target.
        assert (
            "by (tenant, host" in expr
            or "tenancy:" in expr
            or expr.startswith(("up{", "haproxy_", "tenancy_gpu_", "tenancy_gateway_"))
        ), rule


# --- the scrape config --------------------------------------------------------------------


def render_prometheus_config(targets: list[dict], **overrides) -> dict:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda value: str(value).lower() in ("1", "true", "yes", "on")
    template = env.from_string((ROOT / "roles/monitoring/templates/prometheus.yml.j2").read_text())
    defaults = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    text = template.render(
        ansible_managed="test",
        inventory_hostname="h1",
        **{**defaults, "monitoring_targets": targets, **overrides},
    )
    return yaml.safe_load(text)


def kept(config: dict, job: str, name: str, proxy: str = "") -> bool:
    (job_config,) = [j for j in config["scrape_configs"] if j["job_name"] == job]
    (relabel,) = job_config["metric_relabel_configs"]
    value = ";".join([name, proxy][: len(relabel["source_labels"])])
    return re.fullmatch(relabel["regex"], value) is not None


def test_scrape_config_labels_every_target_and_keeps_only_what_is_used():
    plan = tenancy_plan([A, B], {}, ["h1"])
    config = render_prometheus_config(tenancy_scrape_targets(plan, "h1"))
    for job in ("tenancy_gateway", "tenancy_engine"):
        (job_config,) = [j for j in config["scrape_configs"] if j["job_name"] == job]
        assert [c["labels"]["tenant"] for c in job_config["static_configs"]] == ["companyA", "companyB"]
    assert kept(config, "tenancy_gateway", "haproxy_frontend_http_responses_total", "tenant")
    for proxy in ("unauthorized", "too_large", "rate_limited"):
        assert kept(config, "tenancy_gateway", "haproxy_backend_http_requests_total", proxy)
    assert kept(config, "tenancy_gateway", "haproxy_backend_active_servers", "engine")
    assert not kept(config, "tenancy_gateway", "haproxy_frontend_http_responses_total", "monitor")
    assert not kept(config, "tenancy_gateway", "haproxy_backend_http_requests_total", "engine_metrics")
    assert kept(config, "tenancy_engine", "vllm:prompt_tokens_total")
    assert not kept(config, "tenancy_engine", "python_gc_objects_collected_total")
    # Every series the usage report and the rules read survives the relabelling.
    for series in USAGE_SERIES.values():
        name = series.split("{")[0]
        job = "tenancy_engine" if name.startswith("vllm:") else "tenancy_gateway"
        proxy = next((p.split('"')[1] for p in series.split(",") if p.startswith("proxy=")), "")
        assert kept(config, job, name, proxy), series


def test_a_gpu_host_also_scrapes_its_gpu_exporter_and_a_cpu_host_does_not():
    plan = tenancy_plan([A], {}, ["h1"])
    cpu = render_prometheus_config(tenancy_scrape_targets(plan, "h1"))
    assert "tenancy_gpu" not in [j["job_name"] for j in cpu["scrape_configs"]]
    gpu = render_prometheus_config(tenancy_scrape_targets(plan, "h1"), monitoring_gpu_exporter=True)
    (job,) = [j for j in gpu["scrape_configs"] if j["job_name"] == "tenancy_gpu"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9401"], "labels": {"host": "h1"}}]


def test_the_charts_series_keeps_only_growth_and_at_most_300_points():
    from tenancy_usage import cumulative

    deltas = [(float(t), 1.0 if t % 2 else 0.0) for t in range(10_000)]
    points = cumulative(deltas)
    assert len(points) <= 300
    assert points[-1] == [9999.0, 5000.0]
    assert all(b[0] > a[0] and b[1] > a[1] for a, b in itertools.pairwise(points))
    assert cumulative([(1.0, 0.0), (2.0, 3.0), (3.0, 0.0)]) == [[2.0, 3.0]]
