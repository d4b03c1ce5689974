"""Why a host cannot give its tenants their planned uids: roles/tenant/tasks/preflight_host.yml
refuses the run with these messages before any tenant of the host changes."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_uid_refusals
short_description: Why a host cannot give its tenants their planned uids
version_added: "0.1.0"
description:
  - Each tenant's engine and files use its own uid and gid (the plan record's C(uid)).
    That number must be nobody else's on the host, or whoever holds it reads the
    tenant's data.
  - Refused, one message per tenant and reason, naming the tenant, the field C(uid) and
    the value - an account (C(getent passwd)) with that uid; a group (C(getent group))
    with that gid; a subordinate-id range (C(/etc/subuid), C(/etc/subgid)) that holds it,
    through which a local user's user namespace can act as that uid.
  - An empty list means the host can run every tenant as planned.
  - Malformed input (records without C(name) and C(uid)) raises C(AnsibleFilterError).
positional: _input, passwd, group, subids, host
options:
  _input:
    description: The present plan records of the host.
    type: list
    elements: dict
    required: true
  passwd:
    description: C(ansible_facts.getent_passwd) (name to [password, uid, gid, ...]).
    type: dict
    required: true
  group:
    description: C(ansible_facts.getent_group) (name to [password, gid, members]).
    type: dict
    required: true
  subids:
    description: >-
      The results of slurping C(/etc/subuid) and C(/etc/subgid) (C(item) the path,
      C(content) base64, C(failed) where the file does not exist).
    type: list
    elements: dict
    default: []
  host:
    description: The inventory host name, for the messages.
    type: str
    default: the host
"""

EXAMPLES = r"""
- name: Check that no account or subordinate range of the host holds a tenant's uid
  ansible.builtin.assert:
    that: refusals | length == 0
    fail_msg: "{{ refusals | join(' ') }}"
  vars:
    refusals: >-
      {{ present | tenancy_uid_refusals(ansible_facts.getent_passwd, ansible_facts.getent_group,
                                        subids.results, inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: One sentence per refusal; empty when there is none.
  type: list
  elements: str
"""


def _ranges(text: str) -> list[tuple[str, int, int]]:
    """(owner, first, last) of each well-formed line of a subuid/subgid file."""
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        first, count = int(fields[1]), int(fields[2])
        if count > 0:
            ranges.append((fields[0], first, first + count - 1))
    return ranges


def _decode(result: Mapping[str, Any]) -> str:
    if result.get("failed") or "content" not in result:
        return ""
    return base64.b64decode(result["content"]).decode("utf-8", "replace")


def tenancy_uid_refusals(
    records: Sequence[Mapping[str, Any]],
    passwd: Mapping[str, Sequence[Any]],
    group: Mapping[str, Sequence[Any]],
    subids: Sequence[Mapping[str, Any]] | None = None,
    host: str = "the host",
) -> list[str]:
    try:
        accounts = {int(entry[1]): name for name, entry in (passwd or {}).items() if str(entry[1]).isdigit()}
        groups = {int(entry[1]): name for name, entry in (group or {}).items() if str(entry[1]).isdigit()}
        files = {str(r.get("item") or r.get("source")): _ranges(_decode(r)) for r in subids or []}
        wanted = [(str(record["name"]), int(record["uid"])) for record in records]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise AnsibleFilterError(f"tenancy_uid_refusals: malformed input ({error})") from None
    refusals = []
    for name, uid in wanted:
        said = f"tenant {name!r}: field 'uid' has invalid value {uid} on host {host}:"
        if uid in accounts:
            refusals.append(f"{said} it is the uid of the account {accounts[uid]!r}, who would own the tenant's files.")
        if uid in groups:
            refusals.append(f"{said} it is the gid of the group {groups[uid]!r}, whose members would read its files.")
        for path, ranges in sorted(files.items()):
            for owner, first, last in ranges:
                if first <= uid <= last:
                    refusals.append(
                        f"{said} {path} gives {owner!r} the range {first}-{last}, so {owner!r}'s user "
                        "namespaces can act as it. Set the tenant's uid outside every such range."
                    )
    return refusals


class FilterModule:
    """Tenancy uid refusals filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_uid_refusals": tenancy_uid_refusals}
