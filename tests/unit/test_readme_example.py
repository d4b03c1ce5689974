"""The README's production example plans: its defaults and tenants, on two A100-80GB
hosts, pass the planner (a front-door example that is refused would be worse than none)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from tenancy_plan import tenancy_plan

README = Path(__file__).resolve().parents[2] / "README.md"


def block(header: str) -> dict:
    """The YAML block of the README that starts with the comment line `header`."""
    text = README.read_text()
    found = re.search(r"```yaml\n(" + re.escape(header) + r"\n.*?)```", text, re.S)
    assert found, f"README.md has no yaml block starting with {header!r}"
    return yaml.safe_load(found.group(1))


def operator_certificate(directory: Path, names: list[str], pem: str, key_pem: str) -> None:
    """A certificate of "the operator's own CA" for `names`, where the example says."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Corp CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / pem).parent.mkdir(parents=True, exist_ok=True)
    (directory / pem).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / key_pem).write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / key_pem).chmod(0o600)


def test_the_production_example_plans_on_two_a100_hosts(tmp_path):
    settings = block("# inventory/prod/group_vars/all/tenancy.yml")
    tenants = block("# inventory/prod/group_vars/all/tenants.yml")["tenants"]
    a100 = [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB", "mode": "shared"}]
    hosts = {"gpu1.example.net": {"tenancy_gpus": a100}, "gpu2.example.net": {"tenancy_gpus": a100}}
    for tenant in tenants:
        if tenant.get("tls_cert"):
            operator_certificate(tmp_path, list(hosts), tenant["tls_cert"], tenant["tls_key"])
        for adapter in tenant.get("adapters", []):
            # A rank-16 PEFT adapter of the tenant's model (weights as .bin: no shapes to read).
            directory = tmp_path / adapter["path"]
            directory.mkdir(parents=True)
            base = tenant.get("model", settings["tenancy_tenant_defaults"]["model"])
            (directory / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 16}))
            (directory / "adapter_model.bin").write_bytes(b"\0" * 64)
    plan = tenancy_plan(
        tenants, settings["tenancy_tenant_defaults"], hosts, None, "/nonexistent", files_dir=str(tmp_path)
    )
    assert [r["name"] for r in plan] == [t["name"] for t in tenants]
    assert all(r["state"] == "present" and r["kv_cache_bytes"] > 0 for r in plan)
    assert next(r for r in plan if r["name"] == "companyC")["host"] == "gpu2.example.net"
    assert "--lora-modules" in next(r for r in plan if r["name"] == "companyA")["engine_args"]
