"""The tenant role's LUKS header and key tasks on loop devices, on this kernel.

CI kernels have no device-mapper, so nothing here opens a volume; format, add key,
remove key, test-passphrase and erase all work on a loop device without it. The
open/mount/crypttab path is proven in a real kernel by the volume_vm Molecule scenario.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None,
    reason="needs root and losetup (loop devices)",
)


@pytest.fixture(scope="module", autouse=True)
def host_packages() -> None:
    """cryptsetup comes from the tenant role (host_packages.yml), as on any host: a fresh
    machine without it must not skip these tests."""
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(ROOT / "tests/volume/luks.yml")]
    argv += ["-e", f"ansible_python_interpreter={ROOT / '.venv' / 'bin' / 'python'}"]
    argv += ["-e", "luks_step=packages", "-e", "luks_tenant=packages"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(argv, cwd=ROOT, env=env, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    assert shutil.which("cryptsetup"), "the tenant role did not install cryptsetup"


def sh(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=stdin, capture_output=True, check=False)


def opens(device: str, keyfile: Path) -> bool:
    return sh("cryptsetup", "open", "--test-passphrase", "--key-file", str(keyfile), device).returncode == 0


def keyslots(device: str) -> int:
    dump = sh("cryptsetup", "luksDump", device).stdout.decode()
    area = dump.split("Keyslots:")[1].split("Tokens:")[0]
    return len(re.findall(r"^  \d+: luks2", area, re.M))


def loop_of(path: Path) -> str:
    return (
        sh("losetup", "--list", "--noheadings", "--output", "NAME", "--associated", str(path)).stdout.decode().strip()
    )


class Volume:
    """One test tenant's volume, driven through tests/volume/luks.yml."""

    def __init__(self, tmp: Path, name: str, device: str = "", vault: dict[str, str] | None = None) -> None:
        self.name = name
        self.device = device
        self.volume_dir = tmp / "volumes"
        self.data_dir = tmp / "data"
        self.vars_file = tmp / f"{name}.vars.json"
        extra = {
            "luks_tenant": name,
            "luks_device": device,
            "tenant_volume_dir": str(self.volume_dir),
            "tenant_data_dir": str(self.data_dir),
        }
        if vault is not None:
            extra |= {"tenant_volume_key_source": "vault", **vault}
        # A vars file, not -e key=value: a passphrase must not show in the process list.
        self.vars_file.write_text(json.dumps(extra))
        self.vars_file.chmod(0o600)

    @property
    def backing(self) -> str:
        return self.device or loop_of(self.volume_dir / f"{self.name}.img")

    @property
    def keyfile(self) -> Path:
        return Path(f"/etc/tenancy/{self.name}/volume/luks.key")

    def run(self, step: str, **extra: str) -> subprocess.CompletedProcess[str]:
        argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(ROOT / "tests/volume/luks.yml")]
        argv += ["-e", f"ansible_python_interpreter={ROOT / '.venv' / 'bin' / 'python'}"]
        argv += ["-e", f"@{self.vars_file}", "-e", f"luks_step={step}"]
        for key, value in extra.items():
            argv += ["-e", f"{key}={value}"]
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
        return subprocess.run(argv, cwd=ROOT, env=env, text=True, capture_output=True, check=False)

    def cleanup(self) -> None:
        image = self.volume_dir / f"{self.name}.img"
        if image.exists() and loop_of(image):
            sh("losetup", "--detach", loop_of(image))
        shutil.rmtree(f"/etc/tenancy/{self.name}", ignore_errors=True)


def changed(result: subprocess.CompletedProcess[str]) -> int:
    return int(re.search(r"changed=(\d+)", result.stdout).group(1))


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


@pytest.fixture
def file_volume(tmp_path: Path) -> Iterator[Volume]:
    volume = Volume(tmp_path, "ci-luks-file")
    yield volume
    volume.cleanup()


@pytest.fixture
def given_device(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "given.img"
    image.write_bytes(b"")
    os.truncate(image, 64 * 1024 * 1024)
    device = sh("losetup", "--find", "--show", str(image)).stdout.decode().strip()
    assert device.startswith("/dev/loop")
    yield device
    sh("losetup", "--detach", device)


def test_format_creates_an_argon2id_luks2_header_with_a_root_only_key(file_volume: Volume):
    first = ok(file_volume.run("format"))
    image = file_volume.volume_dir / f"{file_volume.name}.img"
    info = image.stat()
    assert info.st_size == 64 * 1024 * 1024
    assert info.st_blocks * 512 < info.st_size, "the backing file should be sparse"
    assert stat.S_IMODE(info.st_mode) == 0o600
    device = file_volume.backing
    assert device.startswith("/dev/loop")
    dump = sh("cryptsetup", "luksDump", device).stdout.decode()
    assert "Version:       \t2" in dump
    assert "PBKDF:      argon2id" in dump
    assert keyslots(device) == 1

    key = file_volume.keyfile
    assert stat.S_IMODE(key.stat().st_mode) == 0o400 and key.stat().st_uid == 0
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert len(key.read_text()) == 64
    assert opens(device, key)
    assert key.read_text() not in first.stdout + first.stderr

    again = ok(file_volume.run("format"))
    assert changed(again) == 0, again.stdout[-3000:]


def test_rotation_adds_proves_and_removes_without_reformatting(file_volume: Volume, tmp_path: Path):
    ok(file_volume.run("format"))
    device = file_volume.backing
    old_key = tmp_path / "old.key"
    shutil.copy(file_volume.keyfile, old_key)
    uuid = sh("cryptsetup", "luksUUID", device).stdout

    rotated = ok(file_volume.run("rotate"))
    new_key = file_volume.keyfile.read_text()
    assert new_key != old_key.read_text()
    assert not opens(device, old_key), "the old key still opens the volume after rotation"
    assert opens(device, file_volume.keyfile)
    assert keyslots(device) == 1
    assert sh("cryptsetup", "luksUUID", device).stdout == uuid, "rotation must not reformat"
    assert not Path(f"{file_volume.keyfile}.new").exists()
    assert stat.S_IMODE(file_volume.keyfile.stat().st_mode) == 0o400
    for secret in (new_key, old_key.read_text()):
        assert secret not in rotated.stdout + rotated.stderr


def test_an_interrupted_rotation_is_finished_by_the_next_run(file_volume: Volume, tmp_path: Path):
    """A run that stopped after adding the new key (step 1) leaves luks.key.new behind and
    two keyslots; the next rotation finishes with that key instead of losing it."""
    ok(file_volume.run("format"))
    device = file_volume.backing
    pending = Path(f"{file_volume.keyfile}.new")
    pending.write_text("n" * 64)
    pending.chmod(0o400)
    assert (
        sh(
            "cryptsetup",
            "luksAddKey",
            "--pbkdf-force-iterations",
            "4",
            "--pbkdf-memory",
            "32768",
            "--key-file",
            str(file_volume.keyfile),
            device,
            str(pending),
        ).returncode
        == 0
    )
    old_key = tmp_path / "old.key"
    shutil.copy(file_volume.keyfile, old_key)

    ok(file_volume.run("rotate"))
    assert file_volume.keyfile.read_text() == "n" * 64
    assert not opens(device, old_key)
    assert keyslots(device) == 1


def test_erase_destroys_every_keyslot_of_a_given_device(tmp_path: Path, given_device: str):
    volume = Volume(tmp_path, "ci-luks-dev", device=given_device)
    try:
        ok(volume.run("format"))
        ok(volume.run("rotate"))
        key = tmp_path / "last.key"
        shutil.copy(volume.keyfile, key)
        assert opens(given_device, key)

        erased = ok(volume.run("erase"))
        assert "Destroy every keyslot" in erased.stdout
        assert not opens(given_device, key), "the key still opens the device after removal"
        assert sh("cryptsetup", "isLuks", given_device).returncode != 0, "a LUKS header survived removal"
        assert not volume.keyfile.parent.exists()
        assert changed(ok(volume.run("erase"))) == 0
    finally:
        volume.cleanup()


def test_erase_of_a_file_backed_volume_detaches_and_deletes_it(file_volume: Volume):
    ok(file_volume.run("format"))
    image = file_volume.volume_dir / f"{file_volume.name}.img"
    ok(file_volume.run("erase"))
    assert not image.exists()
    assert not file_volume.keyfile.parent.exists()
    assert image.name not in sh("losetup", "--list").stdout.decode()


def test_vault_passphrases_format_and_rotate_without_showing(tmp_path: Path, given_device: str):
    old, new = "old-passphrase-" + "o" * 24, "new-passphrase-" + "n" * 24
    volume = Volume(
        tmp_path, "ci-luks-vault", device=given_device, vault={"tenant_volume_passphrases": {"ci-luks-vault": old}}
    )
    try:
        formatted = ok(volume.run("format"))
        assert not volume.keyfile.exists(), "vault volumes have no keyfile on the host"
        assert sh("cryptsetup", "open", "--test-passphrase", given_device, stdin=old.encode()).returncode == 0

        rotating = Volume(
            tmp_path,
            "ci-luks-vault",
            device=given_device,
            vault={
                "tenant_volume_passphrases": {"ci-luks-vault": new},
                "tenant_volume_old_passphrases": {"ci-luks-vault": old},
            },
        )
        rotated = ok(rotating.run("rotate"))
        assert sh("cryptsetup", "open", "--test-passphrase", given_device, stdin=new.encode()).returncode == 0
        assert sh("cryptsetup", "open", "--test-passphrase", given_device, stdin=old.encode()).returncode != 0
        for output in (formatted, rotated):
            assert old not in output.stdout + output.stderr and new not in output.stdout + output.stderr
    finally:
        volume.cleanup()


@pytest.mark.skipif(Path("/sys/module/dm_mod").exists(), reason="this kernel has device-mapper")
def test_opening_without_device_mapper_fails_in_preflight_naming_it(file_volume: Volume):
    result = file_volume.run("open", tenant_volume_encryption="true")
    assert result.returncode != 0
    said = " ".join(result.stdout.replace("''", "'").split())
    assert "host localhost: tenant_volume_encryption is true, but this kernel lacks device-mapper (dm_mod)" in said
    assert "Nothing was changed" in said
    assert not (file_volume.volume_dir / f"{file_volume.name}.img").exists(), "preflight must change nothing"


def test_unencrypted_volume_is_announced_loudly(file_volume: Volume):
    result = ok(file_volume.run("open", tenant_volume_encryption="false"))
    assert "stored UNENCRYPTED" in " ".join(result.stdout.split())
    data = file_volume.data_dir / file_volume.name
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert not (file_volume.volume_dir / f"{file_volume.name}.img").exists()


def blkid_type(device: str) -> str:
    return sh("blkid", "--probe", "--output", "value", "--match-tag", "TYPE", device).stdout.decode().strip()


def test_a_given_device_that_holds_a_filesystem_is_never_formatted(tmp_path: Path, given_device: str):
    """The role's own format step, used alone, refuses a device with a filesystem on it."""
    assert sh("mkfs.ext4", "-q", given_device).returncode == 0
    volume = Volume(tmp_path, "ci-luks-fs", device=given_device)
    try:
        result = volume.run("format")
        said = " ".join(result.stdout.split())
        assert result.returncode != 0
        assert (
            f"tenant ci-luks-fs: field 'tenant_volume_devices' has invalid value {given_device} on host localhost: "
            "it holds a ext4 signature, not a LUKS2 volume" in said
        ), said[-3000:]
        assert blkid_type(given_device) == "ext4", "the filesystem was formatted over"
    finally:
        volume.cleanup()


def test_preflight_refuses_a_given_device_with_a_filesystem_before_anything_changes(tmp_path: Path, given_device: str):
    assert sh("mkfs.ext4", "-q", given_device).returncode == 0
    volume = Volume(tmp_path, "ci-luks-fs", device=given_device)
    try:
        result = volume.run("open", tenant_volume_encryption="true")
        said = " ".join(result.stdout.split())
        assert result.returncode != 0
        refused = f"tenant ci-luks-fs: field 'tenant_volume_devices' has invalid value {given_device}"
        assert refused in said, said[-3000:]
        assert "Nothing was changed" in said
        assert "luks_backing" not in result.stdout, "a volume task ran although preflight failed"
        assert blkid_type(given_device) == "ext4"
        assert not volume.keyfile.exists()
    finally:
        volume.cleanup()


def test_preflight_refuses_plain_data_over_a_blank_given_device(tmp_path: Path, given_device: str):
    """A given device always exists; that is not 'an encrypted volume exists'. Mounting a
    new LUKS volume from it over the tenant's plain data would hide the data."""
    volume = Volume(tmp_path, "ci-luks-plain", device=given_device)
    plain = volume.data_dir / volume.name / "customer-data.txt"
    plain.parent.mkdir(parents=True)
    plain.write_text("plaintext that must not be hidden\n")
    try:
        result = volume.run("open", tenant_volume_encryption="true")
        said = " ".join(result.stdout.split())
        assert result.returncode != 0
        assert "tenant ci-luks-plain: field 'tenant_volume_encryption' has invalid value true" in said, said[-3000:]
        assert "(1 entry) is not encrypted" in said
        assert blkid_type(given_device) == "", "the device was formatted"
        assert plain.read_text() == "plaintext that must not be hidden\n"
    finally:
        volume.cleanup()


def test_a_given_device_named_by_a_symlink_is_taken_as_its_device(tmp_path: Path, given_device: str):
    """LVM (/dev/vg/lv, /dev/mapper/...) and /dev/disk/by-id paths are symlinks: preflight
    looks at the device they name, not at the link."""
    link = tmp_path / "by-id-link"
    link.symlink_to(given_device)
    volume = Volume(tmp_path, "ci-luks-link", device=str(link))
    try:
        result = volume.run("open", tenant_volume_encryption="true")
        said = " ".join(result.stdout.split())
        assert "field 'tenant_volume_devices'" not in said, said[-3000:]
        if Path("/sys/module/dm_mod").exists():
            ok(result)
        else:
            assert "this kernel lacks device-mapper (dm_mod)" in said, said[-3000:]
    finally:
        volume.cleanup()
