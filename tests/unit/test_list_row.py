"""tenants-list rows (tenancy_list_row): state from the containers, requests from the
engine's /metrics, a key fingerprint that never shows the key, NVML memory per engine."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_list_row import tenancy_list_row

RECORD = {
    "name": "companyA",
    "port": 30001,
    "endpoint": "https://127.0.0.1:30001/v1",
    "served_model_name": "tiny-chat",
    "mode": "cpu",
    "gpu": None,
    "memory_bytes": 2**30,
    "gpu_memory_utilization": None,
    "cpuset": "0",
    "metrics_port": 40001,
}


def info(status: str, health: str | None = "healthy", container_id: str = "abc") -> dict:
    state = {"Status": status, "StartedAt": "2026-11-30T00:00:00Z"}
    if health:
        state["Health"] = {"Status": health}
    return {"exists": True, "container": {"Id": container_id, "State": state}}


METRICS = [
    "# HELP vllm:request_success_total Count of successfully processed requests.",
    'vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny-chat"} 7.0',
    'vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny-chat"} 5.0',
    "vllm:request_success_created 1.7e9",
]


def test_row_reports_state_requests_and_fingerprint():
    row = tenancy_list_row(RECORD, "localhost", [info("running"), info("running", None)], METRICS, "secret\n")
    assert row["engine"] == {"state": "running", "health": "healthy", "started_at": "2026-11-30T00:00:00Z"}
    assert row["gateway"]["health"] == "none"
    assert row["requests_served"] == 12
    assert row["key_fingerprint"] == hashlib.sha256(b"secret").hexdigest()[:8]
    assert "secret" not in str(row)
    assert row["metrics_port"] == 40001 and row["gpu_memory_used_bytes"] is None


def test_missing_containers_metrics_and_key_are_reported_as_such():
    row = tenancy_list_row(RECORD, "h1", [{"exists": False}, {"exists": False}], [], "")
    assert row["engine"]["state"] == "missing" and row["gateway"]["health"] == "missing"
    assert row["requests_served"] is None and row["key_fingerprint"] is None


def test_gpu_memory_sums_the_engines_own_processes():
    facts = {
        "available": True,
        "gpus": [
            {"processes": [{"container_id": "abc", "used_memory": 100}, {"container_id": "zzz", "used_memory": 5}]},
            {"processes": [{"container_id": "abc", "used_memory": 20}]},
        ],
    }
    row = tenancy_list_row(RECORD, "h1", [info("running"), info("running")], [], "k", {}, facts)
    assert row["gpu_memory_used_bytes"] == 120


def test_malformed_input_is_refused():
    with pytest.raises(AnsibleFilterError):
        tenancy_list_row({"port": 1}, "h1", [])
    with pytest.raises(AnsibleFilterError, match="companyA"):
        tenancy_list_row(RECORD, "h1", [info("running")])


def test_the_gateway_certificate_shows_its_names_and_whole_days_left():
    ends = 1798761600  # 2027-01-01 00:00 UTC
    certificate = {"not_after": ends, "names": ["IP:127.0.0.1", "DNS:localhost"]}
    # 10.5 days before the end: 10 whole days left.
    row = tenancy_list_row(RECORD, "localhost", [info("running")] * 2, certificate=certificate, now=ends - 10.5 * 86400)
    assert row["tls"] == {
        "names": ["IP:127.0.0.1", "DNS:localhost"],
        "not_after": "2027-01-01T00:00:00+00:00",
        "days_left": 10,
    }
    expired = tenancy_list_row(RECORD, "localhost", [info("running")] * 2, certificate=certificate, now=ends + 1)
    assert expired["tls"]["days_left"] == -1


def test_a_tenant_without_a_certificate_shows_none():
    assert tenancy_list_row(RECORD, "localhost", [info("running")] * 2)["tls"] is None
