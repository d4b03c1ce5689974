"""What every stage of the planner shares: sizes, integers, and the one form of a
field error (it names the tenant, the field and the value)."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.formatters import human_to_bytes

GIB = 1024**3


def field_error(tenant: str, field: str, value: Any, why: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"tenant {tenant!r}: field {field!r} has invalid value {value!r}: {why}")


def parse_size(value: Any, tenant: str, field: str) -> int:
    """Return a size in bytes. ``10G`` = ``10GiB`` = 10 * 1024**3; plain ints are bytes."""
    if isinstance(value, bool) or value is None:
        raise field_error(tenant, field, value, "expected a size such as 10G, 10GiB, 10240M or a number of bytes")
    if isinstance(value, int):
        size = value
    else:
        text = str(value).strip()
        # human_to_bytes knows "G"/"GB" (binary); accept the explicit IEC spelling too.
        text = re.sub(r"(?i)([KMGTPEZY])iB$", r"\1B", text)
        try:
            size = int(human_to_bytes(text))
        except (ValueError, TypeError) as exc:
            raise field_error(
                tenant, field, value, "expected a size such as 10G, 10GiB, 10240M or a number of bytes"
            ) from exc
    if size <= 0:
        raise field_error(tenant, field, value, "must be greater than 0")
    return size


def as_int(value: Any, tenant: str, field: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise field_error(tenant, field, value, "expected an integer")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise field_error(tenant, field, value, "expected an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise field_error(tenant, field, value, f"must be {bound}")
    return value


def format_bytes(size: int) -> str:
    """Render bytes the way quotas are written: 10GiB, 512MiB, 1.5GiB."""
    for unit, factor in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size}B"


def gib(size: int) -> str:
    """Sizes in a sum, all in GiB with one decimal, so the terms add up visibly."""
    return f"{size / GIB:.1f}GiB"
