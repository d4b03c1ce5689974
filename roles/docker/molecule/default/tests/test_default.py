"""State of the Docker-in-Docker instance after the docker role (Molecule verify step)."""

from __future__ import annotations

import json
import re

import pytest

testinfra_hosts = ["ansible://all"]

MIN_VERSION = (20, 10)


def _version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)", text)
    assert match, f"no version in {text!r}"
    return tuple(int(part) for part in match.groups())


def test_dockerd_runs_and_is_new_enough(host):
    # The instance has no procps (ps): read the process of the pid file instead.
    pid = host.file("/var/run/docker.pid").content_string.strip()
    assert host.file(f"/proc/{pid}/comm").content_string.strip() == "dockerd", f"pid {pid} is not dockerd"
    server = host.run("docker version --format '{{.Server.Version}}'")
    assert server.rc == 0, server.stderr
    assert _version(server.stdout) >= MIN_VERSION, server.stdout


def test_daemon_json_keeps_the_foreign_key_and_adds_the_role_options(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["labels"] == ["tenancy.molecule=prepare"]
    assert config["log-opts"] == {"max-size": "10m", "max-file": "2"}
    assert config["debug"] is True, "side_effect's option is missing"


def test_daemon_json_is_written_sorted(host):
    text = host.file("/etc/docker/daemon.json").content_string
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_the_daemon_read_the_merged_file(host):
    labels = host.run("docker info --format '{{json .Labels}}'")
    assert labels.rc == 0, labels.stderr
    assert "tenancy.molecule=prepare" in json.loads(labels.stdout)


def test_the_restart_handler_replaced_the_daemon(host):
    before = host.file("/tmp/dockerd.pid.before").content_string.strip()
    now = host.file("/var/run/docker.pid").content_string.strip()
    assert before and now and before != now, f"dockerd pid {before} -> {now}: not restarted"
    debug = host.run("docker info --format '{{.Debug}}'")
    assert debug.stdout.strip() == "true", "the restarted daemon did not read debug: true"


@pytest.fixture(scope="module")
def inner_image(host):
    """A tiny image made from the instance's own dash and its libraries (no registry)."""
    script = (
        'files="/usr/bin/dash $(ldd /usr/bin/dash | grep -o "/[^ ]*")"; '
        "tar -ch $files 2>/dev/null | docker import - tenancy-molecule/dash:1"
    )
    made = host.run(script)
    assert made.rc == 0, made.stderr
    return "tenancy-molecule/dash:1"


def test_a_container_runs_inside(host, inner_image):
    run = host.run(f"docker run --rm --name molecule-inner {inner_image} /usr/bin/dash -c 'echo inner-ok'")
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "inner-ok"


def test_new_containers_get_the_log_options(host, inner_image):
    host.run("docker rm -f molecule-logcheck")
    created = host.run(f"docker create --name molecule-logcheck {inner_image} /usr/bin/dash -c true")
    assert created.rc == 0, created.stderr
    config = host.run("docker inspect --format '{{json .HostConfig.LogConfig}}' molecule-logcheck")
    host.run("docker rm -f molecule-logcheck")
    assert json.loads(config.stdout)["Config"] == {"max-size": "10m", "max-file": "2"}
