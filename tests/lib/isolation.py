"""The network isolation probe, kept apart from the tests so that the planted-break
checks (tests/e2e and tests/infra/plant_breaks.py) can prove it catches a break.

Every function takes a docker SDK client (e2e) or a docker_view.DockerView (infra)."""

from __future__ import annotations

import docker
from docker_view import DockerView, view

PROBE = """
import socket, sys
target, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((target, port), timeout=3).close()
except OSError as exc:
    print(f"blocked: {exc}")
    sys.exit(1)
print("connected")
"""


def engine_address(client: docker.DockerClient | DockerView, tenant: dict) -> str:
    """The engine's IP on its tenant's own network."""
    networks = view(client).container(tenant["names"]["engine"])["NetworkSettings"]["Networks"]
    return networks[tenant["names"]["network"]]["IPAddress"]


def can_connect(client: docker.DockerClient | DockerView, source: str, target: str, port: int = 8000) -> bool:
    """True when `source` (a running container with python3) can open TCP to target:port."""
    return view(client).exec(source, ["python3", "-c", PROBE, target, str(port)]) == 0


def reachable_peers(client: docker.DockerClient | DockerView, tenants: dict[str, dict]) -> list[str]:
    """Every (source engine -> target engine) pair that can connect, by name or by IP. Empty is good."""
    breaches = []
    for source in tenants.values():
        for target in tenants.values():
            if source["name"] == target["name"]:
                continue
            breaches.extend(pair_breaches(client, source, target))
    return breaches


def pair_breaches(client: docker.DockerClient | DockerView, source: dict, target: dict) -> list[str]:
    """How `source`'s engine reaches `target`'s engine (by name, by IP); empty is good."""
    engine = target["names"]["engine"]
    return [
        f"{source['name']} -> {target['name']} ({address})"
        for address in (engine, engine_address(client, target))
        if can_connect(client, source["names"]["engine"], address)
    ]
