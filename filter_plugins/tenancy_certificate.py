"""What a PEM certificate says about itself: serial, names, validity. The gateway
certificate's facts for tenant-cert.yml's check and tenants-list's expiry column, read
with the cryptography package on the controller (never a private key)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.tls import certificate_names

DOCUMENTATION = r"""
name: tenancy_certificate
short_description: Serial, names and validity of a PEM certificate
version_added: "0.1.0"
description:
  - Reads the first certificate of a PEM text.
  - Returns C(serial) (upper-case hex, as HAProxy's C(show ssl cert) prints it), C(common_name),
    C(names) (subject alternative names as C(DNS:name) / C(IP:address)), C(not_before) and
    C(not_after) (Unix seconds) and C(issuer) (RFC 4514 string).
  - An empty input gives an empty dict; a text that is no certificate raises C(AnsibleFilterError).
positional: _input
options:
  _input:
    description: The PEM text.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Say when the gateway's certificate ends
  ansible.builtin.debug:
    msg: "{{ (lookup('ansible.builtin.file', 'credentials/tls/companyA.crt') | tenancy_certificate).not_after }}"
"""

RETURN = r"""
_value:
  description: C(serial), C(common_name), C(names), C(not_before), C(not_after), C(issuer); empty for no input.
  type: dict
"""


def tenancy_certificate(pem: Any) -> dict[str, Any]:
    """The certificate's facts (see DOCUMENTATION)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    text = str(pem or "").strip()
    if not text:
        return {}
    try:
        certificate = x509.load_pem_x509_certificate(text.encode())
    except ValueError as error:
        raise AnsibleFilterError(f"tenancy_certificate: not a PEM certificate ({error})") from error
    names = certificate_names(certificate)
    common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {
        "serial": f"{certificate.serial_number:X}",
        "common_name": str(common[0].value) if common else None,
        "names": names,
        "not_before": int(certificate.not_valid_before_utc.timestamp()),
        "not_after": int(certificate.not_valid_after_utc.timestamp()),
        "issuer": certificate.issuer.rfc4514_string(),
    }


class FilterModule:
    """Facts of a PEM certificate."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_certificate": tenancy_certificate}
