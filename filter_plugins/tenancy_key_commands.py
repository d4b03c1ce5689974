"""HAProxy runtime-API commands that bring a running gateway's live key map in line
with the wanted entries (roles/tenant/tasks/keys_sync.yml)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_key_commands
short_description: Runtime-API commands from a gateway's live key map to the wanted one
version_added: "0.1.0"
description:
  - Compares the output of C(show map <path>) (lines C(<ref> <hash> <id>)) with the
    wanted entries (C(tenancy_key_map)) and returns the commands to send, one per
    connection - C(add map) for missing keys first, then C(set map) for changed ids, then
    C(del map) for keys no longer wanted - so no request carrying either the old or the
    new key fails in between.
  - Malformed entries raise C(AnsibleFilterError) without showing any key.
positional: _input, entries, map_path
options:
  _input:
    description: The lines of C(show map) (other lines are ignored).
    type: list
    elements: str
    required: true
  entries:
    description: The wanted C({hash, id}) entries.
    type: list
    elements: dict
    required: true
  map_path:
    description: The map's path inside the gateway container.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Work out the runtime commands
  ansible.builtin.set_fact:
    commands: "{{ live.stdout_lines | tenancy_key_commands(entries, '/usr/local/etc/haproxy/keys.map') }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: Commands, adds before sets before removals.
  type: list
  elements: str
"""


def tenancy_key_commands(live_lines: Any, entries: Sequence[Mapping[str, str]], map_path: str) -> list[str]:
    if isinstance(live_lines, str) or not isinstance(live_lines, Sequence):
        raise AnsibleFilterError("tenancy_key_commands: expected the lines of `show map`")
    live: dict[str, str] = {}
    for line in live_lines:
        fields = str(line).split()
        if len(fields) == 3:
            live[fields[1]] = fields[2]
    try:
        wanted = {entry["hash"]: entry["id"] for entry in entries}
    except (KeyError, TypeError):
        raise AnsibleFilterError("tenancy_key_commands: each entry needs a hash and an id") from None
    adds = [f"add map {map_path} {h} {i}" for h, i in wanted.items() if h not in live]
    sets = [f"set map {map_path} {h} {i}" for h, i in wanted.items() if h in live and live[h] != i]
    dels = [f"del map {map_path} {h}" for h in live if h not in wanted]
    return adds + sets + dels


class FilterModule:
    """Tenancy key command filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_key_commands": tenancy_key_commands}
