"""roles/monitoring/files/tenancy_gpu_exporter.py: GPU memory per tenant from NVML, on
recorded NVML answers (the FAKE in fake_nvml.py) and a fake /proc."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from device_check import EXPORTER as SCRIPT
from device_check import load_exporter
from fake_nvml import FakeNVML

exporter = load_exporter()

GIB = 1024**3
A_ID = "a" * 64
B_ID = "b" * 64


def fake_proc(root: Path, cgroups: dict[int, str]) -> str:
    for pid, line in cgroups.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cgroup").write_text(line + "\n")
    return str(root)


def tenants_dir(root: Path, *records: dict) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for record in records:
        (root / f"{record['tenant']}.json").write_text(json.dumps(record))
    return str(root)


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and line[0] != "#"
    }


@pytest.mark.parametrize(
    "line",
    [
        f"0::/system.slice/docker-{A_ID}.scope",  # cgroup v2, systemd driver
        f"0::/docker/{A_ID}",  # cgroup v2, cgroupfs driver
        f"12:memory:/docker/{A_ID}\n0::/",  # cgroup v1
    ],
)
def test_a_process_is_mapped_to_its_container_under_every_cgroup_layout(tmp_path, line):
    proc = fake_proc(tmp_path, {4242: line})
    assert exporter.container_of(4242, proc) == A_ID


def test_a_process_outside_containers_or_gone_has_no_container(tmp_path):
    proc = fake_proc(tmp_path, {4343: "0::/user.slice/session-1.scope"})
    assert exporter.container_of(4343, proc) is None
    assert exporter.container_of(9999, proc) is None


def test_each_tenant_is_charged_what_its_engine_uses_and_the_rest_is_unattributed(tmp_path):
    """a100_80gb records pid 4242 with 20 GiB and pid 4343 with 1 GiB on GPU 0."""
    proc = fake_proc(tmp_path / "proc", {4242: f"0::/system.slice/docker-{A_ID}.scope", 4343: "0::/init.scope"})
    directory = tenants_dir(
        tmp_path / "tenants",
        {"tenant": "companyA", "engine_id": A_ID, "gpu": 0, "mode": "shared", "quota_bytes": 16 * GIB},
        {"tenant": "companyB", "engine_id": B_ID, "gpu": 0, "mode": "shared", "quota_bytes": 24 * GIB},
    )
    nvml = FakeNVML("a100_80gb")
    nvml.nvmlInit()
    text = exporter.render(exporter.collect(nvml, exporter.load_tenants(directory), proc), 0)
    got = samples(text)
    assert got['tenancy_gpu_memory_used_bytes{tenant="companyA",gpu="0",mode="shared"}'] == 20 * GIB
    assert got['tenancy_gpu_memory_quota_bytes{tenant="companyA",gpu="0",mode="shared"}'] == 16 * GIB
    assert got['tenancy_gpu_memory_used_bytes{tenant="companyB",gpu="0",mode="shared"}'] == 0
    assert got['tenancy_gpu_memory_unattributed_bytes{gpu="0"}'] == GIB
    assert got['tenancy_gpu_memory_total_bytes{gpu="0",name="NVIDIA A100-SXM4-80GB"}'] == 80 * GIB
    assert got["tenancy_gpu_exporter_errors_total"] == 0
    assert "# TYPE tenancy_gpu_memory_used_bytes gauge" in text


def test_a_mig_tenant_is_charged_its_instance(tmp_path):
    nvml = FakeNVML("a100_80gb_mig_7x1g")
    nvml.data["gpus"][0]["mig_devices"][2]["memory_used"] = 7 * GIB
    uuid = nvml.data["gpus"][0]["mig_devices"][2]["uuid"]
    directory = tenants_dir(
        tmp_path / "tenants",
        {"tenant": "m", "engine_id": A_ID, "gpu": 0, "mode": "mig", "quota_bytes": 9 * GIB, "mig_uuid": uuid},
    )
    nvml.nvmlInit()
    got = samples(exporter.render(exporter.collect(nvml, exporter.load_tenants(directory), str(tmp_path)), 0))
    assert got['tenancy_gpu_memory_used_bytes{tenant="m",gpu="0",mode="mig"}'] == 7 * GIB


def test_a_bad_tenant_file_is_skipped_and_the_others_still_count(tmp_path, capsys):
    directory = tenants_dir(
        tmp_path / "tenants", {"tenant": "ok", "engine_id": A_ID, "gpu": 0, "mode": "shared", "quota_bytes": 1}
    )
    (tmp_path / "tenants" / "broken.json").write_text("{not json")
    assert [t.name for t in exporter.load_tenants(directory)] == ["ok"]
    assert "skipping broken.json" in capsys.readouterr().err
    assert exporter.load_tenants(str(tmp_path / "missing")) == []


def test_label_values_are_escaped():
    assert exporter._labels(tenant='a"b\\c') == '{tenant="a\\"b\\\\c"}'


def test_it_serves_only_metrics_over_http(tmp_path):
    server = exporter.make_server(
        exporter.Exporter(FakeNVML("h100_80gb"), tenants_dir(tmp_path / "t"), str(tmp_path)), "127.0.0.1", 0
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'tenancy_gpu_memory_total_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"}' in body
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert refused.value.code == 404
    finally:
        server.shutdown()


def test_an_nvml_failure_is_counted_not_fatal(tmp_path):
    nvml = FakeNVML("h100_80gb")
    server_exporter = exporter.Exporter(nvml, tenants_dir(tmp_path / "t"), str(tmp_path))

    def broken(index):
        raise nvml.NVMLError("GPU is lost")

    nvml.nvmlDeviceGetHandleByIndex = broken
    got = samples(server_exporter.scrape())
    assert got == {"tenancy_gpu_exporter_errors_total": 1}


def test_the_monitoring_role_reads_the_records_where_the_tenant_role_writes_them():
    """One fact, two roles: the planner's GPU_RECORDS_DIR (the tenant role writes each
    record at its plan's names.gpu_record) is the monitoring role's default."""
    import yaml
    from ansible_collections.tenancy.core.plugins.plugin_utils.engine import GPU_RECORDS_DIR, object_names

    defaults = yaml.safe_load((SCRIPT.parents[1] / "defaults" / "main.yml").read_text())
    assert defaults["monitoring_gpu_records_dir"] == GPU_RECORDS_DIR
    assert object_names("t")["gpu_record"] == f"{GPU_RECORDS_DIR}/t.json"


def test_the_tenant_roles_record_is_what_the_exporter_reads(tmp_path):
    """tenancy_gpu_record (what roles/tenant/tasks/gpu_record.yml writes) round-trips
    through the exporter's load_tenants, in every GPU mode."""
    from tenancy_gpu_record import tenancy_gpu_record
    from tenancy_plan import tenancy_plan

    for mode in ("shared", "mps", "mig"):
        gpus = [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB", "mode": mode}]
        (plan,) = tenancy_plan([{"name": "a", "port": 30001, "gpu_memory": "9G"}], {}, {"h": {"tenancy_gpus": gpus}})
        record = tenancy_gpu_record(plan, A_ID, {"a": "MIG-1234"})
        directory = tenants_dir(tmp_path / mode, record)
        (tenant,) = exporter.load_tenants(directory)
        assert tenant == exporter.Tenant("a", A_ID, 0, mode, 9 * GIB, "MIG-1234" if mode == "mig" else None)


def test_a_record_is_refused_for_what_is_not_a_gpu_tenant():
    from ansible.errors import AnsibleFilterError
    from tenancy_gpu_record import tenancy_gpu_record
    from tenancy_plan import tenancy_plan

    (cpu,) = tenancy_plan([{"name": "c", "port": 30001}], {}, ["h"])
    with pytest.raises(AnsibleFilterError, match="tenant 'c' is not a GPU tenant"):
        tenancy_gpu_record(cpu, A_ID)
    with pytest.raises(AnsibleFilterError, match="no engine container id"):
        tenancy_gpu_record({**cpu, "gpu": 0, "mode": "shared"}, "")
    with pytest.raises(AnsibleFilterError, match="MIG tenant without a MIG device"):
        tenancy_gpu_record({**cpu, "gpu": 0, "mode": "mig"}, A_ID, {})


def test_a_hosts_gpu_tenants_are_its_present_tenants_with_a_gpu():
    from ansible.errors import AnsibleFilterError
    from tenancy_gpu_tenants import tenancy_gpu_tenants

    plan = [
        {"name": "a", "host": "g1", "state": "present", "gpu": 0},
        {"name": "b", "host": "g1", "state": "present", "gpu": None},  # a CPU tenant
        {"name": "c", "host": "g1", "state": "absent", "gpu": 0},  # being removed
        {"name": "d", "host": "g2", "state": "present", "gpu": 1},  # another host
        {"name": "e", "host": "g1", "state": "present", "gpu": 1},
    ]
    assert tenancy_gpu_tenants(plan, "g1") == ["a", "e"]
    assert tenancy_gpu_tenants(plan, "nowhere") == []
    with pytest.raises(AnsibleFilterError, match="not a list of records"):
        tenancy_gpu_tenants({"a": 1}, "g1")


def test_a_mig_instance_that_cannot_be_read_is_an_error_not_a_zero(tmp_path):
    nvml = FakeNVML("a100_80gb_mig_7x1g")
    directory = tenants_dir(
        tmp_path / "tenants",
        {"tenant": "m", "engine_id": A_ID, "gpu": 0, "mode": "mig", "quota_bytes": 9 * GIB, "mig_uuid": "MIG-gone"},
    )
    got = samples(exporter.Exporter(nvml, directory, str(tmp_path)).scrape())
    assert not any(name.startswith('tenancy_gpu_memory_used_bytes{tenant="m"') for name in got)
    assert got['tenancy_gpu_memory_quota_bytes{tenant="m",gpu="0",mode="mig"}'] == 9 * GIB
    assert got["tenancy_gpu_exporter_errors_total"] == 1
