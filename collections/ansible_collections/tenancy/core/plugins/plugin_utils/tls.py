"""The operator's own gateway certificates (tenant fields tls_cert, tls_key), checked
on the controller before anything changes: readable, a key that matches, valid for
tls_min_days more days, and names that cover every name a client uses."""

from __future__ import annotations

import ipaddress
import os
import stat
from datetime import UTC, datetime
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.common import field_error


def resolve(path: str, base_dir: str) -> str:
    """An absolute path: ~ expanded, a relative one taken from base_dir (the inventory's)."""
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) or not base_dir else os.path.join(base_dir, path))


def covers(name: str, san: str) -> bool:
    """Whether one of a certificate's names (DNS:x / IP:x) covers the name a client uses."""
    kind, _, value = san.partition(":")
    wanted_kind, _, wanted = name.partition(":")
    if kind != wanted_kind:
        return False
    if kind == "IP":
        return ipaddress.ip_address(value) == ipaddress.ip_address(wanted)
    value, wanted = value.lower(), wanted.lower()
    if value.startswith("*."):
        head, _, rest = wanted.partition(".")
        return bool(head) and head != "*" and rest == value[2:]
    return value == wanted


def certificate_names(certificate: Any) -> list[str]:
    from cryptography import x509

    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        f"IP:{entry.value}" if isinstance(entry, x509.IPAddress) else f"DNS:{entry.value}"
        for entry in extension
        if isinstance(entry, x509.IPAddress | x509.DNSName)
    ]


def check_operator_certificate(
    tenant: dict[str, Any], required: list[str], base_dir: str, now: float | None = None
) -> None:
    """Resolve tenant's tls_cert / tls_key (in place) and refuse, naming the tenant, the
    field and the value, what HAProxy or a client would fail on later."""
    if tenant.get("tls_cert") is None:
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    name = tenant["name"]
    raw = {field: tenant[field] for field in ("tls_cert", "tls_key")}
    paths = {field: resolve(value, base_dir) for field, value in raw.items()}
    data = {}
    for field, path in paths.items():
        try:
            with open(path, "rb") as handle:
                data[field] = handle.read()
            mode = os.stat(path).st_mode
        except OSError as error:
            raise field_error(
                name, field, raw[field], f"cannot read {path} on the controller: {error.strerror}"
            ) from error
        if field == "tls_key" and stat.S_IMODE(mode) & 0o077:
            raise field_error(
                name,
                field,
                raw[field],
                f"{path} has mode {stat.S_IMODE(mode):04o}: a private key must be readable by its owner only "
                f"(chmod 600 {path})",
            )
    try:
        chain = x509.load_pem_x509_certificates(data["tls_cert"])
    except ValueError as error:
        raise field_error(name, "tls_cert", raw["tls_cert"], f"{paths['tls_cert']} holds no PEM certificate") from error
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(data["tls_key"], password=None)
    except TypeError as error:
        raise field_error(
            name, "tls_key", raw["tls_key"], "the key is encrypted; the gateway needs it unencrypted (mode 0600)"
        ) from error
    except ValueError as error:
        raise field_error(name, "tls_key", raw["tls_key"], f"{paths['tls_key']} holds no PEM private key") from error
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise field_error(
            name, "tls_key", raw["tls_key"], f"it is not the key of the certificate tls_cert ({paths['tls_cert']})"
        )
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    ends, starts = leaf.not_valid_after_utc, leaf.not_valid_before_utc
    if ends <= moment:
        raise field_error(name, "tls_cert", raw["tls_cert"], f"the certificate expired on {ends:%Y-%m-%d %H:%M} UTC")
    days = tenant["tls_min_days"]
    if (ends - moment).total_seconds() < days * 86400:
        raise field_error(
            name,
            "tls_cert",
            raw["tls_cert"],
            f"the certificate ends on {ends:%Y-%m-%d %H:%M} UTC, within tls_min_days ({days} days): renew it first",
        )
    if starts > moment:
        raise field_error(
            name, "tls_cert", raw["tls_cert"], f"the certificate is not valid before {starts:%Y-%m-%d %H:%M} UTC"
        )
    names = certificate_names(leaf)
    for wanted in required:
        if not any(covers(wanted, san) for san in names):
            raise field_error(
                name,
                "tls_cert",
                raw["tls_cert"],
                f"its names ({', '.join(names) or 'none'}) do not cover {wanted}, which clients use for this tenant",
            )
    tenant["tls_cert"], tenant["tls_key"] = paths["tls_cert"], paths["tls_key"]
