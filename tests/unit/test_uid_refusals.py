"""tenancy_uid_refusals: a tenant's planned uid must be nobody else's on its host."""

from __future__ import annotations

import base64

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_uid_refusals import tenancy_uid_refusals

A = {"name": "companyA", "uid": 2000030001}
B = {"name": "companyB", "uid": 2000030002}
PASSWD = {
    "root": ["x", "0", "0", "", "/root", "/bin/bash"],
    "alice": ["x", "1000", "1000", "", "/home/alice", "/bin/sh"],
}
GROUP = {"root": ["x", "0", ""], "alice": ["x", "1000", ""]}


def slurped(path: str, text: str | None) -> dict:
    if text is None:
        return {"item": path, "failed": True, "msg": "file not found"}
    return {"item": path, "content": base64.b64encode(text.encode()).decode()}


def test_a_host_with_no_one_on_the_tenants_uids_refuses_nothing():
    subids = [slurped("/etc/subuid", "alice:100000:65536\n"), slurped("/etc/subgid", None)]
    assert tenancy_uid_refusals([A, B], PASSWD, GROUP, subids, "h1") == []


def test_an_account_with_the_uid_is_refused_naming_tenant_field_value_and_account():
    passwd = {**PASSWD, "bob": ["x", "2000030002", "100", "", "/home/bob", "/bin/sh"]}
    assert tenancy_uid_refusals([A, B], passwd, GROUP, [], "h1") == [
        "tenant 'companyB': field 'uid' has invalid value 2000030002 on host h1: it is the uid of the account "
        "'bob', who would own the tenant's files."
    ]


def test_a_group_with_the_gid_is_refused():
    group = {**GROUP, "staff": ["x", "2000030001", "alice"]}
    (refusal,) = tenancy_uid_refusals([A], PASSWD, group, [], "h1")
    assert "'staff'" in refusal and "2000030001" in refusal


@pytest.mark.parametrize("path", ["/etc/subuid", "/etc/subgid"])
def test_a_subordinate_range_that_holds_the_uid_is_refused(path):
    # 2000000000 + 65536 covers 30001 and 30002; the last id of a range counts, the next does not.
    subids = [slurped(path, "carol:2000000000:30002\n# a comment\nbroken line\n")]
    refusals = tenancy_uid_refusals([A, B], PASSWD, GROUP, subids, "h1")
    assert len(refusals) == 1
    assert refusals[0].startswith("tenant 'companyA': field 'uid' has invalid value 2000030001 on host h1:")
    assert f"{path} gives 'carol' the range 2000000000-2000030001" in refusals[0]


def test_malformed_records_raise():
    with pytest.raises(AnsibleFilterError, match="tenancy_uid_refusals: malformed input"):
        tenancy_uid_refusals([{"name": "a"}], PASSWD, GROUP)
