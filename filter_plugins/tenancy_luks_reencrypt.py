"""LUKS2 volume-key rotation (online re-encryption) of one tenant's data volume, planned
from the header's own JSON metadata (`cryptsetup luksDump --dump-json-metadata`).

Rotating a keyslot (luksAddKey + luksRemoveKey) leaves the volume key as it was, so an
old copy of the header (or of the whole backing file) and the old key still decrypt the
current data. `cryptsetup reencrypt` writes every sector again under a new volume key
while the device stays open and mounted. This filter reads the header's state and turns
it into the cryptsetup command line, or into a refusal that names the tenant, the device
and the value. The progress of a run is read by tenancy_luks_progress."""

from __future__ import annotations

import json
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_luks_reencrypt
short_description: A LUKS2 header's re-encryption state, and the cryptsetup command that starts or resumes one
version_added: "0.1.0"
description:
  - Parses the text of C(cryptsetup luksDump --dump-json-metadata DEVICE) (cryptsetup 2.4 or later).
  - Returns C(keyslots) (the ids of the passphrase keyslots, type luks2, sorted), C(pending)
    (true when the header carries the C(online-reencrypt) requirement, that is a re-encryption
    that was started and not finished, interrupted or still running), C(volume_key_digests)
    (the digests of the volume keys, which a re-encryption replaces) and C(argv).
  - With O(reencrypt), C(argv) is the command line C(cryptsetup reencrypt --batch-mode --key-file
    KEYFILE --progress-json --progress-frequency 10 DEVICE), with C(--resume-only) for a pending one.
    Without it, C(argv) is empty.
  - Raises C(AnsibleFilterError), naming the tenant and the device, on text that is not such
    JSON (a LUKS1 header has none; re-encryption here is LUKS2 only), and, with O(reencrypt), when
    the header has other than one passphrase keyslot. cryptsetup re-wraps only the keyslot whose
    key it is given and destroys the others, so an operator's second (recovery) key would be lost.
positional: _input, tenant, device, keyfile, reencrypt
options:
  _input:
    description: The output of C(cryptsetup luksDump --dump-json-metadata).
    type: str
    required: true
  tenant:
    description: The tenant's name, for error messages.
    type: str
    required: true
  device:
    description: The backing device, for error messages and the command line.
    type: str
    required: true
  keyfile:
    description: The file holding the key of the volume's one keyslot (root-only).
    type: str
    default: ""
  reencrypt:
    description: Plan a re-encryption (C(argv)), or only read the state.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the header
  ansible.builtin.command:
    argv: [cryptsetup, luksDump, --dump-json-metadata, /dev/loop3]
  register: __dump
  changed_when: false

- name: Plan the re-encryption
  ansible.builtin.set_fact:
    __state: >-
      {{ __dump.stdout | tenancy_luks_reencrypt('companyA', '/dev/loop3',
         '/etc/tenancy/companyA/volume/luks.key', true) }}
"""

RETURN = r"""
_value:
  description: C(keyslots), C(pending), C(volume_key_digests) and C(argv).
  type: dict
"""

# The LUKS2 requirement that marks an unfinished re-encryption: online-reencrypt-v2 since
# cryptsetup 2.2.2 (v3 since 2.5 for some modes); plain online-reencrypt before.
_REENCRYPT_REQUIREMENT = "online-reencrypt"


def _fail(tenant: str, device: str, why: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"tenant {tenant}: the LUKS header of its volume on {device} {why}")


def luks_state(text: Any, tenant: str, device: str) -> dict[str, Any]:
    """The header's keyslots, pending re-encryption and volume-key digests."""
    try:
        meta = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("keyslots"), dict):
        raise _fail(
            tenant,
            device,
            f"could not be read as LUKS2 JSON metadata (starts {str(text)[:60]!r}); "
            "re-encryption needs a LUKS2 header and cryptsetup 2.4 or later",
        )
    slots = meta["keyslots"]
    keyslots = sorted(int(k) for k, v in slots.items() if isinstance(v, dict) and v.get("type") == "luks2")
    required = (meta.get("config") or {}).get("requirements", {}).get("mandatory", [])
    pending = any(str(r).startswith(_REENCRYPT_REQUIREMENT) for r in required)
    digests = sorted(d.get("digest", "") for d in (meta.get("digests") or {}).values() if d.get("segments"))
    return {"keyslots": keyslots, "pending": pending, "volume_key_digests": digests}


def reencrypt_argv(state: dict[str, Any], tenant: str, device: str, keyfile: str) -> list[str]:
    """The cryptsetup command line that starts (or resumes) the re-encryption.

    Started only with exactly one passphrase keyslot: cryptsetup re-wraps only the keyslot
    whose key it is given and destroys every other one, so a second keyslot (an operator's
    recovery key, say) would be lost without a word. A pending re-encryption is resumed
    (``--resume-only``) with the key it was started with."""
    argv = [
        "cryptsetup",
        "reencrypt",
        "--batch-mode",
        "--key-file",
        keyfile,
        "--progress-json",
        "--progress-frequency",
        "10",
    ]
    if state["pending"]:
        return [*argv, "--resume-only", device]
    slots = state["keyslots"]
    if len(slots) != 1:
        listed = ", ".join(str(s) for s in slots) or "none"
        raise _fail(
            tenant,
            device,
            f"has keyslots {listed}: a re-encryption keeps only the keyslot of the tenant's key and "
            "destroys every other one. Remove the others first (cryptsetup luksKillSlot), or rotate "
            "without reencrypt",
        )
    return [*argv, device]


def tenancy_luks_reencrypt(text: Any, tenant: str, device: str, keyfile: str = "", reencrypt: bool = False) -> dict:
    """The header's state and, with ``reencrypt``, the command line (see DOCUMENTATION)."""
    state = luks_state(text, tenant, device)
    state["argv"] = reencrypt_argv(state, tenant, device, keyfile) if reencrypt else []
    return state


class FilterModule:
    """LUKS2 online re-encryption of a tenant's volume."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_luks_reencrypt": tenancy_luks_reencrypt}
