"""What the multi-host suite tests against: inventory/multihost (or TENANCY_INVENTORY),
its plan, and each host reached the way the playbooks reach it (Ansible over SSH)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from functools import cache
from pathlib import Path

import testinfra
import yaml
from tenancy_inventory import ROOT, ansible_bin, load_plan, run_ansible, trust_bundle_ca

# testinfra's ansible backend calls ansible-inventory from PATH: use the project's own.
os.environ["PATH"] = f"{Path(ansible_bin('ansible-inventory')).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))

INVENTORY = Path(os.environ.get("TENANCY_INVENTORY", ROOT / "inventory" / "multihost")).resolve()
# The tenants serve https only, under the inventory's bundle CA.
trust_bundle_ca(INVENTORY)
TEST_HOSTS = yaml.safe_load((ROOT / "tests" / "multihost" / "hosts.yml").read_text())
STATE_DIR = ROOT / ".multihost"


def hosts_are_up() -> bool:
    """up.yml has run: the controller has the hosts' keys."""
    return (STATE_DIR / "ssh" / "known_hosts").exists()


@cache
def plan() -> list[dict]:
    return [t for t in load_plan(INVENTORY) if t["state"] == "present"]


def playbook(name: str, *extra: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    path = ROOT / name if name == "site.yml" else ROOT / "playbooks" / name
    return run_ansible("ansible-playbook", "-i", INVENTORY, path, *extra, timeout=timeout)


@cache
def infra_host(name: str):
    """testinfra over Ansible: the inventory's own SSH connection and become settings."""
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def on_host(host: str, *argv: str) -> str:
    """Run a command (as root: mh2 through sudo) on an inventory host; its stdout.
    Fails the test on a non-zero exit."""
    return infra_host(host).check_output(" ".join(shlex.quote(a) for a in argv))


def ssh_as_login_user(host: str, *argv: str) -> str:
    """Run a command over plain ssh as the host's login user (no sudo), the way an
    operator's shell reaches it; its stdout."""
    spec = next(h for h in TEST_HOSTS["multihost_hosts"] if h["name"] == host)
    command = [
        "ssh", "-i", str(STATE_DIR / "ssh" / "id_ed25519"),
        "-o", f"UserKnownHostsFile={STATE_DIR / 'ssh' / 'known_hosts'}", "-o", "BatchMode=yes",
        f"{spec['user']}@{spec['address']}", *argv,
    ]  # fmt: skip
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


def manually_stopped(host: str, container: str) -> bool:
    """Docker's own record (config.v2.json; `docker inspect` does not show it) that the
    container was stopped by hand: any `docker kill`, even of a signal it survives, sets
    it, and an unless-stopped container so marked stays down after dockerd restarts."""
    root = on_host(host, "docker", "info", "--format", "{{.DockerRootDir}}").strip()
    container_id = on_host(host, "docker", "inspect", "--format", "{{.Id}}", container).strip()
    config = json.loads(on_host(host, "cat", f"{root}/containers/{container_id}/config.v2.json"))
    return bool(config["HasBeenManuallyStopped"])


def containers_on(host: str) -> dict[str, str]:
    """Name -> StartedAt of every tenant container in the host's own Docker engine."""
    names = on_host(host, "docker", "ps", "--all", "--filter", "label=tenancy.tenant", "--format", "{{.Names}}")
    if not names.strip():
        return {}
    started = on_host(host, "docker", "inspect", "--format", "{{.Name}} {{.State.StartedAt}}", *names.split())
    return dict(line.lstrip("/").split(" ", 1) for line in started.splitlines() if line.strip())
