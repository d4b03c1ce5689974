"""One way to look at Docker objects, whether the daemon is local (the docker SDK, as in
the e2e suite) or on an inventory host (testinfra's host.run + the docker CLI). Both give
`docker inspect`'s JSON, which is what the SDK's `.attrs` holds, so checks are written once."""

from __future__ import annotations

import json
from typing import Protocol

import docker


class DockerView(Protocol):
    def container(self, name: str) -> dict: ...
    def network(self, name: str) -> dict: ...
    def exec(self, container: str, argv: list[str]) -> int: ...
    def logs(self, container: str, tail: int = 50) -> str: ...
    def containers(self, label: str) -> list[str]: ...


class SdkDocker:
    """The local daemon through the docker SDK."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def container(self, name: str) -> dict:
        return self.client.containers.get(name).attrs

    def network(self, name: str) -> dict:
        return self.client.networks.get(name).attrs

    def exec(self, container: str, argv: list[str]) -> int:
        return self.client.containers.get(container).exec_run(argv)[0]

    def logs(self, container: str, tail: int = 50) -> str:
        return self.client.containers.get(container).logs(tail=tail).decode(errors="replace")

    def containers(self, label: str) -> list[str]:
        return [c.name for c in self.client.containers.list(all=True, filters={"label": label})]


class HostDocker:
    """The daemon of a testinfra host (any backend: local, ssh, ansible)."""

    def __init__(self, host) -> None:
        self.host = host

    def container(self, name: str) -> dict:
        return json.loads(self.host.check_output("docker container inspect %s", name))[0]

    def network(self, name: str) -> dict:
        return json.loads(self.host.check_output("docker network inspect %s", name))[0]

    def exec(self, container: str, argv: list[str]) -> int:
        return self.host.run("docker exec %s " + " ".join(["%s"] * len(argv)), container, *argv).rc

    def logs(self, container: str, tail: int = 50) -> str:
        result = self.host.run("docker logs --tail %s %s", str(tail), container)
        return result.stdout + result.stderr

    def containers(self, label: str) -> list[str]:
        return self.host.check_output("docker ps -a --filter label=%s --format '{{.Names}}'", label).split()


def view(client: docker.DockerClient | DockerView) -> DockerView:
    """Accept either a docker SDK client (e2e) or a ready view (infra)."""
    return SdkDocker(client) if isinstance(client, docker.DockerClient) else client
