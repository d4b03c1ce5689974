"""What would lose or hide a tenant's data if encrypted volumes were made now
(roles/tenant/tasks/preflight_host.yml): one sentence per tenant, before anything changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_volume_refusals
short_description: The reasons encrypted volumes cannot be made on a host without losing or hiding data
version_added: "0.1.0"
description:
  - Reads what C(preflight_host.yml) found for each present tenant of a host, read-only -
    its data directory (C(ansible.builtin.find)), its volume's backing file or given block
    device (C(ansible.builtin.stat)) and the signature on that backing (C(blkid --probe)).
  - A tenant whose data directory holds anything while its backing has no LUKS header yet
    is refused - a new volume mounted over the directory would hide the data from the
    tenant and leave the plaintext on disk.
  - A given block device (C(tenant_volume_devices)) that does not exist, is not a block
    device, or holds a signature other than LUKS (a filesystem, an LVM member, a partition
    table) is refused - formatting it as LUKS2 would destroy what it holds.
  - Returns one sentence per refused tenant, naming the tenant, the field and the value;
    an empty list when every tenant is safe.
positional: _input, backings, signatures, devices, data_dir, host
options:
  _input:
    description: The C(results) of the C(find) over each tenant's data directory (C(item) is its plan record).
    type: list
    elements: dict
    required: true
  backings:
    description: The C(results) of the C(stat) of each tenant's backing (C(item) is its plan record).
    type: list
    elements: dict
    required: true
  signatures:
    description: The C(results) of C(blkid --probe --output value --match-tag TYPE) on each backing that exists.
    type: list
    elements: dict
    required: true
  devices:
    description: C(tenant_volume_devices), tenant name to block device.
    type: dict
    required: true
  data_dir:
    description: C(tenant_data_dir).
    type: str
    required: true
  host:
    description: The inventory host, for the messages.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check that encrypted volumes can be made here without hiding or destroying data
  ansible.builtin.assert:
    that: __refusals | length == 0
    fail_msg: "{{ __refusals | join(' ') }} Nothing was changed."
  vars:
    __refusals: >-
      {{ __data.results | tenancy_volume_refusals(__backing.results, __signature.results,
                                                  tenant_volume_devices, tenant_data_dir, inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: One sentence per refused tenant, in the order of the input.
  type: list
  elements: str
"""

LUKS = "crypto_LUKS"


def _by_tenant(results: Any, what: str, name_of: Any) -> dict[str, Mapping[str, Any]]:
    if isinstance(results, (str, bytes, Mapping)) or not isinstance(results, Sequence):
        raise AnsibleFilterError(f"tenancy_volume_refusals: {what} is {type(results).__name__}, not a list of results")
    found = {}
    for result in results:
        if not isinstance(result, Mapping) or result.get("skipped"):
            continue
        found[name_of(result)] = result
    return found


def tenancy_volume_refusals(
    data: Sequence[Mapping[str, Any]],
    backings: Sequence[Mapping[str, Any]],
    signatures: Sequence[Mapping[str, Any]],
    devices: Mapping[str, Any],
    data_dir: str,
    host: str,
) -> list[str]:
    """The refusals (see DOCUMENTATION)."""
    data_of = _by_tenant(data, "the data directories' find", lambda r: r["item"]["name"])
    backing_of = _by_tenant(backings, "the backings' stat", lambda r: r["item"]["name"])
    signature_of = _by_tenant(signatures, "the backings' blkid", lambda r: r["item"]["item"]["name"])
    devices = dict(devices or {})
    refusals = []
    for name, found in data_of.items():
        stat = (backing_of.get(name) or {}).get("stat") or {}
        blkid = signature_of.get(name) or {}
        # blkid answers 2 for "no signature"; Ansible also gives rc 2 when the command
        # cannot be run at all (no blkid: "[Errno 2] No such file or directory").
        if blkid and (blkid.get("rc") not in (0, 2) or "Errno" in str(blkid.get("msg", ""))):
            said = blkid.get("stderr") or blkid.get("msg", "")
            raise AnsibleFilterError(f"tenant {name}: blkid failed on {stat.get('path')}: {said}")
        signature = (blkid.get("stdout") or "").strip() if blkid.get("rc") == 0 else ""
        is_luks = bool(stat.get("exists")) and signature == LUKS
        if name in devices:
            device = devices[name]
            problem = None
            if not stat.get("exists"):
                problem = "no such device"
            elif not stat.get("isblk"):
                problem = "not a block device"
            elif signature and signature != LUKS:
                problem = (
                    f"it holds a {signature} signature, not a LUKS2 volume, and formatting it as LUKS2 would destroy "
                    "what it holds. Move that data off it and clear it (wipefs -a), or name another device"
                )
            if problem:
                where = f"field 'tenant_volume_devices' has invalid value {device} on host {host}"
                refusals.append(f"tenant {name}: {where}: {problem}.")
                continue
        matched = int(found.get("matched") or 0)
        if matched and not is_luks:
            refusals.append(
                f"tenant {name}: field 'tenant_volume_encryption' has invalid value true: {name}'s data in "
                f"{data_dir}/{name} on host {host} ({matched} {'entry' if matched == 1 else 'entries'}) is not "
                "encrypted and no encrypted volume exists for it yet. A new encrypted volume would hide that data "
                "from its tenant and leave the plaintext on disk: move the data into an encrypted volume as "
                'roles/tenant/README.md says ("Turning encryption on for existing tenants"), or keep '
                "tenant_volume_encryption false for this host."
            )
    return refusals


class FilterModule:
    """The volume preflight's refusals."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_volume_refusals": tenancy_volume_refusals}
