"""The network isolation probe, kept apart from the tests so that the planted-break
checks (tests/infra/plant_breaks.py) can prove it catches a break.

Every function takes a docker SDK client or a docker_view.DockerView (tests/infra)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

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


def pair_breaches(
    client: docker.DockerClient | DockerView,
    source: dict,
    target: dict,
    target_client: docker.DockerClient | DockerView | None = None,
) -> list[str]:
    """How `source`'s engine reaches `target`'s engine; empty is good.

    Same host: by the engine's name and by its IP. Target on another host (its own
    Docker, `target_client`): by name, by the target engine's IP (unless that IP falls in
    the source engine's own subnet, where it names a container of the source's host), and
    by the target host's address at the tenant's published port and at the engine port."""
    engine = target["names"]["engine"]
    addresses: list[tuple[str, int]] = [(engine, 8000)]
    target_ip = engine_address(target_client or client, target)
    if target_client is None or source.get("host") == target.get("host"):
        addresses.append((target_ip, 8000))
    else:
        if not in_own_subnet(client, source, target_ip):
            addresses.append((target_ip, 8000))
        host_address = urlsplit(target["endpoint"]).hostname
        addresses += [(host_address, target["port"]), (host_address, 8000)]
    return [
        f"{source['name']} -> {target['name']} ({address}:{port})"
        for address, port in addresses
        if can_connect(client, source["names"]["engine"], address, port)
    ]


def in_own_subnet(client: docker.DockerClient | DockerView, tenant: dict, address: str) -> bool:
    """True when `address` lies in the subnet of the tenant's own internal network."""
    network = view(client).network(tenant["names"]["network"])
    subnets = [c.get("Subnet") for c in (network.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
    return any(ipaddress.ip_address(address) in ipaddress.ip_network(subnet) for subnet in subnets)
