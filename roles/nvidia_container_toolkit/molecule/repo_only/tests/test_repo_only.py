"""Repository, keyring and daemon.json after the nvidia_container_toolkit role (package not installed)."""

from __future__ import annotations

import json

testinfra_hosts = ["ansible://all"]

KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.asc"
LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
MIRROR = "/srv/nvidia-mirror"


def test_keyring_is_the_mirror_key(host):
    keyring = host.file(KEYRING)
    assert keyring.exists and keyring.user == "root" and keyring.mode == 0o644
    assert keyring.content_string == host.file(f"{MIRROR}/gpgkey").content_string


def test_repository_entry_is_signed_by_its_own_keyring(host):
    lines = [line for line in host.file(LIST).content_string.splitlines() if line.startswith("deb ")]
    assert lines == [f"deb [signed-by={KEYRING}] file://{MIRROR}/stable/deb/$(ARCH) /"]


def _update_only(host, list_file):
    """apt-get update of one list file into empty lists, so nothing verified earlier is reused."""
    lists = f"/tmp/lists-{list_file.rsplit('/', 1)[-1]}"
    host.run(f"rm -rf {lists} && mkdir -p {lists}/partial")
    return host.run(
        f"apt-get update -o Dir::Etc::sourcelist={list_file} -o Dir::Etc::sourceparts=- "
        f"-o Dir::State::Lists={lists} -o APT::Get::List-Cleanup=0"
    )


def test_apt_accepts_the_repository_with_this_keyring(host):
    update = _update_only(host, LIST)
    assert update.rc == 0, update.stdout + update.stderr
    assert "nvidia-mirror" in update.stdout


def test_apt_rejects_the_repository_under_another_keyring(host):
    """The planted break: same repository, unrelated key. If this passed, the check above would prove nothing."""
    planted = "/tmp/planted-wrong-key.list"
    made = host.run(f"sed 's#{KEYRING}#{MIRROR}/other-key.asc#' {LIST} > {planted}")
    assert made.rc == 0 and f"{MIRROR}/other-key.asc" in host.file(planted).content_string
    update = _update_only(host, planted)
    assert update.rc != 0, "apt accepted a repository signed by a key outside its keyring"
    assert "NO_PUBKEY" in update.stdout + update.stderr or "not signed" in update.stdout + update.stderr


def test_daemon_json_has_the_runtime_and_keeps_other_keys(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert config["default-runtime"] == "nvidia"
    assert config["labels"] == ["tenancy.molecule=prepare"]
    assert "log-opts" in config, "the docker role's own options were lost"


def test_the_restarted_daemon_knows_the_runtime(host):
    runtimes = host.run("docker info --format '{{json .Runtimes}}'")
    assert runtimes.rc == 0, runtimes.stderr
    assert "nvidia" in json.loads(runtimes.stdout)


def test_no_toolkit_package_and_no_cdi_spec(host):
    assert not host.package("nvidia-container-toolkit").is_installed
    assert not host.file("/etc/cdi/nvidia.yaml").exists
