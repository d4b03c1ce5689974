"""scripts/why_failed.py: the excerpt `make test` prints of a failed job's log keeps the
lines that say why it failed, drops the noise, and stays within its budget."""

from __future__ import annotations

from why_failed import excerpt, main

ANSIBLE_FAILURE = """\
TASK [Converge] ****
ok: [tenancy-vm]
FAILED - RETRYING: [tenancy-vm]: wait (59 retries left).
FAILED - RETRYING: [tenancy-vm]: wait (58 retries left).
fatal: [tenancy-vm]: FAILED! => changed=false
  msg: cryptsetup refused the key of alpha
PLAY RECAP ****
tenancy-vm : ok=40 changed=3 unreachable=0 failed=1 skipped=2
CRITICAL Ansible return code was 2, command was: ansible-playbook side_effect.yml
"""


def test_the_reason_survives_a_long_log_and_the_noise_does_not() -> None:
    log = "\n".join(f"ok: [h] => line {i}" for i in range(5000)) + "\n" + ANSIBLE_FAILURE
    log += "\n".join(f"teardown {i}" for i in range(40))
    out = excerpt(log, budget=3000)
    assert "msg: cryptsetup refused the key of alpha" in out
    assert "failed=1" in out
    assert "CRITICAL Ansible return code was 2" in out
    assert "teardown 39" in out  # the log's last lines
    assert "RETRYING" not in out
    assert "line 10\n" not in out
    assert len(out) <= 3000


def test_long_lines_are_cut_and_a_block_keeps_its_first_lines_over_budget() -> None:
    log = "\n".join(f"fatal: [h{i}]: FAILED! => " + "x" * 1000 for i in range(10))
    out = excerpt(log, budget=1200, width=200, blocks=10)
    assert all(len(line) <= 200 for line in out.splitlines())
    assert len(out) <= 1200
    assert "fatal: [h0]" in out  # where the run of failures starts
    assert "fatal: [h9]" in out  # the log's last line


def test_the_reason_wins_over_a_long_molecule_tail() -> None:
    """d9308da's CI run: the VM job's excerpt (3,000 characters, half the budget) held only
    Molecule's closing table; the fatal block, oldest, went first."""
    reason = (
        "  \u2502 TASK [Record what crypttab and fstab reopened at boot] ****\n"
        "  \u2502 fatal: [tenancy-vm]: FAILED! => changed=true\n"
        "  \u2502   msg: non-zero return code\n"
        "  \u2502   rc: 1\n"
    )
    closing = "".join(
        f"volume_vm \u279c step{i}: Executed: Failed (Ansible return code was 2, command was: "
        f"ansible-playbook --inventory /root/.ansible/tmp/molecule/inventory {'x' * 120})\n"
        for i in range(12)
    )
    log = "ok\n" * 200 + reason + "  \u2502 ok: [tenancy-vm]\n" * 30
    log += "ERROR    Molecule executed 1 scenario\n" + closing
    out = excerpt(log, budget=3000)
    assert len(out) <= 3000
    assert "fatal: [tenancy-vm]: FAILED!" in out
    assert "msg: non-zero return code" in out
    assert "step11" in out  # the log's last line


def test_pytest_failures_are_kept() -> None:
    failure = "_____ test_add _____\nE   AssertionError: beta answered 503\n"
    log = "collected 18 items\n" + "PASSED\n" * 300 + failure + "FAILED tests/multihost/test_verbs.py::test_add\n"
    out = excerpt(log)
    assert "E   AssertionError: beta answered 503" in out
    assert "FAILED tests/multihost/test_verbs.py::test_add" in out


def test_main_names_each_log_and_a_missing_one(tmp_path, capsys) -> None:
    log = tmp_path / "job-vm.log"
    log.write_text(ANSIBLE_FAILURE)
    assert main([str(log), str(tmp_path / "job-e2e.log")]) == 0
    out = capsys.readouterr().out
    assert "== why job-vm failed" in out
    assert "cryptsetup refused" in out
    assert "== why job-e2e failed" in out and "(no log was written)" in out


def test_molecule_colours_and_frames_do_not_hide_a_failure() -> None:
    log = (
        "\x1b[36mINFO    \x1b[0m volume_vm \u279c side_effect: Executing\n"
        "  \u2502 TASK [Reboot the VM]\n"
        "  \u2502 fatal: [tenancy-vm]: UNREACHABLE! => changed=false\n"
        "  \u2502   msg: Failed to connect to the host via ssh\n"
        + "  \u2502 ok: [tenancy-vm]\n" * 50
        + "\x1b[31mCRITICAL\x1b[0m Ansible return code was 4\n"
        + "\u2514\u2500 Return code: 4\n" * 20
    )
    out = excerpt(log, tail=2)
    assert "fatal: [tenancy-vm]: UNREACHABLE!" in out
    assert "msg: Failed to connect to the host via ssh" in out
    assert "CRITICAL Ansible return code was 4" in out
    assert "\x1b" not in out and "\u2502" not in out
