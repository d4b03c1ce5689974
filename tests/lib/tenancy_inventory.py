"""The bundle's test and tooling library: read the plan and the API keys of an
inventory, run Ansible from the project's virtualenv, run the usage report. Shared by
the smoke check, the benchmarks, the load tests and every test suite, so all of them
address the tenants exactly the way the playbooks deployed them.

It lives with the other shared test code in tests/lib/; `make venv` puts that directory
on the virtualenv's path (a .pth file), so `.venv/bin/python scripts/...`, the load
tests and pytest import it without editing sys.path."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def ansible_bin(name: str) -> str:
    """The tool from the project's virtualenv when there is one, else from PATH."""
    candidate = ROOT / ".venv" / "bin" / name
    return str(candidate) if candidate.exists() else name


def run_ansible(
    tool: str, *args: str | os.PathLike[str], check: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an Ansible command-line tool (ansible-playbook, ansible-inventory) the way the
    Makefile does: from the repository root, with its ansible.cfg, colours off, output
    captured as text. With check=True a non-zero exit raises CalledProcessError."""
    return subprocess.run(
        [ansible_bin(tool), *map(str, args)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=check,
        timeout=timeout,
        env={**_without_trust(os.environ), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )


def run_usage_report(
    inventory: str | os.PathLike[str], started: float, end: float, output: Path, chart: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """playbooks/tenants-usage.yml as JSON into `output` (and its chart into `chart`), from
    just before `started` to `end`. The end is given, not the playbook's own "now", which
    comes seconds later and would move the start past the first requests. The chart goes
    beside `output` unless `chart` says where."""
    extra = ["-e", f"usage_chart={chart if chart is not None else Path(output).with_suffix('.svg')}"]
    return run_ansible(
        "ansible-playbook",
        "-i",
        inventory,
        ROOT / "playbooks" / "tenants-usage.yml",
        "-e",
        f"since={int(end - started) + 1}s",
        "-e",
        f"end={end}",
        "-e",
        "output=json",
        "-e",
        f"usage_output={output}",
        *extra,
        timeout=300,
    )


def role_defaults(*roles: str) -> dict:
    """The roles' defaults/main.yml merged (a later role's value wins): what a role uses
    where the inventory sets nothing."""
    merged: dict = {}
    for role in roles:
        merged.update(yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {})
    return merged


def load_plan(inventory: str | os.PathLike[str], extra_args: list[str] | None = None) -> list[dict]:
    """Run playbooks/plan.yml (which changes nothing) and return its JSON plan.
    Raises RuntimeError with the playbook's own message when planning fails."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "plan.json"
        result = run_ansible(
            "ansible-playbook",
            "-i",
            inventory,
            ROOT / "playbooks" / "plan.yml",
            "-e",
            f"plan_output={output}",
            *(extra_args or []),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"playbooks/plan.yml failed for {inventory}:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"
            )
        return json.loads(output.read_text())


def key_file(inventory: str | os.PathLike[str], tenant: str) -> Path:
    """Where the controller keeps a tenant's API key (see roles/tenant credentials.yml)."""
    inventory = Path(inventory)
    directory = inventory if inventory.is_dir() else inventory.parent
    return (directory / "credentials" / f"{tenant}.api_key").resolve()


def api_key(inventory: str | os.PathLike[str], tenant: str) -> str:
    return key_file(inventory, tenant).read_text().strip()


# The variables Python's TLS clients read a trusted CA file from: requests, and httpx
# (the openai SDK) with OpenSSL's own SSL_CERT_FILE.
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def ca_file(inventory: str | os.PathLike[str]) -> Path:
    """The bundle CA's certificate that the inventory's clients trust (roles/tenant
    tls_ca.yml), next to the API key files."""
    return key_file(inventory, "tenancy-ca").with_name("tenancy-ca.crt")


def trust_bundle_ca(inventory: str | os.PathLike[str]) -> Path:
    """Make this process's HTTPS clients (requests, the openai SDK, urllib through
    tls_context) trust the inventory's bundle CA and only it, the way the README tells a
    user to: SSL_CERT_FILE and REQUESTS_CA_BUNDLE. Certificates and host names are still
    checked; nothing turns verification off. Returns the CA file."""
    path = ca_file(inventory)
    for variable in TRUST_VARIABLES:
        os.environ[variable] = str(path)
    return path


def tls_context(inventory: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client context that trusts the inventory's bundle CA (raw sockets, urllib)."""
    return ssl.create_default_context(cafile=str(ca_file(inventory)))


def _without_trust(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The environment for a child process, less trust_bundle_ca's variables: a
    playbook's own downloads (packages, images) keep the system's CAs."""
    return {k: v for k, v in environ.items() if k not in TRUST_VARIABLES}


def base_url(tenant: dict) -> str:
    """The tenant's gateway as seen from this machine: the plan's endpoint (the host's
    address for a port published on 0.0.0.0), without its /v1."""
    if tenant.get("endpoint"):
        return tenant["endpoint"].removesuffix("/v1")
    address = tenant["bind_address"]
    if address == "0.0.0.0":
        address = "127.0.0.1" if tenant["host"] in ("localhost", "127.0.0.1") else tenant["host"]
    return f"https://{address}:{tenant['port']}"


def recap_changed(output: str) -> dict[str, int]:
    """changed=N per host from an ansible-playbook PLAY RECAP."""
    return {host: int(n) for host, n in re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)}
