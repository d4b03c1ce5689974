"""roles/tenant/files/gateway_loaded.sh, the question "did the running gateway load the
config file it has now?", against a fake /proc: HAProxy's workers started just after or
well before the config's last write, on a host whose boot fell late in its second (the
case where whole-second boot times read a fresh worker as stale, CI 2026-12-06)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from tenancy_inventory import ROOT

SCRIPT = ROOT / "roles" / "tenant" / "files" / "gateway_loaded.sh"
HZ = int(subprocess.run(["getconf", "CLK_TCK"], capture_output=True, text=True, check=True).stdout)


def state(tmp_path: Path, worker_ages: list[float], written_ago: float, boot_fraction: float = 0.95) -> str:
    """What the script prints for workers started `worker_ages` seconds ago and a config
    written `written_ago` seconds ago, on a host booted ~1000 s ago at `boot_fraction`
    of its second."""
    now = time.time()
    boot = int(now) - 1000 + boot_fraction
    proc = tmp_path / "proc"
    (proc / "1" / "task" / "1").mkdir(parents=True)
    (proc / "uptime").write_text(f"{now - boot:.2f} 1234.56\n")
    (proc / "stat").write_text(f"cpu  1 2 3 4\nbtime {int(boot)}\n")  # the kernel cuts it to a second
    pids = []
    for number, age in enumerate(worker_ages, start=100):
        (proc / str(number)).mkdir()
        fields = ["0"] * 52
        fields[0], fields[1], fields[21] = str(number), "(haproxy)", str(int((now - age - boot) * HZ))
        (proc / str(number) / "stat").write_text(" ".join(fields) + "\n")
        pids.append(str(number))
    (proc / "1" / "task" / "1" / "children").write_text(" ".join(pids) + " ")
    config = tmp_path / "haproxy.cfg"
    config.write_text("global\n")
    os.utime(config, (now - written_ago, now - written_ago))
    result = subprocess.run(
        ["bash", "-c", SCRIPT.read_text(), "gateway_loaded", str(config)],
        env={**os.environ, "GATEWAY_LOADED_PROC": str(proc)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize("boot_fraction", [0.05, 0.5, 0.95])
def test_a_worker_started_just_after_the_write_loaded_it(tmp_path, boot_fraction):
    # The reload 0.2 s after the write: what the planted break in tests/infra does.
    assert state(tmp_path, [5.0, 1.8], written_ago=2.0, boot_fraction=boot_fraction) == "loaded"


@pytest.mark.parametrize("boot_fraction", [0.05, 0.5, 0.95])
def test_a_worker_older_than_the_write_is_stale(tmp_path, boot_fraction):
    # The config touched after the newest worker started: a run stopped before its reload.
    assert state(tmp_path, [30.0, 1.5], written_ago=1.0, boot_fraction=boot_fraction) == "stale"


def test_only_the_newest_worker_counts(tmp_path):
    # An old worker still finishing its connections does not make a fresh reload stale.
    assert state(tmp_path, [600.0, 0.5], written_ago=3.0) == "loaded"


def test_no_worker_at_all_is_stale(tmp_path):
    assert state(tmp_path, [], written_ago=3.0) == "stale"
