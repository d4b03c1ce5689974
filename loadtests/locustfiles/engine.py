"""What the scenarios need to see behind a gateway: the engine's own request counters
and its container state. /metrics is never published; like playbooks/tasks/
list_tenant.yml, it is read from inside the tenant's gateway over its internal network."""

from __future__ import annotations

import docker

METRICS_READ = (
    "exec 3<>/dev/tcp/{engine}/8000 && printf 'GET /metrics HTTP/1.0\\r\\nHost: engine\\r\\n\\r\\n' >&3 && cat <&3"
)


def engine_metrics(tenant: dict, client: docker.DockerClient | None = None) -> str:
    """The engine's Prometheus text, read through its gateway container."""
    client = client or docker.from_env()
    gateway = client.containers.get(tenant["names"]["gateway"])
    exit_code, output = gateway.exec_run(["bash", "-c", METRICS_READ.format(engine=tenant["names"]["engine"])])
    if exit_code != 0:
        raise RuntimeError(f"{tenant['name']}: cannot read the engine's /metrics (exit {exit_code}): {output[:200]!r}")
    return output.decode(errors="replace")


def counter_total(metrics: str, name: str) -> float:
    """Sum of a counter over all its label sets (e.g. every finished_reason)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[-1])
    return total


def requests_served(tenant: dict, client: docker.DockerClient | None = None) -> float:
    """vllm:request_success_total: requests the engine finished, whatever their finish reason."""
    return counter_total(engine_metrics(tenant, client), "vllm:request_success_total")


def container_state(name: str, client: docker.DockerClient | None = None) -> tuple[str, str, int]:
    """(status, health, restart count) of a container."""
    attrs = (client or docker.from_env()).containers.get(name).attrs
    state = attrs["State"]
    return state["Status"], state.get("Health", {}).get("Status", "none"), attrs["RestartCount"]
