"""tenancy_certificate: the facts tenant-cert.yml checks the live gateway against and
tenants-list shows, read from a real certificate made here."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tenancy_certificate import tenancy_certificate

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def certificate_pem(serial: int = 0xABC123, with_names: bool = True) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "companyA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenancy bundle CA")]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(START)
        .not_valid_after(START + datetime.timedelta(days=397))
    )
    if with_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_the_facts_of_a_certificate():
    facts = tenancy_certificate(certificate_pem())
    assert facts == {
        "serial": "ABC123",
        "common_name": "companyA",
        "names": ["IP:127.0.0.1", "DNS:localhost"],
        "not_before": int(START.timestamp()),
        "not_after": int((START + datetime.timedelta(days=397)).timestamp()),
        "issuer": "CN=tenancy bundle CA",
    }


def test_a_certificate_without_names_has_none():
    assert tenancy_certificate(certificate_pem(with_names=False))["names"] == []


def test_no_input_gives_nothing():
    assert tenancy_certificate("") == {}
    assert tenancy_certificate(None) == {}


def test_a_text_that_is_no_certificate_is_refused():
    with pytest.raises(AnsibleFilterError, match="not a PEM certificate"):
        tenancy_certificate("-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
