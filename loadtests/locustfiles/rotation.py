"""Scenario `rotation`: a tenant's API key, then its gateway certificate, are rotated
under load and no request fails.

Keep-alive users send chats all through `playbooks/rotate-keys.yml -e tenant=<t>`,
re-reading the tenant's key file every ROTATION_KEY_REFRESH_S seconds, the way a client
picks up a rotated key. Rotation is the real flow: the gateway accepts old and new key
side by side, the key file switches atomically, and the old key goes after a drain
(tenant_rotate_drain_seconds). Then `playbooks/tenant-cert.yml -e tenant=<t>` swaps the
gateway's certificate through HAProxy's runtime API while half the users keep their TLS
connections open and the other half make a new handshake for every request
(Connection: close). The run starts the first playbook after ROTATION_DELAY_S and stops
ROTATION_TAIL_S after the second finished. The inventory's key file and the tenant's
certificate end up rotated.

Settings and thresholds (environment variables):
  ROTATION_TENANT          default: the plan's first present tenant
  ROTATION_KEY_REFRESH_S   how often users re-read the key file (default 1)
  ROTATION_DELAY_S / ROTATION_TAIL_S   load before / after the playbook (default 5 / 5)
  ROTATION_MIN_REQUESTS    fewest requests for a meaningful run (default 20)
Enforced: both playbooks succeeded, the key changed, the gateway serves a certificate
with a new serial, no request failed, and afterwards the old key gets 401 and the new
one 200.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import gevent
import requests
from cryptography import x509
from locust import constant_throughput, events
from openai_user import INVENTORY, TenantUser, bind, scenario_tenants
from report import enforce, env_float, tenant_rows, write_tenant_csv
from tenancy_inventory import api_key, base_url, run_ansible, tls_context

(TENANT,) = scenario_tenants("rotation", "ROTATION_TENANT")
DELAY_S = env_float("ROTATION_DELAY_S", 5)
TAIL_S = env_float("ROTATION_TAIL_S", 5)
MIN_REQUESTS = env_float("ROTATION_MIN_REQUESTS", 20)
rotation: dict[str, object] = {}


class RotatingKeyUser(TenantUser):
    abstract = True
    tasks: ClassVar[list] = [TenantUser.chat, TenantUser.completion]


class HandshakingUser(RotatingKeyUser):
    """A new TCP connection and TLS handshake for every request."""

    abstract = True

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "Connection": "close"}


# 4 users x 2 req/s stay below the demo's rpm_limit of 600: half keep their connections,
# half make a new one each time.
Rotating = bind(
    RotatingKeyUser,
    TENANT,
    wait_time=constant_throughput(2),
    key_refresh_s=env_float("ROTATION_KEY_REFRESH_S", 1.0),
)
Handshaking = bind(
    HandshakingUser,
    TENANT,
    wait_time=constant_throughput(2),
    key_refresh_s=env_float("ROTATION_KEY_REFRESH_S", 1.0),
)


def served_serial() -> int:
    """The serial of the certificate the tenant's gateway serves now (a new handshake)."""
    url = urlsplit(base_url(TENANT))
    with (
        socket.create_connection((url.hostname, url.port), timeout=10) as sock,
        tls_context(INVENTORY).wrap_socket(sock, server_hostname=url.hostname) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def rotate(environment) -> None:
    gevent.sleep(DELAY_S)
    rotation["old_key"] = api_key(INVENTORY, TENANT["name"])
    started = time.monotonic()
    result = run_ansible(
        "ansible-playbook", "-i", INVENTORY, "playbooks/rotate-keys.yml", "-e", f"tenant={TENANT['name']}"
    )
    rotation.update(rc=result.returncode, seconds=time.monotonic() - started, output=result.stdout[-3000:])
    gevent.sleep(DELAY_S)
    rotation["old_serial"] = served_serial()
    started = time.monotonic()
    result = run_ansible(
        "ansible-playbook", "-i", INVENTORY, "playbooks/tenant-cert.yml", "-e", f"tenant={TENANT['name']}"
    )
    rotation.update(cert_rc=result.returncode, cert_seconds=time.monotonic() - started)
    rotation["cert_output"] = result.stdout[-3000:]
    rotation["new_serial"] = served_serial()
    gevent.sleep(TAIL_S)
    environment.runner.quit()


@events.test_start.add_listener
def start_rotation(environment, **_kwargs) -> None:
    gevent.spawn(rotate, environment)


def status_with(key: str) -> int:
    return requests.get(
        f"{base_url(TENANT)}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).status_code


@events.quitting.add_listener
def enforce_thresholds(environment, **_kwargs) -> None:
    stats = environment.stats.total
    problems = []
    if "rc" not in rotation:
        problems.append("the rotation did not run to its end (run time too short?)")
    elif rotation["rc"] != 0:
        problems.append(f"rotate-keys.yml failed (rc {rotation['rc']}):\n{rotation['output']}")
    if rotation.get("cert_rc") not in (None, 0):
        problems.append(f"tenant-cert.yml failed (rc {rotation['cert_rc']}):\n{rotation['cert_output']}")
    elif "cert_rc" in rotation and rotation["new_serial"] == rotation["old_serial"]:
        problems.append(f"the gateway still serves the certificate with serial {rotation['old_serial']:X}")
    new_key = Path(Rotating.key_path).read_text().strip()
    old_key = str(rotation.get("old_key", new_key))
    if new_key == old_key:
        problems.append("the key file still holds the old key")
    else:
        old_status, new_status = status_with(old_key), status_with(new_key)
        if (old_status, new_status) != (401, 200):
            problems.append(f"after rotation: old key -> {old_status} (want 401), new key -> {new_status} (want 200)")
    if stats.num_requests < MIN_REQUESTS:
        problems.append(f"only {stats.num_requests} requests (< {MIN_REQUESTS:.0f})")
    if stats.num_failures:
        problems.append(f"{stats.num_failures} of {stats.num_requests} requests failed during the rotation")
    write_tenant_csv(environment, tenant_rows(environment.stats, [TENANT["name"]]))
    enforce(
        environment,
        "rotation",
        problems,
        f"{stats.num_requests} requests to {TENANT['name']}, {stats.num_failures} failed; rotate-keys.yml took "
        f"{float(rotation.get('seconds', 0)):.1f} s (rc {rotation.get('rc')}), tenant-cert.yml "
        f"{float(rotation.get('cert_seconds', 0)):.1f} s (rc {rotation.get('cert_rc')})",
    )
