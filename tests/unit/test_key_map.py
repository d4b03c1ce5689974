"""The gateway's key map and the runtime-API commands that apply it (roles/tenant/tasks/
keys.yml, keys_sync.yml): what survives a rotation, and the order of the commands."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_key_commands import tenancy_key_commands
from tenancy_key_map import tenancy_key_map

NOW = 1_800_000_000
MAP = "/usr/local/etc/haproxy/keys.map"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_a_fresh_map_holds_only_the_primary_keys_hash():
    assert tenancy_key_map("new-key", now=NOW) == [{"hash": sha("new-key"), "id": "primary"}]


def test_a_rotation_with_grace_keeps_the_old_key_until_it_expires():
    entries = tenancy_key_map("new", [{"hash": sha("old"), "expires": NOW + 600}], [], "", now=NOW)
    assert entries == [{"hash": sha("new"), "id": "primary"}, {"hash": sha("old"), "id": f"retired-{NOW + 600}"}]


def test_retired_keys_in_the_current_map_survive_until_they_expire():
    current = "\n".join(
        [
            f"{sha('new')} primary",
            f"{sha('alive')} retired-{NOW + 1}",
            f"{sha('expired')} retired-{NOW}",
            f"{sha('dropped')} retired-{NOW + 99}",
            f"{sha('garbled')} retired-soon",
            "a line with three fields",
        ]
    )
    entries = tenancy_key_map("new", [], [sha("dropped")], current, now=NOW)
    assert [e["hash"] for e in entries] == [sha("new"), sha("alive")]


def test_the_primary_is_never_listed_as_retired():
    current = f"{sha('same')} retired-{NOW + 9}"
    entries = tenancy_key_map("same", [{"hash": sha("same"), "expires": NOW + 5}], [], current, now=NOW)
    assert entries == [{"hash": sha("same"), "id": "primary"}]


def test_bad_input_never_shows_a_key():
    with pytest.raises(AnsibleFilterError) as error:
        tenancy_key_map("secret-key", [{"expires": 5}])
    assert "secret-key" not in str(error.value)
    with pytest.raises(AnsibleFilterError):
        tenancy_key_map("")


def test_commands_add_before_set_before_delete():
    live = [
        "0x1 " + sha("old") + " primary",
        "0x2 " + sha("kept") + " retired-5",
        "0x3 " + sha("gone") + " retired-4",
        "garbage",
    ]
    wanted = [
        {"hash": sha("new"), "id": "primary"},
        {"hash": sha("old"), "id": "retired-9"},
        {"hash": sha("kept"), "id": "retired-5"},
    ]
    assert tenancy_key_commands(live, wanted, MAP) == [
        f"add map {MAP} {sha('new')} primary",
        f"set map {MAP} {sha('old')} retired-9",
        f"del map {MAP} {sha('gone')}",
    ]


def test_a_live_map_that_matches_needs_no_command():
    wanted = [{"hash": sha("k"), "id": "primary"}]
    assert tenancy_key_commands([f"0xabc {sha('k')} primary"], wanted, MAP) == []


def test_commands_refuse_malformed_input():
    with pytest.raises(AnsibleFilterError):
        tenancy_key_commands("show map output as one string", [], MAP)
    with pytest.raises(AnsibleFilterError):
        tenancy_key_commands([], [{"hash": "x"}], MAP)
