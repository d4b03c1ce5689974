"""The entries of a gateway's key map (keys.map): roles/tenant/tasks/keys.yml writes
them, keys_sync.yml applies them to the running gateway (tenancy_key_commands)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_key_map
short_description: The entries of a tenant gateway's key map, primary key first
version_added: "0.1.0"
description:
  - The gateway knows keys only by their SHA-256. The map holds the primary key as
    C(primary), then keys being retired as C(retired-<expiry>) (a Unix time until which
    they keep working).
  - Retired keys come from C(retire) (a rotation with a grace period) and from the
    current map, where one survives while it has not expired and is neither the primary,
    nor being retired again, nor in C(drop).
  - Malformed input raises C(AnsibleFilterError) without showing any key.
positional: _input, retire, drop, current, now
options:
  _input:
    description: The tenant's primary API key (hashed here, never returned).
    type: str
    required: true
  retire:
    description: Keys being retired, as C({hash, expires}).
    type: list
    elements: dict
    default: []
  drop:
    description: Hashes to remove now.
    type: list
    elements: str
    default: []
  current:
    description: The current keys.map text (empty when there is none).
    type: str
    default: ""
  now:
    description: The current Unix time (tests pass one; default the clock).
    type: int
"""

EXAMPLES = r"""
- name: Work out the key map
  ansible.builtin.set_fact:
    entries: "{{ api_key | tenancy_key_map(retire, drop, current_map_text) }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: C({hash, id}) per key, in map order.
  type: list
  elements: dict
"""


def tenancy_key_map(
    primary_key: Any,
    retire: Sequence[Mapping[str, Any]] | None = None,
    drop: Sequence[str] | None = None,
    current: str | None = "",
    now: int | None = None,
) -> list[dict[str, str]]:
    if not isinstance(primary_key, str) or not primary_key:
        raise AnsibleFilterError("tenancy_key_map: the primary key must be a non-empty string")
    now = int(time.time()) if now is None else int(now)
    retire = list(retire or [])
    primary = hashlib.sha256(primary_key.encode()).hexdigest()
    entries = [{"hash": primary, "id": "primary"}]
    try:
        taken = {primary, *(r["hash"] for r in retire), *(drop or [])}
        for retired in retire:
            if retired["hash"] != primary:
                entries.append({"hash": retired["hash"], "id": f"retired-{int(retired['expires'])}"})
    except (KeyError, TypeError, ValueError):
        raise AnsibleFilterError("tenancy_key_map: each key to retire needs a hash and an expires time") from None
    for line in (current or "").splitlines():
        fields = line.split()
        if len(fields) != 2 or not fields[1].startswith("retired-") or fields[0] in taken:
            continue
        try:
            expires = int(fields[1][len("retired-") :])
        except ValueError:
            continue
        if expires > now:
            entries.append({"hash": fields[0], "id": fields[1]})
    return entries


class FilterModule:
    """Tenancy key map filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_key_map": tenancy_key_map}
