"""tenancy_luks_reencrypt and tenancy_luks_progress: the volume-key rotation of
rotate-keys.yml -e rotate=volume -e reencrypt=true (roles/tenant/tasks/luks_reencrypt.yml).

The headers are real: `cryptsetup luksDump --dump-json-metadata` (cryptsetup 2.6.1, Debian 12,
in the test VM) of a 64 MiB volume with one keyslot, with two, and after
`cryptsetup reencrypt --init-only` (a re-encryption started and not finished), and after it was
finished with `--resume-only`."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_luks_progress import tenancy_luks_progress
from tenancy_luks_reencrypt import tenancy_luks_reencrypt

FIXTURES = Path(__file__).parent / "fixtures" / "luks"
KEY = "/etc/tenancy/alpha/volume/luks.key"
DEV = "/dev/loop0"


def header(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def test_one_keyslot_and_nothing_pending_starts_a_reencryption_with_the_tenants_keyfile():
    state = tenancy_luks_reencrypt(header("one_slot"), "alpha", DEV, KEY, True)
    assert state["keyslots"] == [1] and not state["pending"]
    assert state["argv"] == [
        "cryptsetup", "reencrypt", "--batch-mode", "--key-file", KEY,
        "--progress-json", "--progress-frequency", "10", DEV,
    ]  # fmt: skip
    assert len(state["volume_key_digests"]) == 1


def test_reading_the_state_alone_plans_nothing():
    state = tenancy_luks_reencrypt(header("two_slots"), "alpha", DEV)
    assert state["keyslots"] == [0, 1] and state["argv"] == [] and not state["pending"]


def test_a_second_keyslot_is_refused_by_name_before_it_could_be_destroyed():
    with pytest.raises(AnsibleFilterError) as err:
        tenancy_luks_reencrypt(header("two_slots"), "alpha", DEV, KEY, True)
    message = str(err.value)
    assert "tenant alpha" in message and DEV in message and "keyslots 0, 1" in message
    assert "luksKillSlot" in message


def test_an_unfinished_reencryption_is_resumed_whatever_its_keyslots():
    state = tenancy_luks_reencrypt(header("pending"), "alpha", DEV, KEY, True)
    # Mid-way the header holds the old and the new volume key, each in a keyslot of the
    # same passphrase, and a third keyslot of type reencrypt.
    assert state["pending"] and state["keyslots"] == [0, 1]
    assert len(state["volume_key_digests"]) == 2
    assert state["argv"][-2:] == ["--resume-only", DEV]


def test_the_volume_key_digest_is_what_a_reencryption_changes():
    before = tenancy_luks_reencrypt(header("one_slot"), "alpha", DEV)["volume_key_digests"]
    pending = tenancy_luks_reencrypt(header("pending"), "alpha", DEV)["volume_key_digests"]
    after = tenancy_luks_reencrypt(header("reencrypted"), "alpha", DEV)["volume_key_digests"]
    # Mid-way the header holds both; when it is done, only the new one.
    assert set(before) < set(pending) and len(after) == 1 and after[0] in pending and after != before


@pytest.mark.parametrize("text", ["", "Device /dev/loop0 is not a valid LUKS device.", '{"keyslots": 1}', None])
def test_text_that_is_not_luks2_metadata_names_the_tenant_and_the_device(text):
    with pytest.raises(
        AnsibleFilterError, match=r"tenant alpha: the LUKS header of its volume on /dev/loop0 could not"
    ):
        tenancy_luks_reencrypt(text, "alpha", DEV)


def test_progress_is_the_last_json_record_of_the_log():
    log = (
        '{"device":"/root/a.img","device_bytes":"0","device_size":"50331648","speed":"0","eta_ms":"0","time_ms":"7792"}\n'
        '{"device":"/root/a.img","device_bytes":"25165824","device_size":"50331648","speed":"6457713",'
        '"eta_ms":"3000","time_ms":"11794"}\n'
        "Reencryption interrupted.\n"
    )
    assert tenancy_luks_progress(log) == {
        "done_bytes": 25165824, "size_bytes": 50331648, "percent": 50.0, "seconds": 11.8,
    }  # fmt: skip


@pytest.mark.parametrize("log", ["", None, "No key available with this passphrase.\n", '{"device_bytes": "x"}'])
def test_a_log_without_a_record_reads_as_no_progress(log):
    assert tenancy_luks_progress(log) == {}
