"""What the infra suite tests against: the inventory's plan and settings, and one
testinfra host (ansible backend) per inventory host. TENANCY_INVENTORY picks the
inventory (default inventory/local)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import secrets
import shlex
import socket
import ssl
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import checks
import testinfra
from docker_view import HostDocker
from gateway_probe import raw_status
from isolation import engine_address
from tenancy_inventory import (
    ROOT,
    ansible_bin,
    base_url,
    load_plan,
    role_defaults,
    run_ansible,
    tls_context,
    trust_bundle_ca,
)

INVENTORY = Path(os.environ.get("TENANCY_INVENTORY", ROOT / "inventory" / "local")).resolve()
# The tenants serve https only, under the inventory's bundle CA.
trust_bundle_ca(INVENTORY)
# testinfra's ansible backend calls ansible-inventory from PATH: use the project's own.
os.environ["PATH"] = f"{Path(ansible_bin('ansible-inventory')).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
ROLE_DEFAULTS = role_defaults("tenancy", "monitoring", "nvidia_mps", "tenant")


@cache
def plan() -> list[dict]:
    return [t for t in load_plan(INVENTORY) if t["state"] == "present"]


@cache
def host_vars(host: str) -> dict:
    """A host's inventory variables (group_vars included), as the playbooks see them."""
    return json.loads(run_ansible("ansible-inventory", "-i", INVENTORY, "--host", host, check=True).stdout)


def setting(host: str, name: str):
    """A tenant-role variable for a host: the inventory's value, else the role default."""
    return host_vars(host).get(name, ROLE_DEFAULTS[name])


@cache
def infra_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def tenant_ids() -> list[str]:
    return [t["name"] for t in plan()]


def tenant_pairs() -> list[tuple[str, str]]:
    return [(a, b) for a in tenant_ids() for b in tenant_ids() if a != b]


def docker_on(tenant: dict) -> HostDocker:
    return HostDocker(infra_host(tenant["host"]))


def data_dir(tenant: dict) -> str:
    return f"{setting(tenant['host'], 'tenant_data_dir')}/{tenant['name']}"


def expected_mounts(tenant: dict, role: str) -> dict[str, tuple[str, bool]]:
    """What the tenant's engine or gateway may mount, with this host's paths."""
    names = ("tenant_data_dir", "nvidia_mps_pipe_root")
    return checks.expected_mounts(tenant, role, {name: setting(tenant["host"], name) for name in names})


def model_exposure(tenant: dict, attrs: dict | None = None) -> list[str]:
    """What of another tenant's model the tenant's engine can read: the model store's
    mounts in its `docker inspect` (``attrs``, default the real engine's), and, for the
    real engine, each other tenant's model path tried from inside it (an engine the
    tenant's code controls sees exactly what that path gives)."""
    docker = docker_on(tenant)
    engine = tenant["names"]["engine"]
    others = [o for o in plan() if o["name"] != tenant["name"]]
    models_dir = setting(tenant["host"], "tenancy_models_dir")
    problems = checks.foreign_model_mounts(attrs or docker.container(engine), tenant, others, models_dir)
    if attrs is None:
        own = {m["source"] for m in tenant["model_mounts"]}
        for other in others:
            for mount in other["model_mounts"]:
                if mount["source"] not in own and docker.exec(engine, ["test", "-e", mount["target"]]) == 0:
                    problems.append(f"{other['name']}'s model {mount['target']} exists in the engine")
    return problems


def playbook_output(*args: str) -> str:
    """stdout + stderr of ansible-playbook against the inventory; fails on a non-zero exit."""
    result = run_ansible("ansible-playbook", "-i", INVENTORY, *args)
    if result.returncode != 0:
        raise AssertionError(f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-3000:]}")
    return result.stdout + result.stderr


def key_leaks_in_docker(docker: HostDocker, key: str) -> list[str]:
    """Where the key shows in `docker inspect` or the logs of any tenant's container."""
    problems = []
    for container in docker.containers("tenancy.tenant"):
        problems += checks.leaks(key, str(docker.container(container)), f"docker inspect {container}")
        problems += checks.leaks(key, docker.logs(container, tail=1000), f"docker logs {container}")
    return problems


def luks_problems(tenant: dict) -> list[str]:
    """Where encryption is on: the tenant's LUKS mapping is active and mounted on its data dir."""
    host = infra_host(tenant["host"])
    mapper = tenant["names"]["volume"]
    status = host.run("cryptsetup status %s", mapper).stdout
    source = host.run("findmnt --noheadings --output SOURCE --mountpoint %s", data_dir(tenant)).stdout
    return checks.luks_active(status, source, mapper)


# Run as uid/gid 65534 (nobody, no groups): what any local user without Docker rights gets.
AS_LOCAL_USER = "setpriv --reuid=65534 --regid=65534 --clear-groups --"
MODELS_PROBE = """
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}:8000/v1/models", timeout=3) as answer:
        print(answer.status, answer.read(4000).decode(errors="replace"))
except urllib.error.HTTPError as exc:
    print(exc.code, exc.reason)
except OSError as exc:
    print(0, exc)
"""


def internal_bridge(tenant: dict) -> tuple[str, str]:
    """The tenant's internal network's Linux bridge on its host, and the gateway address
    (with prefix) Docker reserved for it: `br-<id>` unless the network names its bridge."""
    network = docker_on(tenant).network(tenant["names"]["network"])
    bridge = (network.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{network['Id'][:12]}"
    (config,) = [c for c in network["IPAM"]["Config"] if ":" not in c["Subnet"]]
    return bridge, f"{config['Gateway']}/{config['Subnet'].split('/')[1]}"


def local_user_view(tenant: dict) -> list[str]:
    """What an unprivileged local user on the tenant's host gets from its engine, as the
    problems checks.engine_open_to_local_user finds (empty: nothing)."""
    host = infra_host(tenant["host"])
    address = engine_address(docker_on(tenant), tenant)
    route = host.check_output("ip -o route get %s", address)
    answer = host.check_output(f"{AS_LOCAL_USER} /usr/bin/python3 -c %s %s", MODELS_PROBE, address)
    status, _, body = answer.partition(" ")
    return checks.engine_open_to_local_user(tenant["name"], internal_bridge(tenant)[0], route, int(status), body)


def monitoring_hosts() -> list[str]:
    """The tenants' hosts that run Prometheus (tenancy_monitoring)."""
    return sorted({t["host"] for t in plan() if bool(setting(t["host"], "tenancy_monitoring"))})


LIFECYCLE_PROBE = """
import sys, urllib.error, urllib.request
for path in ("/-/quit", "/-/reload"):
    try:
        request = urllib.request.Request(f"http://{sys.argv[1]}{path}", method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            print(path, answer.status)
    except urllib.error.HTTPError as exc:
        print(path, exc.code)
    except OSError:
        print(path, 0)
"""


def lifecycle_statuses(host: str, address: str) -> dict[str, int]:
    """What POST /-/quit and /-/reload on Prometheus at `address` answer an unprivileged
    local user of `host` (0: no answer)."""
    out = infra_host(host).check_output(f"{AS_LOCAL_USER} /usr/bin/python3 -c %s %s", LIFECYCLE_PROBE, address)
    return {path: int(status) for path, status in (line.split() for line in out.splitlines())}


FREE_PORT = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
READY_PROBE = """
import sys, time, urllib.request
for _ in range(120):  # Prometheus opens its TSDB first: a few seconds
    try:
        urllib.request.urlopen(f"http://{sys.argv[1]}/-/ready", timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
"""


@contextlib.contextmanager
def prometheus_with_lifecycle(host: str) -> Iterator[str]:
    """A throwaway copy of the host's Prometheus (same image, user and config) started with
    --web.enable-lifecycle on a free loopback port: the planted break of
    test_local_user_cannot_stop_prometheus. Yields its address; removed afterwards."""
    docker = HostDocker(infra_host(host))
    real = docker.container(setting(host, "monitoring_container"))
    run = infra_host(host).run
    port = infra_host(host).check_output("/usr/bin/python3 -c %s", FREE_PORT)
    address = f"127.0.0.1:{port}"
    name = f"tenancy-planted-{uuid.uuid4().hex[:8]}"
    config = setting(host, "monitoring_config_dir")
    infra_host(host).run_expect(
        [0],
        "docker run -d --name %s --network host --user %s --tmpfs /prometheus:uid=65534 "
        "--mount type=bind,src=%s,dst=/etc/prometheus,readonly %s --config.file=/etc/prometheus/prometheus.yml "
        "--storage.tsdb.path=/prometheus --web.listen-address=%s --web.enable-lifecycle",
        name,
        real["Config"]["User"],
        config,
        real["Config"]["Image"],
        address,
    )
    try:
        infra_host(host).run_expect([0], f"{AS_LOCAL_USER} /usr/bin/python3 -c %s %s", READY_PROBE, address)
        yield address
    finally:
        run("docker rm -f %s", name)


@contextlib.contextmanager
def host_address_on_bridge(tenant: dict) -> Iterator[None]:
    """Give the host its address on the tenant's internal bridge back (what Docker does
    without inhibit_ipv4), for as long as the block runs: the planted break of
    test_local_user_cannot_reach_any_engine, and the way in for the breaks that point a
    check at the engine itself. The address is removed again, whatever happens."""
    host = infra_host(tenant["host"])
    bridge, address = internal_bridge(tenant)
    host.run_expect([0], "ip address add %s dev %s", address, bridge)
    try:
        yield
    finally:
        host.run_expect([0], "ip address del %s dev %s", address, bridge)


@contextlib.contextmanager
def engine_url(tenant: dict) -> Iterator[str]:
    """A URL of the tenant's engine itself (port 8000 on its internal network), for the
    planted breaks that point a check at the engine instead of the gateway. On the
    controller's own host that is the engine's address; on a remote host, an SSH tunnel
    through that host, with the inventory's own connection settings. The host has no
    route into the internal network (inhibit_ipv4), so one is made for the duration."""
    with host_address_on_bridge(tenant):
        yield from _engine_url(tenant)


def _engine_url(tenant: dict) -> Iterator[str]:
    address = engine_address(docker_on(tenant), tenant)
    variables = host_vars(tenant["host"])
    if variables.get("ansible_connection") == "local":
        yield f"http://{address}:8000"
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["ssh", "-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
    command += ["-L", f"127.0.0.1:{port}:{address}:8000"]
    if variables.get("ansible_ssh_private_key_file"):
        command += ["-i", variables["ansible_ssh_private_key_file"]]
    command += shlex.split(variables.get("ansible_ssh_common_args", ""))
    login = variables.get("ansible_host", tenant["host"])
    command.append(f"{variables['ansible_user']}@{login}" if variables.get("ansible_user") else login)
    tunnel = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if tunnel.poll() is not None:
                raise AssertionError(f"ssh tunnel to {tenant['host']} failed: {tunnel.stderr.read()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)


GATEWAY_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"  # roles/tenant/vars/main.yml


def gateway_config_state(tenant: dict) -> str:
    """ "loaded" or "stale": did the gateway's HAProxy load the config file it has now
    (the role's own check, roles/tenant/files/gateway_loaded.sh)."""
    script = (ROOT / "roles" / "tenant" / "files" / "gateway_loaded.sh").read_text()
    return infra_host(tenant["host"]).check_output(
        "docker exec %s bash -c %s gateway_loaded %s", tenant["names"]["gateway"], script, GATEWAY_CONFIG
    )


def reload_gateway(tenant: dict) -> None:
    """HAProxy's master-worker reload, the way the role does it; back once the new worker runs."""
    host = infra_host(tenant["host"])
    host.check_output("docker exec %s bash -c 'kill -USR2 1'", tenant["names"]["gateway"])
    for _ in range(50):
        time.sleep(0.2)
        if gateway_config_state(tenant).strip() == "loaded":
            return
    raise AssertionError(f"{tenant['names']['gateway']} did not load its config after a reload")


def ownership_view(tenant: dict) -> dict:
    """What tenant_ownership checks, as the host shows it: the engine's user (docker
    inspect), the files of the tenant's volume not owned by its uid and gid (find, on the
    volume's file system only, its lost+found aside: mkfs makes that root's), and the host
    account that holds the uid (getent passwd; empty when none does)."""
    host = infra_host(tenant["host"])
    path, uid = data_dir(tenant), tenant["uid"]
    strays = host.check_output(
        "find %s -xdev -path %s -prune -o \\( ! -uid %s -o ! -gid %s \\) -print",
        path,
        f"{path}/lost+found",
        str(uid),
        str(uid),
    )
    account = host.run("getent passwd %s", str(uid))
    return {
        "engine_user": docker_on(tenant).container(tenant["names"]["engine"])["Config"]["User"],
        "strays": strays.split(),
        "account": account.stdout.strip() if account.rc == 0 else "",
    }


def neighbour_users(tenants: dict, tenant: dict) -> dict[str, str]:
    """The engine users of the other tenants of the tenant's host, but its MPS GPU-mates."""

    def mates(other: dict) -> bool:
        return tenant["mode"] == other["mode"] == "mps" and tenant["gpu"] == other["gpu"]

    return {
        other["name"]: docker_on(other).container(other["names"]["engine"])["Config"]["User"]
        for other in tenants.values()
        if other["name"] != tenant["name"] and other["host"] == tenant["host"] and not mates(other)
    }


KEYS_MAP = "/usr/local/etc/haproxy/keys.map"  # roles/tenant/vars/main.yml
RUNTIME_API = "exec 3<>/dev/tcp/127.0.0.1/$0 && cat >&3 && cat <&3"  # as keys_sync.yml


def gateway_runtime(tenant: dict, command: str) -> str:
    """One command on the tenant's gateway's runtime API (inside its container, on its
    loopback), sent on stdin the way keys_sync.yml sends it; HAProxy's answer."""
    port = setting(tenant["host"], "tenant_gateway_admin_port")
    return infra_host(tenant["host"]).check_output(
        "printf '%%s\\n' %s | docker exec -i %s bash -c %s %s",
        command,
        tenant["names"]["gateway"],
        RUNTIME_API,
        str(port),
    )


def retired_key_statuses(tenant: dict, grace: int = 3) -> dict[str, int]:
    """Put three throwaway keys in the tenant's live key map as retired, the way a
    rotation with a grace period does (retired-<Unix time by the host's clock>): one
    expired a second ago, one with `grace` seconds left, one with an hour left. Return
    the status of GET /v1/models for each, and for the second again once its grace has
    passed by the host's clock (no playbook run in between). The entries are removed
    after (a later run would drop them too: they are not the tenant's).

    The key inside its grace must be asked before its grace ends, or its 401 says
    nothing. On a loaded machine (CI's two cores under the VM and multi-host jobs) the
    SSH round trips before that request took more than 3 s once. So the host's clock is
    read again right after the answer. If the grace had already ended by then, the round
    is inconclusive and is repeated with twice the grace, up to 4 rounds (3, 6, 12, 24 s)."""
    host = infra_host(tenant["host"])
    for _ in range(4):
        statuses, in_time = _retired_key_round(tenant, host, grace)
        if in_time:
            return statuses
        grace *= 2
    return statuses


def _retired_key_round(tenant: dict, host, grace: int) -> tuple[dict[str, int], bool]:
    """One round of retired_key_statuses: (the statuses, whether the key inside its grace
    was answered before its grace ended by the host's clock)."""
    keys = {name: secrets.token_urlsafe(32) for name in ("expired", "control", "ending")}
    hashes = {name: hashlib.sha256(key.encode()).hexdigest() for name, key in keys.items()}
    url = base_url(tenant)

    def add(name: str, expiry: int) -> None:
        answer = gateway_runtime(tenant, f"add map {KEYS_MAP} {hashes[name]} retired-{expiry}")
        assert answer.strip() == "", f"add map on {tenant['names']['gateway']}: {answer}"

    try:
        now = int(host.check_output("date +%s"))
        add("expired", now - 1)
        add("control", now + 3600)
        # The ending key last, its time read just before, and asked first.
        ending = int(host.check_output("date +%s")) + grace
        add("ending", ending)
        statuses = {"ending": raw_status(url, "/v1/models", keys["ending"])}
        in_time = int(host.check_output("date +%s")) < ending
        statuses |= {name: raw_status(url, "/v1/models", keys[name]) for name in ("expired", "control")}
        # Wait on the host's clock, the one the gateway reads, not on this machine's.
        for _ in range(4 * (grace + 5)):
            if int(host.check_output("date +%s")) >= ending:
                break
            time.sleep(0.25)
        statuses["ending_after"] = raw_status(url, "/v1/models", keys["ending"])
    finally:
        for name in hashes:
            gateway_runtime(tenant, f"del map {KEYS_MAP} {hashes[name]}")
    return statuses, in_time


def flood_refused(tenant: dict, count: int = 2000) -> tuple[int, int, float]:
    """Send `count` requests with a bad key to the tenant's port on one keep-alive
    connection, as fast as one client can; return (log lines they left in the gateway's
    log, requests refused with 401, seconds the flood took). The path carries a marker,
    so only this flood's lines are counted."""
    marker = f"flood-{uuid.uuid4().hex}"
    url = urllib.parse.urlsplit(base_url(tenant))
    # The log bound counts requests over the last second: a test just before may have
    # left it above the cap, and then (by design) not even the flood's first lines
    # would be logged. Start from a quiet gateway.
    time.sleep(1.5)
    connection = http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=tls_context(INVENTORY))
    refused, started = 0, time.monotonic()
    for _ in range(count):
        connection.request("GET", f"/v1/{marker}", headers={"Authorization": "Bearer not-a-key"})
        response = connection.getresponse()
        response.read()
        refused += response.status == 401
    seconds = time.monotonic() - started
    connection.close()
    time.sleep(1)  # Docker's log pipeline
    host = infra_host(tenant["host"])
    logged = host.run("docker logs --since 10m %s 2>&1 | grep -c %s", tenant["names"]["gateway"], marker).stdout
    return int(logged.strip() or 0), refused, seconds


def wire_view(tenant: dict) -> dict:
    """The tenant's port as a client on the network sees it, from this machine (over the
    network to a remote host): what a plain HTTP request gets back before the port closes
    (or 5 s), and the TLS version of a handshake that trusts only the inventory's bundle
    CA and checks the endpoint's name (or why it failed)."""
    url = urllib.parse.urlsplit(base_url(tenant))
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: tenant\r\nConnection: close\r\n\r\n")
        plain = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(4096):
                plain += chunk
    try:
        with (
            socket.create_connection((url.hostname, url.port), timeout=5) as sock,
            tls_context(INVENTORY).wrap_socket(sock, server_hostname=url.hostname) as tls,
        ):
            version = tls.version() or "none"
    except (ssl.SSLError, OSError) as error:
        version = f"{type(error).__name__}: {error}"
    return {"plain": plain, "tls": version}
