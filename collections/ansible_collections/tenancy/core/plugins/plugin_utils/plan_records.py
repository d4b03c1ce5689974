"""Plan records as the filters after the planner read them: checked once, selected per host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


def plan_records(plan: Any, who: str, label: str = "the") -> list[Mapping[str, Any]]:
    """The records of a plan, checked to be a list of mappings with a name; else an
    AnsibleFilterError from filter `who` (also used by tenancy_host_tenants)."""
    if isinstance(plan, (str, bytes, Mapping)) or not isinstance(plan, Sequence):
        raise AnsibleFilterError(f"{who}: {label} plan is {type(plan).__name__}, not a list of records")
    for record in plan:
        if not isinstance(record, Mapping) or not record.get("name"):
            raise AnsibleFilterError(f"{who}: a record of {label} plan has no name: {record!r}")
    return list(plan)


def host_tenants(
    plan: Any, host: str, names: Sequence[str] | None = None, mode: str | None = None
) -> list[Mapping[str, Any]]:
    """The plan records `host` converges: those placed on it, or on no host (a tenant being
    removed everywhere); only `names` when given; only present tenants of GPU `mode` when given.
    Errors name the filter tenancy_host_tenants, which is this with its docs."""
    records = plan_records(plan, "tenancy_host_tenants")
    if names is not None and (isinstance(names, (str, bytes, Mapping)) or not isinstance(names, Sequence)):
        raise AnsibleFilterError(f"tenancy_host_tenants: names is {type(names).__name__}, not a list of tenant names")
    wanted = None if names is None else {str(n) for n in names}
    return [
        record
        for record in records
        if record.get("state") != "unplaced"
        and record.get("host") in (host, None)
        and (wanted is None or record["name"] in wanted)
        and (mode is None or (record.get("mode") == mode and record.get("state") == "present"))
    ]
