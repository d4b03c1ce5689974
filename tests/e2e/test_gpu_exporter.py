"""End to end: the GPU exporter on the demo host, deployed by site.yml's monitoring role
the way a GPU host gets it, with a STAND-IN for NVML (this host has no GPU; the
stand-in is tests/e2e/stand_in_pynvml.py over tests/unit/fake_nvml.py). It lists the
demo engines' real host PIDs with made-up GPU memory; the container, its namespaces and
limits, /proc/<pid>/cgroup, the tenant records (tenancy_gpu_record, as the tenant role
writes them), Prometheus, its scrape and its alert rules are the real ones.

What only a GPU host shows (the NVIDIA runtime's utility capability, NVML's own answers
inside the container) is not here; make device-check ran the exporter against real NVML
on an H200 (docs/benchmarks.md, "GPU memory on a real H200")."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import requests
from helpers import run_site
from tenancy_gpu_record import tenancy_gpu_record
from tenancy_inventory import ROOT, role_defaults

GIB = 1024**3
PROMETHEUS = "http://127.0.0.1:9090"
MONITORING = role_defaults("monitoring")
EXPORTER = f"http://{MONITORING['monitoring_gpu_exporter_listen']}/metrics"
CONTAINER = MONITORING["monitoring_gpu_exporter_container"]
# Readable by the exporter's user (nobody), unlike pytest's tmp_path.
STAND_IN = Path("/var/lib/tenancy/test-gpu-exporter/nvml")
RECORDS = Path("/var/lib/tenancy/test-gpu-exporter/gpu-tenants")
# companyA holds more than its quota, companyB less; pid 1 belongs to no tenant.
HELD = {"companyA": 3 * GIB, "companyB": 1 * GIB}
QUOTA = {"companyA": 2 * GIB, "companyB": 4 * GIB}
UNATTRIBUTED = GIB // 2


def write_readable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)


def converge_monitoring(**extra: object):
    result = run_site("--tags", "monitoring", *(["-e", json.dumps(extra)] if extra else []))
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def series(text: str) -> dict[str, float]:
    pairs = [line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {name: float(value) for name, value in pairs}


@pytest.fixture(scope="module")
def gpu_exporter(tenants, docker_client):
    engines = {name: docker_client.containers.get(t["names"]["engine"]) for name, t in tenants.items()}
    assert set(HELD) <= set(engines), "the demo's companyA and companyB are needed"
    shutil.rmtree(STAND_IN.parent, ignore_errors=True)
    STAND_IN.mkdir(parents=True)
    RECORDS.mkdir()
    for directory in (STAND_IN.parent, STAND_IN, RECORDS):
        directory.chmod(0o755)
    write_readable(STAND_IN / "pynvml.py", (ROOT / "tests" / "e2e" / "stand_in_pynvml.py").read_text())
    write_readable(STAND_IN / "fake_nvml.py", (ROOT / "tests" / "unit" / "fake_nvml.py").read_text())
    processes = [{"pid": engines[name].attrs["State"]["Pid"], "used": held} for name, held in HELD.items()]
    stand_in = {
        "source": "STAND-IN written by tests/e2e/test_gpu_exporter.py: no GPU on this host",
        "driver_version": "stand-in",
        "cuda_driver_version": 13000,
        "gpus": [
            {
                "name": "STAND-IN GPU",
                "uuid": "GPU-00000000-0000-0000-0000-stand-in0000",
                "memory_total": 80 * GIB,
                "memory_used": 5 * GIB,
                "mig_mode": [0, 0],
                "processes": [*processes, {"pid": 1, "used": UNATTRIBUTED}],
            }
        ],
    }
    write_readable(STAND_IN / "stand-in.json", json.dumps(stand_in))
    for name in HELD:
        as_gpu = {**tenants[name], "gpu": 0, "mode": "shared", "memory_bytes": QUOTA[name]}
        write_readable(RECORDS / f"{name}.json", json.dumps(tenancy_gpu_record(as_gpu, engines[name].id)))
    # A record left by a tenant that no longer has a GPU engine here: the role removes it.
    write_readable(
        RECORDS / "ghost.json", json.dumps({**json.loads((RECORDS / "companyA.json").read_text()), "tenant": "ghost"})
    )
    settings = {
        "monitoring_gpu_exporter": True,
        "monitoring_gpu_tenants": sorted(HELD),
        "monitoring_gpu_exporter_nvidia": False,
        "monitoring_gpu_nvml_path": str(STAND_IN),
        "monitoring_gpu_records_dir": str(RECORDS),
    }
    first = converge_monitoring(**settings)
    yield {"first": first, "settings": settings, "engines": engines}
    # The product's own way back: without GPU tenants the role removes the exporter.
    converge_monitoring()
    try:
        assert not docker_client.containers.list(all=True, filters={"name": f"^{CONTAINER}$"})
    finally:
        shutil.rmtree(STAND_IN.parent, ignore_errors=True)


def scrape() -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = requests.get(EXPORTER, timeout=5)
            answer.raise_for_status()
            return answer.text
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_the_exporter_charges_each_tenant_its_engines_memory(gpu_exporter):
    assert sorted(p.name for p in RECORDS.iterdir()) == ["companyA.json", "companyB.json"], "ghost.json stayed"
    got = series(scrape())
    assert not any('tenant="ghost"' in name for name in got)
    for name, held in HELD.items():
        assert got[f'tenancy_gpu_memory_used_bytes{{tenant="{name}",gpu="0",mode="shared"}}'] == held
        assert got[f'tenancy_gpu_memory_quota_bytes{{tenant="{name}",gpu="0",mode="shared"}}'] == QUOTA[name]
    assert got['tenancy_gpu_memory_unattributed_bytes{gpu="0"}'] == UNATTRIBUTED
    assert got["tenancy_gpu_exporter_errors_total"] == 0


def test_the_exporter_is_confined_like_every_shared_part(gpu_exporter, docker_client):
    attrs = docker_client.containers.get(CONTAINER).attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "65534:65534"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert (host["NetworkMode"], host["PidMode"]) == ("host", "host")
    assert host["NanoCpus"] == int(MONITORING["monitoring_gpu_exporter_cpus"] * 1e9)
    assert host["Memory"] == 64 * 1024**2
    assert host["LogConfig"]["Config"] == MONITORING["monitoring_log_options"]
    assert all(m.get("RW") is False for m in attrs["Mounts"]), attrs["Mounts"]


def test_the_exporter_answers_on_the_loopback_only(gpu_exporter):
    """Tenants and the network never see it: nothing listens on the host's other addresses."""
    port = int(MONITORING["monitoring_gpu_exporter_listen"].rsplit(":", 1)[1])
    outside = socket.gethostbyname(socket.gethostname())
    if outside.startswith("127."):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; picks the outward address
            outside = probe.getsockname()[0]
    assert not outside.startswith("127."), "this host has no address but the loopback"
    with pytest.raises(OSError):
        socket.create_connection((outside, port), timeout=3).close()


def test_prometheus_scrapes_it_with_the_host_and_alerts_on_the_tenant_over_quota(gpu_exporter):
    deadline = time.monotonic() + 90
    while True:
        alerts = requests.get(f"{PROMETHEUS}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        over = {a["labels"]["tenant"] for a in alerts if a["labels"]["alertname"] == "TenancyGpuMemoryOverQuota"}
        if over or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert over == {"companyA"}
    query = {"query": "tenancy_gpu_memory_used_bytes"}
    result = requests.get(f"{PROMETHEUS}/api/v1/query", params=query, timeout=10).json()["data"]["result"]
    assert {(r["metric"]["tenant"], r["metric"]["host"], float(r["value"][1])) for r in result} == {
        (name, "localhost", float(held)) for name, held in HELD.items()
    }


def test_a_second_converge_changes_nothing(gpu_exporter):
    again = converge_monitoring(**gpu_exporter["settings"])
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]
