"""End to end: per-tenant metrics for the operator only, the host's Prometheus scraping
every tenant with its labels, and the usage report (playbooks/tenants-usage.yml)
matching what the clients counted, across an engine restart (docs/metering.md)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
import xml.etree.ElementTree as ET

import pytest
import requests
from checks import gateway_network
from gateway_probe import post_refused_early
from helpers import INVENTORY
from tenancy_inventory import ROOT, base_url, role_defaults, run_usage_report

PROMETHEUS = "http://127.0.0.1:9090"
# Two of the monitoring role's scrape intervals (5 s) and a margin.
SETTLE_S = 12


def api_key(name: str) -> str:
    return (INVENTORY / "credentials" / f"{name}.api_key").read_text().strip()


def metrics(tenant: dict, path: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{tenant['metrics_port']}{path}", timeout=10)


def chat_usage(tenant: dict, words: int) -> tuple[int, int]:
    """One chat; the (prompt, completion) tokens its answer's usage reports."""
    body = {
        "model": tenant["served_model_name"],
        "messages": [{"role": "user", "content": " ".join(["metering"] * words)}],
        "max_tokens": 3 + words % 5,
    }
    answer = requests.post(
        f"{base_url(tenant)}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key(tenant['name'])}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    return usage["prompt_tokens"], usage["completion_tokens"]


def send(tenants: dict, rounds: int, counted: dict) -> None:
    for i in range(rounds):
        for name, tenant in tenants.items():
            prompt, completion = chat_usage(tenant, 1 + i)
            row = counted.setdefault(name, {"requests": 0, "prompt_tokens": 0, "generation_tokens": 0})
            row["requests"] += 1
            row["prompt_tokens"] += prompt
            row["generation_tokens"] += completion


def usage_report(started: float, tmp_path) -> tuple[dict, ET.Element]:
    """The report from just before ``started`` to now."""
    output, chart = tmp_path / "usage.json", tmp_path / "usage.svg"
    result = run_usage_report(INVENTORY, started, time.time(), output, chart)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "changed=0" in result.stdout
    return json.loads(output.read_text()), ET.parse(chart).getroot()


def test_metrics_are_on_the_loopback_metrics_port_only(tenants, docker_client):
    for tenant in tenants.values():
        gateway = metrics(tenant, "/metrics")
        assert gateway.status_code == 200
        assert 'haproxy_frontend_http_responses_total{proxy="tenant",code="2xx"}' in gateway.text
        engine = metrics(tenant, "/engine/metrics")
        assert engine.status_code == 200 and "vllm:prompt_tokens_total" in engine.text
        assert metrics(tenant, "/v1/models").status_code == 404
        attrs = docker_client.containers.get(tenant["names"]["gateway"]).attrs
        assert gateway_network(attrs, tenant) == []
        # The check catches a metrics port published on every address (a planted break).
        planted = json.loads(json.dumps(attrs))
        planted["HostConfig"]["PortBindings"]["9101/tcp"][0]["HostIp"] = "0.0.0.0"
        assert gateway_network(planted, tenant) != []
        # And the tenant's own port does not serve either path.
        for path in ("/metrics", "/engine/metrics", "/tls/metrics"):
            assert requests.get(base_url(tenant) + path, timeout=10).status_code == 404


def backend_requests(tenant: dict) -> dict[str, int]:
    """haproxy_backend_http_requests_total by backend, from the gateway's metrics port."""
    text = metrics(tenant, "/metrics").text
    return {
        proxy: int(float(value))
        for proxy, value in re.findall(r'^haproxy_backend_http_requests_total\{proxy="([^"]+)"\} (\S+)$', text, re.M)
    }


def let_through(docker_client, tenant: dict) -> int:
    """The gateway's count of requests it let through in its rate table (gpc0, what
    rpm_limit is checked against), from its runtime API inside the container."""
    port = role_defaults("tenant")["tenant_gateway_admin_port"]
    command = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo 'show table rate_{tenant['name']}' >&3 && cat <&3"
    result = docker_client.containers.get(tenant["names"]["gateway"]).exec_run(["bash", "-c", command])
    found = re.search(r"\bgpc0=(\d+)", result.output.decode())
    assert found, result.output.decode()
    return int(found.group(1))


def test_refusals_are_counted_apart_and_never_against_the_rate_limit(tenants, docker_client):
    """401 (a missing or unknown key) and 413 (a body above max_body_size) are answered by
    gateway backends of their own, so the exporter counts each apart; neither reaches the
    rate counter, so requests without a valid key can never use up a tenant's rpm_limit."""
    tenant = tenants["companyA"]
    url = f"{base_url(tenant)}/v1/chat/completions"
    good = {"Authorization": f"Bearer {api_key(tenant['name'])}"}
    chat = {"model": tenant["served_model_name"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    # A request let through first: the rate table's entry is fresh (it expires after 2 min idle).
    assert requests.post(url, json=chat, headers=good, timeout=60).status_code == 200
    counted, before = let_through(docker_client, tenant), backend_requests(tenant)

    bad_keys = ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Basic {api_key(tenant['name'])}"})
    answers = [requests.post(url, json=chat, headers=headers, timeout=10).status_code for headers in bad_keys]
    big = b" " * (tenant["max_body_size"] + 1)
    headers = {**good, "Content-Type": "application/json"}
    answers += [post_refused_early(url, headers, big)[0] for _ in range(2)]
    assert answers == [401, 401, 401, 413, 413]
    after = backend_requests(tenant)
    assert after["unauthorized"] - before["unauthorized"] == 3
    assert after["too_large"] - before["too_large"] == 2
    assert after["rate_limited"] == before["rate_limited"]
    assert let_through(docker_client, tenant) == counted, "a refused request counted against rpm_limit"
    # The counter does count what is let through.
    assert requests.post(url, json=chat, headers=good, timeout=60).status_code == 200
    assert let_through(docker_client, tenant) == counted + 1


def test_prometheus_scrapes_every_tenant_with_its_labels(tenants):
    deadline = time.monotonic() + 60
    while True:
        targets = requests.get(f"{PROMETHEUS}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        ours = [t for t in targets if t["labels"]["job"] in ("tenancy_gateway", "tenancy_engine")]
        if (ours and all(t["health"] == "up" for t in ours)) or time.monotonic() > deadline:
            break
        time.sleep(2)
    seen = {(t["labels"]["job"], t["labels"]["tenant"], t["labels"]["host"], t["health"]) for t in ours}
    assert seen == {(job, name, "localhost", "up") for job in ("tenancy_gateway", "tenancy_engine") for name in tenants}
    # Every stored tenant series says whose it is.
    query = {"query": "count by (tenant) (vllm:prompt_tokens_total)"}
    answer = requests.get(f"{PROMETHEUS}/api/v1/query", params=query, timeout=10)
    assert {r["metric"].get("tenant") for r in answer.json()["data"]["result"]} == set(tenants)


def test_usage_report_matches_what_the_clients_counted(tenants, tmp_path):
    """Exact: the report's requests and tokens equal the sum of the answers' usage fields.
    (Across an engine restart: tests/multihost, beside the longer LUKS VM job in CI.)"""
    time.sleep(SETTLE_S)  # earlier tests' requests are all in a sample before the start
    started = time.time()
    counted: dict = {}
    send(tenants, 4, counted)
    url = f"{base_url(tenants['companyA'])}/v1/chat/completions"
    refused = requests.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert refused.status_code == 401
    time.sleep(SETTLE_S)
    report, chart = usage_report(started, tmp_path)

    rows = {row["tenant"]: row for row in report["rows"]}
    assert set(rows) == set(tenants)
    for name, want in counted.items():
        got = {k: rows[name][k] for k in want}
        assert got == want, f"{name}: report {got}, clients counted {want}"
    assert rows["companyA"]["refused_4xx"] == 1 and rows["companyB"]["refused_4xx"] == 0
    assert rows["companyA"]["unauthorized"] == 1 and rows["companyA"]["too_large"] == 0
    assert rows["companyA"]["rate_limited"] == 0
    total = sum(w["prompt_tokens"] + w["generation_tokens"] for w in counted.values())
    assert report["totals"]["tokens"] == total
    assert sum(row["share"] for row in rows.values()) == pytest.approx(1.0, abs=1e-3)

    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = [line.find("svg:title", ns).text for line in chart.findall("svg:polyline", ns)]
    assert titles == [f"{name}: {rows[name]['tokens']:,} tokens" for name in sorted(tenants, key=str.lower)]


def worker_start(tenant: dict) -> float:
    found = re.search(r"^haproxy_process_start_time_seconds (\S+)$", metrics(tenant, "/metrics").text, re.M)
    assert found, "the gateway exports no haproxy_process_start_time_seconds"
    return float(found.group(1))


def test_usage_report_is_exact_across_a_gateway_reload(tenants, docker_client, tmp_path):
    """A config change reloads the gateway (HAProxy's master-worker reload, what
    roles/tenant/tasks/gateway.yml sends): the new worker's counters begin at 0. The
    report counts the refusals before and after it exactly. Here the new count usually stays
    below the old one, so the drop alone shows the reset; the case where the new count
    has already passed the old one by the next scrape, which only the worker's start
    time tells, is proven in tests/unit/test_metering.py and test_usage_samples.py."""
    tenant = tenants["companyA"]
    url = f"{base_url(tenant)}/v1/chat/completions"
    time.sleep(SETTLE_S)
    started = time.time()
    before = [requests.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=10) for _ in range(3)]
    time.sleep(SETTLE_S)  # scraped by the old worker
    old_worker = worker_start(tenant)
    gateway = docker_client.containers.get(tenant["names"]["gateway"])
    assert gateway.exec_run(["bash", "-c", "kill -USR2 1"]).exit_code == 0
    deadline = time.monotonic() + 30
    while worker_start(tenant) == old_worker:
        assert time.monotonic() < deadline, "the gateway did not reload"
        time.sleep(0.5)
    after = [requests.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=10) for _ in range(5)]
    assert [r.status_code for r in before + after] == [401] * 8
    time.sleep(SETTLE_S)
    report, _ = usage_report(started, tmp_path)
    rows = {row["tenant"]: row for row in report["rows"]}
    assert rows["companyA"]["unauthorized"] == 8, rows["companyA"]
    assert rows["companyA"]["refused_4xx"] == 8
    # Prometheus keeps the worker's start time, so the report can tell the reload.
    query = {"query": f'count_over_time(haproxy_process_start_time_seconds{{tenant="{tenant["name"]}"}}[2m])'}
    answer = requests.get(f"{PROMETHEUS}/api/v1/query", params=query, timeout=10).json()["data"]["result"]
    assert answer and float(answer[0]["value"][1]) > 0


def promtool_test_rules(docker_client, rules_dir) -> tuple[int, str]:
    image = docker_client.containers.get("tenancy-prometheus").image
    container = docker_client.containers.run(
        image,
        ["test", "rules", "/rules/tenancy_test.yml"],
        entrypoint="promtool",
        user="0",
        network_mode="none",
        volumes={str(rules_dir): {"bind": "/rules", "mode": "ro"}},
        detach=True,
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def test_every_alert_fires_when_it_should_and_only_then(docker_client, tmp_path):
    """roles/monitoring/files/rules/tenancy_test.yml, run by promtool in the monitoring
    image: engine down, gateway down, 5xx, pinned at the rate limit, a bad-key flood and
    GPU memory over quota each fire on their series after their `for`, and look-alikes
    below the thresholds (or MIG tenants, for the GPU quota) do not."""
    rules = ROOT / "roles" / "monitoring" / "files" / "rules"
    code, said = promtool_test_rules(docker_client, rules)
    assert code == 0, said
    assert "SUCCESS" in said
    # Planted break: the GPU alert without its MIG exclusion fires for the MIG tenant too.
    planted = tmp_path / "rules"
    shutil.copytree(rules, planted)
    text = (planted / "tenancy.yml").read_text()
    (planted / "tenancy.yml").write_text(
        text.replace('tenancy_gpu_memory_used_bytes{mode!="mig"}', "tenancy_gpu_memory_used_bytes")
    )
    code, said = promtool_test_rules(docker_client, planted)
    assert code != 0 and 'mode="mig"' in said, said


def label_leaks(pairs: set[tuple[str, str]], tenants: dict) -> list[str]:
    """Each (instance, tenant) pair Prometheus holds that is not a tenant's own metrics
    port with its own name: one tenant's series under another's label, or unlabelled."""
    own = {(f"127.0.0.1:{t['metrics_port']}", name) for name, t in tenants.items()}
    return sorted(f"{instance} carries tenant={tenant!r}" for instance, tenant in pairs - own)


def test_no_tenant_series_carries_another_tenants_label(tenants):
    """Every series scraped from a tenant's metrics port says that tenant, and only that
    tenant's port says it: no label leak between tenants in the host's Prometheus."""
    query = {"query": 'count by (instance, tenant) ({job=~"tenancy_gateway|tenancy_engine"})'}
    result = requests.get(f"{PROMETHEUS}/api/v1/query", params=query, timeout=10).json()["data"]["result"]
    pairs = {(r["metric"].get("instance", ""), r["metric"].get("tenant", "")) for r in result}
    assert {tenant for _, tenant in pairs} == set(tenants)
    assert label_leaks(pairs, tenants) == []
    # Planted break: companyA's metrics port labelled companyB as well.
    port_a = f"127.0.0.1:{tenants['companyA']['metrics_port']}"
    assert label_leaks(pairs | {(port_a, "companyB")}, tenants) == [f"{port_a} carries tenant='companyB'"]


def reaches(docker_client, container: str, address: str, port: int) -> bool:
    """Whether `container` opens TCP to address:port (bash's /dev/tcp, 3 s)."""
    probe = ["timeout", "3", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"', address, str(port)]
    return docker_client.containers.get(container).exec_run(probe).exit_code == 0


def edge_gateway(docker_client, tenant) -> str:
    """The host's address on the tenant's edge network. The internal network's IPAM
    still names a gateway, but the host holds no address there (inhibit_ipv4)."""
    attrs = docker_client.containers.get(tenant["names"]["gateway"]).attrs
    return attrs["NetworkSettings"]["Networks"][tenant["names"]["edge_network"]]["Gateway"]


def test_no_tenant_network_reaches_prometheus_or_a_metrics_port(tenants, docker_client):
    """From each tenant's gateway (the one tenant container with a way out: its edge
    network, whose gateway address is the host), neither the host's Prometheus nor any
    tenant's metrics port answers: both listen on the host's loopback only. The probe is
    proven to connect where something does listen on every address (a planted listener)."""
    ports = [9090] + [t["metrics_port"] for t in tenants.values()]
    for tenant in tenants.values():
        host = edge_gateway(docker_client, tenant)
        reached = [port for port in ports if reaches(docker_client, tenant["names"]["gateway"], host, port)]
        assert reached == [], f"{tenant['name']}'s gateway reaches the host's {reached} at {host}"
    # Planted break: a listener on every address of the host is reached by the same probe.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    try:
        tenant = tenants["companyA"]
        host = edge_gateway(docker_client, tenant)
        assert reaches(docker_client, tenant["names"]["gateway"], host, listener.getsockname()[1])
    finally:
        listener.close()
