"""The part of a container's log that says why it did not start (roles/tenant/tasks/wait_healthy.yml)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

DOCUMENTATION = r"""
name: tenancy_log_excerpt
short_description: The lines of a failed container's log that name the cause
version_added: "0.1.0"
description:
  - "Takes the lines of C(docker logs) (stdout and stderr, as two lists) and returns text
    for an operator - C(Errors in the log), each distinct Python exception line (such as
    C(RuntimeError: Cannot find any model weights with ...)), first seen first, and C(Last
    log lines), the tail with traceback frames left out. Docker keeps the two streams
    apart, so stdout's lines come before stderr's."
  - vLLM's real cause is often a few hundred lines above its last line - a worker's
    traceback, then the engine core's, then the API server's, each ending in an exception
    that only says "see root cause above". The tail alone shows the last of them.
positional: _input, stderr
options:
  _input:
    description: The log's stdout lines (C(stdout_lines)).
    type: list
    elements: str
    required: true
  stderr:
    description: The log's stderr lines (C(stderr_lines)); Docker keeps the two streams apart.
    type: list
    elements: str
    default: []
  tail:
    description: How many lines of the tail to keep, after traceback frames are left out.
    type: int
    default: 25
  errors:
    description: How many distinct exception lines to keep at most.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Fail with the container log
  ansible.builtin.fail:
    msg: "{{ log.stdout_lines | tenancy_log_excerpt(log.stderr_lines) }}"
"""

RETURN = r"""
_value:
  description: The excerpt, lines joined with newlines.
  type: str
"""

# A log prefix as vLLM writes it: "(Worker pid=56) ERROR 12-07 16:32:27 [file.py:953] ".
_PREFIX = re.compile(r"^(\([^)]*\)\s+)?([A-Z]+\s+\d\d-\d\d \d\d:\d\d:\d\d\s+\[[^\]]*\]\s?)?")
# Python's last traceback line: "RuntimeError: ...", "torch.OutOfMemoryError: ...".
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)?(Error|Exception|Exit|Interrupt)\b(: |$)")
_TRACEBACK = "Traceback (most recent call last):"


def _without_frames(lines: Sequence[str]) -> list[str]:
    """The lines less each traceback's frames: from its first line, every indented line
    (File "...", the code under it, the ^^^ markers) up to its exception line."""
    kept, inside = [], False
    for line in lines:
        message = _message(line)
        if message.strip() == _TRACEBACK:
            inside = True
            continue
        if inside and message[:1].isspace():
            continue
        inside = False
        if line.strip():
            kept.append(line)
    return kept


def _message(line: str) -> str:
    return _PREFIX.sub("", line, count=1)


def tenancy_log_excerpt(stdout: Sequence[str], stderr: Sequence[str] = (), tail: int = 25, errors: int = 10) -> str:
    lines = [str(line).rstrip() for line in (*stdout, *stderr)]
    found: list[str] = []
    for line in lines:
        message = _message(line).strip()
        if _EXCEPTION.match(message) and message not in found:
            found.append(message)
    kept = _without_frames(lines)
    parts = []
    if found:
        parts += ["Errors in the log:", *(f"  {line}" for line in found[:errors])]
    parts += ["Last log lines (traceback frames left out):", *kept[-tail:]] if kept else ["The log is empty."]
    return "\n".join(parts)


class FilterModule:
    """A failed container's log, cut to its cause."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_log_excerpt": tenancy_log_excerpt}
