"""The gateway keeps its engine through an outage of Docker's embedded DNS.

Docker's embedded DNS is dockerd's: while dockerd restarts (live-restore keeps the
containers running) the gateway's queries go unanswered, and when it is back its first
answers can say NXDOMAIN until the networks' records are restored. HAProxy takes a server
out of service ("going DOWN for maintenance (DNS NX status)") when an error answer comes
more than `hold <status>` after the last valid one: with the default 30 s hold for NX, a
dockerd that stayed away 40 s cost a tenant a burst of 503s (CI's run of d9308da: 7 of 431
requests in tests/multihost). The template's resolvers section holds every error status.

This runs the gateway image's HAProxy with the template's own `resolvers` section and
engine `server` options against a fake DNS and a fake engine on this machine: answers,
then silence longer than HAProxy's default hold, then NXDOMAIN, then answers again, while
a client calls through it. Every call must succeed. The planted break (the template
without `hold nx`, `TENANCY_GATEWAY_DNS_PLANTED=1`) must lose calls: docs/benchmarks.md.
"""

from __future__ import annotations

import http.server
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "tenant" / "templates" / "haproxy.cfg.j2"
PLANTED = os.environ.get("TENANCY_GATEWAY_DNS_PLANTED") == "1"
# HAProxy's default hold for an error status is 30 s: the silence must outlast it.
SILENCE = 35
NX = 8  # long enough for HAProxy to ask again after the silence (2 s was not)


class FakeDns:
    """Answers A queries for any name with 127.0.0.1 (AAAA: no records) while `mode` is
    "valid"; none at all while "silent"; NXDOMAIN while "nx". Counts NX answers sent."""

    def __init__(self) -> None:
        self.mode = "valid"
        self.nx_sent = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.mode == "silent":
                continue
            end = 12
            while data[end] != 0:
                end += data[end] + 1
            qtype = struct.unpack(">H", data[end + 1 : end + 3])[0]
            question = data[12 : end + 5]
            answer = b""
            if self.mode == "nx":
                flags = 0x8183
                self.nx_sent += 1
            else:
                flags = 0x8180
                if qtype == 1:
                    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 10, 4) + socket.inet_aton("127.0.0.1")
            header = data[:2] + struct.pack(">HHHHH", flags, 1, 1 if answer else 0, 0, 0)
            self.sock.sendto(header + question + answer, peer)


class Engine(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_config(dns_port: int, engine_port: int, listen: int) -> str:
    """The template's resolvers section (its nameserver pointed at the fake DNS) and its
    engine server's options, in a frontend that sends everything to that server."""
    text = TEMPLATE.read_text()
    resolvers = re.search(r"^resolvers docker\n(?:    .*\n)+", text, re.M)
    server = re.search(r"^backend engine\n(?:    .*\n)*?    server engine \{\{.*\}\} (.*)$", text, re.M)
    assert resolvers and server, "the template has no resolvers section or engine server"
    section, count = re.subn(r"nameserver dns \S+", f"nameserver dns 127.0.0.1:{dns_port}", resolvers.group(0))
    assert count == 1, section
    if PLANTED:
        section = re.sub(r"^    hold nx .*\n", "", section, flags=re.M)
    return (
        f"global\n    log stdout format raw local0 info\n{section}\n"
        "defaults\n    mode http\n    log global\n    timeout connect 5s\n"
        "    timeout client 30s\n    timeout server 30s\n"
        f"frontend tenant\n    bind 127.0.0.1:{listen}\n    default_backend engine\n"
        "backend engine\n    option httpchk GET /health\n"
        f"    server engine engine.test:{engine_port} {server.group(1)}\n"
    )


def gateway_image(client: docker.DockerClient) -> str:
    """The newest tenancy/gateway image: the one the images role built for this checkout."""
    images = client.images.list(name="tenancy/gateway")
    if not images:
        pytest.fail("no tenancy/gateway image: run `make images-export` (the images role) first")
    return max(images, key=lambda image: image.attrs["Created"]).tags[0]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[FakeDns, str, docker.models.containers.Container]]:
    dns = FakeDns()
    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    listen = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(gateway_config(dns.port, engine.server_address[1], listen))
    tmp_path.chmod(0o755)
    config.chmod(0o644)
    client = docker.from_env()
    container = client.containers.run(
        gateway_image(client),
        entrypoint=["haproxy", "-f", "/h.cfg", "-db"],
        network_mode="host",
        volumes={str(config): {"bind": "/h.cfg", "mode": "ro"}},
        detach=True,
        name=f"tenancy-test-gateway-dns-{os.getpid()}",
    )
    try:
        yield dns, f"http://127.0.0.1:{listen}/v1/models", container
    finally:
        container.remove(force=True)
        engine.shutdown()
        dns.sock.close()


def test_the_gateway_keeps_its_engine_through_a_dns_outage_and_nxdomain(gateway):
    dns, url, container = gateway
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, container.logs().decode()[-2000:]
        time.sleep(0.2)

    failed: list[tuple[str, float, int | str]] = []
    start = time.monotonic()
    for mode, seconds in (("valid", 3), ("silent", SILENCE), ("nx", NX), ("valid", 3)):
        dns.mode = mode
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                status: int | str = requests.get(url, timeout=10).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            if status != 200:
                failed.append((mode, round(time.monotonic() - start, 1), status))
            time.sleep(0.2)
    assert dns.nx_sent > 0, "HAProxy asked nothing while the fake DNS said NXDOMAIN: the check proved nothing"
    logs = "\n".join(line for line in container.logs().decode().splitlines() if "DNS" in line or "DOWN" in line)
    if PLANTED:
        assert failed, f"planted break (no hold nx): no call failed; HAProxy said:\n{logs}"
        print(f"planted break caught: {len(failed)} calls failed, first {failed[0]}, last {failed[-1]}\n{logs}")
        return
    assert not failed, f"{len(failed)} calls failed (phase, s, status): {failed[:5]} ... {failed[-2:]}\n{logs}"
