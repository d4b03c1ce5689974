"""tenancy_volume_refusals: encrypted volumes are never made where they would hide a
tenant's plain data or destroy what a given block device holds."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_volume_refusals import tenancy_volume_refusals

DATA_DIR = "/var/lib/tenancy/data"


def found(name: str, matched: int) -> dict:
    return {"item": {"name": name}, "matched": matched}


def backing(name: str, path: str, exists: bool = True, isblk: bool = False) -> dict:
    stat = {"exists": exists, "path": path} | ({"isblk": isblk} if exists else {})
    return {"item": {"name": name}, "stat": stat}


def signature(name: str, rc: int, kind: str = "") -> dict:
    return {"item": {"item": {"name": name}}, "rc": rc, "stdout": kind + "\n" if kind else ""}


def refusals(data, backings, signatures, devices=None):
    return tenancy_volume_refusals(data, backings, signatures, devices or {}, DATA_DIR, "gpu1")


def test_plain_data_with_no_volume_yet_is_refused_naming_the_tenant_and_the_entries():
    said = refusals([found("a", 3)], [backing("a", "/v/a.img", exists=False)], [])
    assert said == [
        "tenant a: field 'tenant_volume_encryption' has invalid value true: a's data in /var/lib/tenancy/data/a "
        "on host gpu1 (3 entries) is not encrypted and no encrypted volume exists for it yet. A new encrypted volume "
        "would hide that data from its tenant and leave the plaintext on disk: move the data into an encrypted "
        'volume as roles/tenant/README.md says ("Turning encryption on for existing tenants"), or keep '
        "tenant_volume_encryption false for this host."
    ]


def test_data_on_an_existing_luks_volume_is_the_normal_case():
    """The mounted volume's own files are in the data directory: nothing to refuse."""
    assert refusals([found("a", 5)], [backing("a", "/v/a.img")], [signature("a", 0, "crypto_LUKS")]) == []
    device = [backing("b", "/dev/vdb", isblk=True)]
    assert refusals([found("b", 5)], device, [signature("b", 0, "crypto_LUKS")], {"b": "/dev/vdb"}) == []


def test_an_empty_data_directory_over_a_blank_device_is_formatted():
    device = [backing("b", "/dev/vdb", isblk=True)]
    assert refusals([found("b", 0)], device, [signature("b", 2)], {"b": "/dev/vdb"}) == []


def test_plain_data_over_a_blank_given_device_is_refused():
    """Planted break of the old check: a given device always exists, which it took for 'an
    encrypted volume exists', so the plain data would have been hidden."""
    device = [backing("b", "/dev/vdb", isblk=True)]
    said = refusals([found("b", 1)], device, [signature("b", 2)], {"b": "/dev/vdb"})
    assert len(said) == 1
    assert said[0].startswith("tenant b: field 'tenant_volume_encryption' has invalid value true: b's data in ")
    assert "(1 entry) is not encrypted" in said[0]


def test_plain_data_over_a_backing_file_without_a_luks_header_is_refused():
    """A backing file left by an interrupted first run has no header yet."""
    said = refusals([found("a", 2)], [backing("a", "/v/a.img")], [signature("a", 2)])
    assert len(said) == 1 and "(2 entries) is not encrypted" in said[0]


@pytest.mark.parametrize(
    ("stat", "sig", "problem"),
    [
        (backing("b", "/dev/vdb", isblk=True), signature("b", 0, "ext4"), "it holds a ext4 signature, not a LUKS2"),
        (backing("b", "/dev/vdb", isblk=True), signature("b", 0, "LVM2_member"), "it holds a LVM2_member signature"),
        (backing("b", "/dev/vdb", exists=False), None, "no such device"),
        (backing("b", "/dev/vdb", isblk=False), signature("b", 2), "not a block device"),
    ],
)
def test_a_given_device_that_cannot_be_formatted_safely_is_refused_naming_it(stat, sig, problem):
    said = refusals([found("b", 0)], [stat], [sig] if sig else [], {"b": "/dev/vdb"})
    assert len(said) == 1
    assert said[0].startswith("tenant b: field 'tenant_volume_devices' has invalid value /dev/vdb on host gpu1: ")
    assert problem in said[0]


def test_every_refused_tenant_is_named_at_once_and_skipped_results_are_ignored():
    data = [found("a", 1), found("b", 0), {"skipped": True, "item": {"name": "c"}}]
    backings = [backing("a", "/v/a.img", exists=False), backing("b", "/dev/sdz", isblk=True)]
    said = refusals(data, backings, [signature("b", 0, "xfs")], {"b": "/dev/sdz"})
    assert [s.split(":")[0] for s in said] == ["tenant a", "tenant b"]


def test_a_blkid_failure_is_an_error_not_a_blank_device():
    with pytest.raises(AnsibleFilterError, match="tenant b: blkid failed on /dev/vdb"):
        refusals(
            [found("b", 0)],
            [backing("b", "/dev/vdb", isblk=True)],
            [signature("b", 4) | {"stderr": "boom"}],
            {"b": "/dev/vdb"},
        )


def test_input_that_is_not_a_list_of_results_is_an_error():
    with pytest.raises(AnsibleFilterError, match="tenancy_volume_refusals: the data directories' find is dict"):
        refusals({"results": []}, [], [])


def test_blkid_that_cannot_run_is_an_error_not_a_blank_device():
    """Ansible answers rc 2 both for blkid's 'no signature' and for a blkid it cannot run."""
    missing = {"item": {"item": {"name": "b"}}, "rc": 2, "msg": "[Errno 2] No such file or directory: b'blkid'"}
    with pytest.raises(AnsibleFilterError, match=r"tenant b: blkid failed on /dev/vdb: \[Errno 2\] No such file"):
        refusals([found("b", 0)], [backing("b", "/dev/vdb", isblk=True)], [missing], {"b": "/dev/vdb"})
    blank = {"item": {"item": {"name": "b"}}, "rc": 2, "msg": "non-zero return code", "stdout": ""}
    assert refusals([found("b", 0)], [backing("b", "/dev/vdb", isblk=True)], [blank], {"b": "/dev/vdb"}) == []
