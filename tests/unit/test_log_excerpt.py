"""tenancy_log_excerpt: a failed engine's log cut to the lines that name the cause."""

from __future__ import annotations

from pathlib import Path

from tenancy_log_excerpt import tenancy_log_excerpt

FIXTURES = Path(__file__).parent / "fixtures" / "vllm"


def streams(name: str) -> tuple[list[str], list[str]]:
    return tuple((FIXTURES / f"{name}.{stream}").read_text().splitlines() for stream in ("stdout", "stderr"))


def test_a_weightless_model_is_named_first_although_the_tail_only_says_see_above():
    stdout, stderr = streams("weightless-0.32.0")
    cause = "RuntimeError: Cannot find any model weights with `/models/e2e-weightless`"
    assert cause not in "\n".join((stdout + stderr)[-40:]), "the fixture no longer shows why the tail is not enough"
    excerpt = tenancy_log_excerpt(stdout, stderr)
    errors, tail = excerpt.split("Last log lines (traceback frames left out):\n")
    assert errors.splitlines() == [
        "Errors in the log:",
        f"  {cause}",
        "  Exception: WorkerProc initialization failed due to an exception in a background process. "
        "See stack trace for root cause.",
        "  RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
    ]
    assert len(tail.splitlines()) == 25
    assert 'File "' not in tail and "^^^" not in tail


def test_frames_go_but_indented_lines_outside_a_traceback_stay():
    lines = [
        "starting",
        "  option a = 1",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "    main()",
        "    ^^^^^^",
        "ValueError: bad value",
        "  after the traceback",
    ]
    excerpt = tenancy_log_excerpt(lines, tail=10)
    assert excerpt.splitlines() == [
        "Errors in the log:",
        "  ValueError: bad value",
        "Last log lines (traceback frames left out):",
        "starting",
        "  option a = 1",
        "ValueError: bad value",
        "  after the traceback",
    ]


def test_vllm_prefixed_frames_go_and_a_repeated_exception_is_listed_once():
    prefix = "(Worker pid=56) ERROR 12-07 16:32:27 [multiproc_executor.py:953] "
    lines = [
        f"{prefix}Traceback (most recent call last):",
        f'{prefix}  File "/opt/vllm/x.py", line 9, in f',
        f"{prefix}    raise RuntimeError('no weights')",
        f"{prefix}RuntimeError: no weights",
    ]
    excerpt = tenancy_log_excerpt(lines, lines)
    assert excerpt.count("Errors in the log:\n  RuntimeError: no weights\nLast") == 1
    assert 'File "' not in excerpt


def test_an_empty_log_says_so():
    assert tenancy_log_excerpt([], []) == "The log is empty."


def test_a_log_without_exceptions_is_its_tail():
    lines = [f"line {n}" for n in range(40)]
    assert tenancy_log_excerpt(lines, tail=3).splitlines() == [
        "Last log lines (traceback frames left out):",
        "line 37",
        "line 38",
        "line 39",
    ]
