"""How far a LUKS2 re-encryption has gone, from the last `--progress-json` line that
`cryptsetup reencrypt` wrote to its log (roles/tenant/tasks/luks_reencrypt.yml)."""

from __future__ import annotations

import json
from typing import Any

DOCUMENTATION = r"""
name: tenancy_luks_progress
short_description: The last progress record of a cryptsetup re-encryption log
version_added: "0.1.0"
description:
  - Reads the log of C(cryptsetup reencrypt --progress-json) (one JSON object a line, with
    C(device_bytes), C(device_size) and C(time_ms); other lines are cryptsetup's messages).
  - Returns the last record as C(done_bytes), C(size_bytes), C(percent) (one decimal) and
    C(seconds), or an empty dict when the log holds no record yet.
positional: _input
options:
  _input:
    description: The text of the log.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Say how far it went
  ansible.builtin.debug:
    msg: "{{ (__log.content | b64decode | tenancy_luks_progress).percent | default(0) }} %"
"""

RETURN = r"""
_value:
  description: C(done_bytes), C(size_bytes), C(percent) and C(seconds), or an empty dict.
  type: dict
"""


def tenancy_luks_progress(log: Any) -> dict[str, Any]:
    """The last progress record of the log (see DOCUMENTATION)."""
    for line in reversed(str(log or "").splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
            done, size, ms = int(rec["device_bytes"]), int(rec["device_size"]), int(rec["time_ms"])
        except (ValueError, KeyError, TypeError):
            continue
        return {
            "done_bytes": done,
            "size_bytes": size,
            "percent": round(100.0 * done / size, 1) if size else 0.0,
            "seconds": round(ms / 1000.0, 1),
        }
    return {}


class FilterModule:
    """Progress of a LUKS2 re-encryption."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_luks_progress": tenancy_luks_progress}
