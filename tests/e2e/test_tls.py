"""TLS at each tenant's gateway, tried as an attacker on the wire would: a client that
speaks plain HTTP, an old protocol or a weak cipher, a client that asks for another
name, a sniffer between a client and the gateway, and a local user after the keys.
Each check that could pass for the wrong reason is shown once to catch its planted
break (a plain-HTTP port, a sniffer on a plaintext exchange)."""

from __future__ import annotations

import contextlib
import http.server
import json
import secrets
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest
import requests
from cryptography import x509
from helpers import TENANT_DEFAULTS, run_site
from tenancy_inventory import ROOT, api_key, base_url, ca_file, key_file, run_ansible, tls_context

# Run as uid/gid 65534 (nobody, no groups): any local user without Docker rights.
PROMETHEUS = "http://127.0.0.1:9090"
AS_LOCAL_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def address(tenant: dict) -> tuple[str, int]:
    url = urlsplit(base_url(tenant))
    return url.hostname, url.port


def plain_answer(host: str, port: int) -> bytes:
    """What a port sends back to a plain HTTP request, up to its close (or 5 s)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: tenant\r\nConnection: close\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def handshake(tenant: dict, context: ssl.SSLContext, name: str | None = None) -> ssl.SSLSocket:
    host, port = address(tenant)
    sock = socket.create_connection((host, port), timeout=10)
    try:
        return context.wrap_socket(sock, server_hostname=name or host)
    except BaseException:
        sock.close()
        raise


def test_the_tenant_port_answers_no_plain_http(tenants):
    """A client that speaks plain HTTP to a tenant's port gets no HTTP answer at all,
    so no key or prompt it sends is ever answered in the clear. The same probe on a
    port that does speak HTTP (the operator's metrics port, on the loopback) gets one:
    the probe can tell the two apart."""
    for tenant in tenants.values():
        answer = plain_answer(*address(tenant))
        assert not answer.startswith(b"HTTP/"), f"{tenant['name']}: plain HTTP answered: {answer[:200]!r}"
    control = plain_answer("127.0.0.1", next(iter(tenants.values()))["metrics_port"])
    assert control.startswith(b"HTTP/1."), control[:200]


def test_only_tls_1_2_and_1_3_with_forward_secret_aead_ciphers(tenants, inventory):
    for tenant in tenants.values():
        modern = tls_context(inventory)
        modern.set_alpn_protocols(["h2", "http/1.1"])
        with handshake(tenant, modern) as tls:
            assert tls.version() == "TLSv1.3"
            assert tls.selected_alpn_protocol() == "http/1.1"
        tls12 = tls_context(inventory)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with handshake(tenant, tls12) as tls:
            cipher = tls.cipher()[0]
            assert tls.version() == "TLSv1.2"
            assert cipher.startswith("ECDHE-ECDSA-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher
        # TLS 1.1, offered by a client that allows it (security level 0): the gateway
        # itself refuses, with a protocol_version alert.
        old = tls_context(inventory)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with pytest.warns(DeprecationWarning):
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
            handshake(tenant, old)
        # A TLS 1.2 cipher without AEAD (CBC with SHA-256): refused with handshake_failure.
        cbc = tls_context(inventory)
        cbc.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA256")
        with pytest.raises(ssl.SSLError, match="ALERT_HANDSHAKE_FAILURE"):
            handshake(tenant, cbc)


def san_list(certificate: dict) -> list[str]:
    kinds = {"DNS": "DNS", "IP Address": "IP"}
    return [f"{kinds[kind]}:{value}" for kind, value in certificate.get("subjectAltName", ())]


def test_the_certificate_is_the_bundle_cas_for_the_planned_names(tenants, inventory):
    """Each gateway's certificate chains to the bundle CA and holds exactly the plan's
    tls_sans; a client that asks for any other name is refused (names are checked)."""
    for tenant in tenants.values():
        with handshake(tenant, tls_context(inventory)) as tls:
            certificate = tls.getpeercert()
        assert san_list(certificate) == tenant["tls_sans"], (tenant["name"], certificate)
        assert dict(pair[0] for pair in certificate["subject"])["commonName"] == tenant["name"]
        with pytest.raises(ssl.SSLCertVerificationError, match="match"):
            handshake(tenant, tls_context(inventory), name="not-this-tenant.example")
        # A client that does not trust the bundle CA (here: no CA at all) is refused too.
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(tenant, ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


class Relay:
    """A TCP relay on the path between a client and a server, keeping every byte that
    crosses it either way: what a sniffer on the wire sees."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                with self.lock:
                    self.seen += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=60)
            for source, sink in ((client, server), (server, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()
                self.threads.append(thread)

    def __enter__(self) -> Relay:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=10)


def leaks(seen: bytes, secrets_sent: dict[str, str]) -> list[str]:
    """Which of the secrets a sniffer's bytes hold in the clear."""
    return [name for name, value in secrets_sent.items() if value.encode() in seen]


def test_a_sniffer_on_the_path_sees_no_key_prompt_or_answer(tenants, inventory):
    """A chat through a relay that records both directions: the request works, and the
    recorded bytes hold neither the API key, the prompt, the answer nor any HTTP."""
    tenant = tenants["companyA"]
    key, marker = api_key(inventory, "companyA"), f"prompt-{secrets.token_hex(8)}"
    with Relay(address(tenant)) as relay:
        client = openai.OpenAI(
            base_url=f"https://{address(tenant)[0]}:{relay.port}/v1", api_key=key, max_retries=0, timeout=60
        )
        answer = client.chat.completions.create(
            model=tenant["served_model_name"], messages=[{"role": "user", "content": marker}], max_tokens=8
        )
        client.close()
    assert answer.choices[0].message.content is not None
    seen = bytes(relay.seen)
    assert len(seen) > 2000, f"the exchange did not go through the relay ({len(seen)} bytes)"
    sent = {"key": key, "prompt": marker, "answer id": answer.id, "request line": "POST /v1/", "JSON": '"model"'}
    assert leaks(seen, sent) == [], f"readable on the wire: {leaks(seen, sent)}"


def test_the_sniffer_reads_what_crosses_in_plaintext():
    """The planted break of the check above: the same relay and the same search, in
    front of a plain-HTTP server, find the key and the prompt."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"id": "chatcmpl-plain", "object": "chat.completion"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    key, marker = f"sk-{secrets.token_hex(16)}", f"prompt-{secrets.token_hex(8)}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Relay(server.server_address) as relay:
            response = requests.post(
                f"http://127.0.0.1:{relay.port}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": marker}]},
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                timeout=10,
            )
        assert response.status_code == 200
    finally:
        server.shutdown()
    sent = {"key": key, "prompt": marker, "answer id": "chatcmpl-plain", "request line": "POST /v1/"}
    assert leaks(bytes(relay.seen), sent) == list(sent)


def test_tls_private_keys_are_readable_by_their_owner_only(tenants, inventory, docker_client):
    """On the controller: the bundle CA's key and every gateway key are 0600 in a 0700
    directory. On the host: the gateway's key is root:gateway 0640, and a local user
    cannot read it. docker inspect shows no key."""
    tls_dir = key_file(inventory, "x").parent / "tls"
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    keys = sorted(tls_dir.glob("*.key"))
    assert {k.name for k in keys} >= {"tenancy-ca.key", *(f"{name}.key" for name in tenants)}
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert ca_file(inventory).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for name, tenant in tenants.items():
        host_key = Path(tenant["names"]["config_dir"]) / "gateway" / "tls.pem.key"
        info = host_key.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (
            0,
            TENANT_DEFAULTS["tenant_gateway_uid"],
            0o640,
        ), name
        assert host_key.read_text() == (tls_dir / f"{name}.key").read_text()
        attempt = subprocess.run([*AS_LOCAL_USER, "cat", str(host_key)], capture_output=True, text=True)
        assert attempt.returncode != 0 and "PRIVATE KEY" not in attempt.stdout, name
        inspected = json.dumps(docker_client.api.inspect_container(tenant["names"]["gateway"]))
        assert "PRIVATE KEY" not in inspected
        body = "".join(host_key.read_text().splitlines()[1:-1])
        assert body[:40] not in inspected


def served_serial(tenant: dict, inventory) -> int:
    with handshake(tenant, tls_context(inventory)) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_a_certificate_rotation_swaps_it_live_and_touches_no_other_tenant(tenants, inventory, docker_client):
    """tenant-cert.yml (run with -vvv) gives companyA's gateway a new certificate with no
    restart of any container; companyB keeps its certificate. The new one is on the host
    too (a restart keeps it), and neither the new key nor the old shows in the output."""
    containers = [t["names"][role] for t in tenants.values() for role in ("engine", "gateway")]
    started = {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in containers}
    before = {name: served_serial(tenant, inventory) for name, tenant in tenants.items()}
    tls_dir = key_file(inventory, "x").parent / "tls"
    old_key = (tls_dir / "companyA.key").read_text().splitlines()[1]
    result = run_ansible(
        "ansible-playbook", "-vvv", "-i", inventory, "playbooks/tenant-cert.yml", "-e", "tenant=companyA"
    )
    assert result.returncode == 0, result.stdout[-4000:]
    new_key = (tls_dir / "companyA.key").read_text().splitlines()[1]
    assert new_key != old_key
    for line in (old_key, new_key):
        assert line not in result.stdout and line not in result.stderr
    after = {name: served_serial(tenant, inventory) for name, tenant in tenants.items()}
    assert after["companyA"] != before["companyA"]
    assert after["companyB"] == before["companyB"]
    on_disk = x509.load_pem_x509_certificate(
        (Path(tenants["companyA"]["names"]["config_dir"]) / "gateway" / "tls.pem").read_bytes()
    )
    assert on_disk.serial_number == after["companyA"]
    # The gateway's /tls/metrics reports the new end at once (the runtime API's map).
    assert certificate_end(tenants["companyA"]) == int(on_disk.not_valid_after_utc.timestamp())
    assert {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in containers} == started


def certificate_end(tenant: dict) -> int:
    """tenancy_gateway_certificate_not_after_seconds from the gateway's metrics port."""
    answer = requests.get(f"http://127.0.0.1:{tenant['metrics_port']}/tls/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    (line,) = [line for line in answer.text.splitlines() if not line.startswith("#")]
    name, value = line.split()
    assert name == "tenancy_gateway_certificate_not_after_seconds"
    return int(value)


def test_prometheus_knows_when_each_certificate_ends(tenants, inventory):
    """Each gateway exports its certificate's end; Prometheus scrapes it per tenant, and
    the alert rule TenancyCertificateExpiresSoon is loaded."""
    expected = {}
    for name, tenant in tenants.items():
        with handshake(tenant, tls_context(inventory)) as tls:
            served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        expected[name] = int(served.not_valid_after_utc.timestamp())
        assert certificate_end(tenant) == expected[name], name
    deadline = time.monotonic() + 60
    while True:
        answer = requests.get(
            f"{PROMETHEUS}/api/v1/query", params={"query": "tenancy_gateway_certificate_not_after_seconds"}, timeout=10
        ).json()
        scraped = {r["metric"]["tenant"]: int(float(r["value"][1])) for r in answer["data"]["result"]}
        if all(scraped.get(name) == end for name, end in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(2)  # the next scrape (monitoring_scrape_interval)
    assert {name: scraped.get(name) for name in expected} == expected
    rules = requests.get(f"{PROMETHEUS}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert "TenancyCertificateExpiresSoon" in {rule["name"] for group in rules for rule in group["rules"]}


def operator_pair(directory: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA of "the operator's own" and a server certificate from it for `names`:
    (CA certificate, certificate file, key file 0600)."""
    import datetime
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator Corp CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans = [x509.IPAddress(ipaddress.ip_address(n[3:])) if n.startswith("IP:") else x509.DNSName(n[4:]) for n in names]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator-issued")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "operator-ca.crt", directory / "gateway.pem", directory / "gateway.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def test_an_operators_own_certificate_is_swapped_in_and_back_with_no_restart(
    tenants, inventory, docker_client, tmp_path
):
    """tenant-update.yml gives companyB a certificate of the operator's own CA: the
    gateway serves it (swapped in live, no container restarts), and companyA keeps the
    bundle CA's. The repository's inventory (no tls_cert) then puts the bundle CA's
    certificate back the same way."""
    containers = [t["names"][role] for t in tenants.values() for role in ("engine", "gateway")]
    started = {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in containers}
    serial_a = served_serial(tenants["companyA"], inventory)
    operator_ca, cert, key = operator_pair(tmp_path, tenants["companyB"]["tls_sans"])
    copy = tmp_path / "inventory"
    shutil.copytree(inventory, copy)
    try:
        result = run_ansible(
            "ansible-playbook", "-i", copy, "playbooks/tenant-update.yml",
            "-e", "tenant=companyB", "-e", f"tls_cert={cert}", "-e", f"tls_key={key}",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-4000:]
        assert "tls_swap | Commit it" in result.stdout
        with handshake(tenants["companyB"], ssl.create_default_context(cafile=str(operator_ca))) as tls:
            served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        assert served.issuer.rfc4514_string() == "CN=Operator Corp CA"
        # A client that trusts only the bundle CA no longer accepts companyB.
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(tenants["companyB"], tls_context(inventory))
        assert served_serial(tenants["companyA"], inventory) == serial_a
    finally:
        restored = run_site()
    assert restored.returncode == 0, restored.stdout[-4000:]
    with handshake(tenants["companyB"], tls_context(inventory)) as tls:
        back = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert back.issuer.rfc4514_string() == "CN=tenancy bundle CA"
    assert {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in containers} == started


def test_a_check_run_from_a_fresh_controller_changes_nothing(tenants, inventory, docker_client, tmp_path):
    """`site.yml --check` from a controller that has never run (the inventory without its
    credentials directory, as a new clone has it): the run passes, says that a real run
    would make the bundle CA, writes no CA or TLS key, and leaves the host as it was
    (containers, gateway certificates and key maps)."""
    fresh = tmp_path / inventory.name
    shutil.copytree(inventory, fresh, ignore=shutil.ignore_patterns("credentials"))
    gateway_files = [
        Path(t["names"]["config_dir"]) / "gateway" / name for t in tenants.values() for name in ("tls.pem", "keys.map")
    ]
    before = {path: path.read_bytes() for path in gateway_files}
    names = [t["names"][role] for t in tenants.values() for role in ("engine", "gateway")]
    started = {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in names}
    result = run_ansible("ansible-playbook", "-i", fresh, ROOT / "site.yml", "--check", "--tags", "tenant")
    said = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout[-4000:]
    assert "check mode: the bundle CA does not exist yet" in said
    assert not (fresh / "credentials" / "tls").exists() or not any((fresh / "credentials" / "tls").iterdir())
    assert {path: path.read_bytes() for path in gateway_files} == before
    assert {name: docker_client.containers.get(name).attrs["State"]["StartedAt"] for name in names} == started
