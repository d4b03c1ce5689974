"""The tenants' LUKS2 volumes inside the VM (testinfra, ansible backend).

verify runs twice: after converge (two open volumes) and after side_effect (reboot,
rotation and re-encryption of alpha's key, removal of beta). /root/evidence/phase tells which.
"""

from __future__ import annotations

import shlex

import pytest

DATA = "/var/lib/tenancy/data"
EVIDENCE = "/root/evidence"
# Each tenant's own uid and gid: 2000000000 + its port (group_vars/all/volumes.yml).
UIDS = {"alpha": 2000030001, "beta": 2000030002}
DEVICES = {
    "alpha": "/var/lib/tenancy/volumes/alpha.img",
    "beta": "/dev/vdb",
}


def after_side_effect(host) -> bool:
    return host.file(f"{EVIDENCE}/phase").exists


def live_tenants(host) -> list[str]:
    return ["alpha"] if after_side_effect(host) else ["alpha", "beta"]


def opens(host, device: str, keyfile: str) -> bool:
    return host.run(f"cryptsetup open --test-passphrase --key-file {keyfile} {device}").rc == 0


def test_the_kernel_has_dm_crypt(host):
    assert host.file("/sys/module/dm_crypt").exists


def test_each_live_volume_is_an_active_luks2_mapping_with_ext4_mounted(host):
    for name in live_tenants(host):
        status = host.run(f"cryptsetup status tenancy-{name}-data")
        assert status.rc == 0 and "is active and is in use" in status.stdout, status.stdout
        assert "type:    LUKS2" in status.stdout and "cipher:  aes-xts-plain64" in status.stdout
        mount = host.mount_point(f"{DATA}/{name}")
        assert mount.exists and mount.filesystem == "ext4"
        assert mount.device == f"/dev/mapper/tenancy-{name}-data"
        root = host.file(f"{DATA}/{name}")
        assert (root.uid, root.gid, root.mode) == (UIDS[name], UIDS[name], 0o700)


def test_each_live_volume_takes_a_write(host):
    for name in live_tenants(host):
        wrote = host.run(f"sh -c 'echo probe-{name} > {DATA}/{name}/probe && sync && cat {DATA}/{name}/probe'")
        assert wrote.rc == 0 and wrote.stdout.strip() == f"probe-{name}"


def test_each_live_key_is_root_only_and_in_crypttab(host):
    crypttab = host.file("/etc/crypttab").content_string
    for name in live_tenants(host):
        key = host.file(f"/etc/tenancy/{name}/volume/luks.key")
        assert (key.uid, key.mode) == (0, 0o400)
        assert host.file(f"/etc/tenancy/{name}/volume").mode == 0o700
        assert f"tenancy-{name}-data {DEVICES[name]} /etc/tenancy/{name}/volume/luks.key luks,nofail" in crypttab
        assert opens(host, DEVICES[name], key.path)


def test_reboot_reopened_alpha_from_crypttab(host):
    if not after_side_effect(host):
        pytest.skip("no reboot before the first verify")
    boot_before = host.file(f"{EVIDENCE}/boot_id.before").content_string.strip()
    assert host.file("/proc/sys/kernel/random/boot_id").content_string.strip() != boot_before, "the VM did not reboot"
    seen = host.file(f"{EVIDENCE}/after_reboot.txt").content_string
    assert "is active and is in use" in seen, seen
    assert "/dev/mapper/tenancy-alpha-data ext4" in seen, seen


def test_rotation_kept_the_data_and_the_mount_and_retired_the_old_key(host):
    if not after_side_effect(host):
        pytest.skip("no rotation before the first verify")
    assert host.run(f"sha256sum --check --status {EVIDENCE}/payload.sha256").rc == 0, "data changed"
    before = host.file(f"{EVIDENCE}/mount.before_rotation").content_string
    assert before and before == host.file(f"{EVIDENCE}/mount.after_rotation").content_string, "remounted"
    assert not opens(host, DEVICES["alpha"], f"{EVIDENCE}/alpha.key"), "the old key still opens alpha"
    assert opens(host, DEVICES["alpha"], "/etc/tenancy/alpha/volume/luks.key")
    assert not host.file("/etc/tenancy/alpha/volume/luks.key.new").exists


def filesystem_seen(host, image: str, header: str, key: str) -> str:
    """The filesystem type that `header` + `key` reveal in a copy of `image`, read-only.

    An empty string: the mapping opened (the header and key are valid) but the sectors
    decrypt to noise; "no-open": the key does not open the header at all."""
    copy = f"{EVIDENCE}/probe.img"
    script = (
        f"set -e; cp --sparse=always {image} {copy}; loop=$(losetup --find --show --read-only {copy}); "
        f"trap 'cryptsetup close tenancy-probe 2>/dev/null; losetup -d $loop; rm -f {copy}' EXIT; "
        f"cryptsetup open --readonly --header {header} --key-file {key} $loop tenancy-probe "
        "|| { echo no-open; exit 0; }; "
        "blkid -p -o value -s TYPE /dev/mapper/tenancy-probe || true"
    )
    run = host.run(f"sh -c {shlex.quote(script)}")
    assert run.rc == 0, run.stderr
    return run.stdout.strip()


def test_reencryption_left_the_old_header_and_key_reading_nothing_of_the_current_data(host):
    if not after_side_effect(host):
        pytest.skip("no re-encryption before the first verify")
    image, old_header, old_key = DEVICES["alpha"], f"{EVIDENCE}/alpha.header", f"{EVIDENCE}/alpha.key"
    current = f"{EVIDENCE}/alpha-current.header"
    assert host.run(f"cryptsetup luksHeaderBackup {image} --header-backup-file {current}").rc == 0
    try:
        # The control: the current header and key read ext4 in the same copy...
        assert filesystem_seen(host, image, current, "/etc/tenancy/alpha/volume/luks.key") == "ext4"
        # ...and the planted break: before the re-encryption (which is also what a
        # keyslot-only rotation leaves in the data area), the old header and key read it.
        assert filesystem_seen(host, f"{EVIDENCE}/alpha-before.img", old_header, old_key) == "ext4"
        # After it, the old header still opens with the old key, but what it decrypts is noise.
        assert filesystem_seen(host, image, old_header, old_key) == "", "the old header and key still read alpha's data"
    finally:
        host.run(f"rm -f {current}")


def test_the_interrupted_reencryption_was_resumed_and_nothing_is_pending(host):
    if not after_side_effect(host):
        pytest.skip("no re-encryption before the first verify")
    assert "online-reencrypt" in host.file(f"{EVIDENCE}/alpha-interrupted.dump").content_string
    dump = host.run(f"cryptsetup luksDump {DEVICES['alpha']}").stdout
    assert "online-reencrypt" not in dump and "reencrypt" not in dump.split("Keyslots:")[1].split("Tokens:")[0], dump
    log = host.file("/var/log/tenancy/alpha-reencrypt.log")
    assert (log.uid, log.mode & 0o077) == (0, 0), "the progress log is readable by others"
    assert host.file("/var/log/tenancy").mode == 0o700
    records = [line for line in log.content_string.splitlines() if line.startswith("{")]
    assert records and '"device_bytes":"0"' not in records[-1], records[-3:]


def test_the_volume_took_writes_all_through_the_rotation(host):
    if not after_side_effect(host):
        pytest.skip("no rotation before the first verify")
    end = host.file(f"{EVIDENCE}/writer.end").content_string
    assert "ActiveState=failed" not in end, end
    lines = host.file(f"{DATA}/alpha/writer.log").content_string.split()
    assert lines == [str(i) for i in range(1, len(lines) + 1)] and len(lines) > 10, lines[-5:]


def test_removed_volumes_are_crypto_erased(host):
    if not after_side_effect(host):
        pytest.skip("nothing removed before the first verify")
    assert not opens(host, "/dev/vdb", f"{EVIDENCE}/beta.key"), "beta's old key still opens its device"
    assert host.run("cryptsetup isLuks /dev/vdb").rc != 0, "a LUKS header survived on beta's device"
    crypttab = host.file("/etc/crypttab").content_string
    fstab = host.file("/etc/fstab").content_string
    assert "tenancy-beta-data" not in crypttab and "tenancy-beta-data" not in fstab
    assert host.run("cryptsetup status tenancy-beta-data").rc != 0
    assert not host.file("/etc/tenancy/beta/volume").exists
    assert not host.file(f"{DATA}/beta").exists
