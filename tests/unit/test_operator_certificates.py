"""The operator's own gateway certificates (tls_cert, tls_key): what the planner refuses
before any host changes, naming the tenant, the field and the value. Certificates are
made here with the cryptography package, as a corporate CA would issue them."""

from __future__ import annotations

import datetime
import ipaddress
import os

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tenancy_plan import tenancy_plan

NOW = datetime.datetime(2027, 3, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def write_pair(directory, names=("IP:127.0.0.1",), starts=NOW - DAY, ends=NOW + 90 * DAY, key=None, password=None):
    """A certificate for `names` and its key, written as cert.pem and key.pem (0600)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(v[3:])) if v.startswith("IP:") else x509.DNSName(v[4:]) for v in names]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corporate CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(starts)
        .not_valid_after(ends)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    os.chmod(directory / "key.pem", 0o600)


def plan(directory, **fields):
    tenant = {"name": "a", "port": 30001, "bind_address": "127.0.0.1", "tls_cert": "cert.pem", "tls_key": "key.pem"}
    return tenancy_plan([{**tenant, **fields}], {}, {"localhost": {}}, files_dir=str(directory), now=NOW.timestamp())[0]


def refusal(directory, **fields) -> str:
    with pytest.raises(AnsibleFilterError) as error:
        plan(directory, **fields)
    return str(error.value)


def test_a_good_certificate_is_taken_from_the_inventorys_directory(tmp_path):
    write_pair(tmp_path)
    record = plan(tmp_path)
    assert (record["tls_cert"], record["tls_key"]) == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert plan(tmp_path, tls_cert=str(tmp_path / "cert.pem"))["tls_cert"] == str(tmp_path / "cert.pem")


def test_without_one_the_bundle_ca_issues_it(tmp_path):
    record = plan(tmp_path, tls_cert=None, tls_key=None)
    assert (record["tls_cert"], record["tls_key"], record["tls_min_days"]) == (None, None, 14)


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path):
    write_pair(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_pair(other)
    message = refusal(tmp_path, tls_key="other/key.pem")
    assert "tenant 'a': field 'tls_key' has invalid value 'other/key.pem'" in message
    assert "not the key of the certificate" in message


def test_an_expired_certificate_is_refused(tmp_path):
    write_pair(tmp_path, starts=NOW - 100 * DAY, ends=NOW - DAY)
    assert "field 'tls_cert' has invalid value 'cert.pem': the certificate expired on 2027-02-28" in refusal(tmp_path)


def test_a_certificate_ending_within_tls_min_days_is_refused(tmp_path):
    write_pair(tmp_path, ends=NOW + 10 * DAY)
    assert "within tls_min_days (14 days)" in refusal(tmp_path)
    assert plan(tmp_path, tls_min_days=7)["tls_min_days"] == 7


def test_a_certificate_not_valid_yet_is_refused(tmp_path):
    write_pair(tmp_path, starts=NOW + DAY)
    assert "not valid before 2027-03-02" in refusal(tmp_path)


def test_a_certificate_that_does_not_cover_the_endpoint_is_refused(tmp_path):
    write_pair(tmp_path, names=("DNS:localhost",))
    message = refusal(tmp_path)
    assert "field 'tls_cert'" in message and "do not cover IP:127.0.0.1" in message


def test_every_tls_names_entry_must_be_covered_and_a_wildcard_covers_one_label(tmp_path):
    write_pair(tmp_path, names=("IP:127.0.0.1", "DNS:*.a.example"))
    assert plan(tmp_path, tls_names=["api.a.example"])["tls_names"] == ["api.a.example"]
    assert "do not cover DNS:x.api.a.example" in refusal(tmp_path, tls_names=["x.api.a.example"])
    assert "do not cover DNS:a.example" in refusal(tmp_path, tls_names=["a.example"])


def test_a_key_others_can_read_is_refused(tmp_path):
    write_pair(tmp_path)
    os.chmod(tmp_path / "key.pem", 0o644)
    message = refusal(tmp_path)
    assert "field 'tls_key'" in message and "mode 0644" in message and "chmod 600" in message


def test_an_encrypted_key_is_refused(tmp_path):
    write_pair(tmp_path, password=b"secret")
    assert "the key is encrypted" in refusal(tmp_path)


def test_a_missing_file_is_refused(tmp_path):
    message = refusal(tmp_path)
    assert "field 'tls_cert' has invalid value 'cert.pem': cannot read" in message


def test_a_file_that_holds_no_certificate_is_refused(tmp_path):
    write_pair(tmp_path)
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    assert "holds no PEM certificate" in refusal(tmp_path)


@pytest.mark.parametrize(("given", "missing"), [({"tls_key": None}, "tls_key"), ({"tls_cert": None}, "tls_cert")])
def test_cert_and_key_go_together(tmp_path, given, missing):
    assert f"field '{missing}'" in refusal(tmp_path, **given) and "go together" in refusal(tmp_path, **given)
