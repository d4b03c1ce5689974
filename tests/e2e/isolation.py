"""The network isolation probe, kept apart from the tests so that one test can prove
it catches a planted break."""

from __future__ import annotations

import docker

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


def engine_address(client: docker.DockerClient, tenant: dict) -> str:
    """The engine's IP on its tenant's own network."""
    networks = client.containers.get(tenant["names"]["engine"]).attrs["NetworkSettings"]["Networks"]
    return networks[tenant["names"]["network"]]["IPAddress"]


def can_connect(client: docker.DockerClient, source: str, target: str, port: int = 8000) -> bool:
    """True when `source` (a running container with python3) can open TCP to target:port."""
    exit_code, _ = client.containers.get(source).exec_run(["python3", "-c", PROBE, target, str(port)])
    return exit_code == 0


def reachable_peers(client: docker.DockerClient, tenants: dict[str, dict]) -> list[str]:
    """Every (source engine -> target engine) pair that can connect, by name or by IP. Empty is good."""
    breaches = []
    for source in tenants.values():
        for target in tenants.values():
            if source["name"] == target["name"]:
                continue
            engine = target["names"]["engine"]
            for address in (engine, engine_address(client, target)):
                if can_connect(client, source["names"]["engine"], address):
                    breaches.append(f"{source['name']} -> {target['name']} ({address})")
    return breaches
