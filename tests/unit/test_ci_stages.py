"""scripts/ci.py: the declaration of make test's stages and jobs, and the runner that
plays it (lanes side by side, needs waited for, a failure stops new jobs)."""

from __future__ import annotations

import re
import subprocess
import textwrap
import threading
import time

import ci
import pytest
from ci import Job, Runner, Stage, grown, recorded_figures, validate
from tenancy_inventory import ROOT


def test_the_declaration_is_whole_and_playable():
    """Every job runs exactly once, every need is met before its job, no lane waits for ever."""
    assert validate(ci.STAGES, ci.JOB_BY_NAME) == []


def test_every_job_is_a_make_target():
    """A job is a make target, so `make TARGET` reruns it by hand."""
    targets = set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert {job.target for job in ci.JOBS} - targets == set()


def test_no_stage_has_more_lanes_than_the_machine_has_cores():
    assert max(len(stage.lanes) for stage in ci.STAGES) <= 2


def _jobs(*specs: tuple[str, tuple[str, ...]]) -> dict[str, Job]:
    return {name: Job(name, name, name, needs) for name, needs in specs}


@pytest.mark.parametrize(
    ("stages", "jobs", "problem"),
    [
        ((Stage("s", (("a",),), ""),), _jobs(("a", ()), ("b", ())), "job b is declared but in no stage"),
        ((Stage("s", (("a", "z"),), ""),), _jobs(("a", ())), "job z is in a stage but not declared"),
        ((Stage("s", (("a",), ("a",)), ""),), _jobs(("a", ())), "job a is in more than one place"),
        ((Stage("a", (("a",),), ""),), _jobs(("a", ())), "stage a has a job's name"),
        (
            (Stage("s", (("a",),), ""), Stage("t", (("b",),), "")),
            _jobs(("a", ("b",)), ("b", ())),
            "job a needs b, which does not run before it",
        ),
        ((Stage("s", (("a", "b"),), ""),), _jobs(("a", ("b",)), ("b", ())), "stage s cannot go on: a (needs b)"),
        (
            (Stage("s", (("a", "b"), ("c", "d")), ""),),
            _jobs(("a", ("d",)), ("b", ()), ("c", ("b",)), ("d", ())),
            "stage s cannot go on: a (needs d), c (needs b)",
        ),
    ],
)
def test_a_broken_declaration_is_named(stages, jobs, problem):
    assert any(p.startswith(problem) for p in validate(stages, jobs)), validate(stages, jobs)


def _makefile(tmp_path, recipes: dict[str, str]) -> None:
    body = "".join(f"{name}:\n\t@{recipe}\n" for name, recipe in recipes.items())
    (tmp_path / "Makefile").write_text(body)


def _runner(tmp_path, jobs: dict[str, Job], stages: tuple[Stage, ...]) -> Runner:
    planned = frozenset(n for s in stages for lane in s.lanes for n in lane)
    return Runner(jobs, tmp_path / "logs", tmp_path / "times.txt", planned, cwd=tmp_path, stream=False)


def test_lanes_run_side_by_side_and_a_job_waits_for_its_needs(tmp_path):
    """b (lane 2) needs a (lane 1): it starts only after a ends; c runs beside a."""
    _makefile(tmp_path, {"a": "sleep 0.6; echo a-out", "b": "echo b-out", "c": "echo c-out"})
    jobs = _jobs(("a", ()), ("b", ("a",)), ("c", ()))
    stage = Stage("s", (("a",), ("c", "b")), "")
    runner = _runner(tmp_path, jobs, (stage,))
    assert runner.run_stage(stage)
    r = runner.results
    assert r["b"].start >= r["a"].end, "b started before its need ended"
    assert r["c"].start < r["a"].end, "the lanes did not run side by side"
    assert "a-out" in (tmp_path / "logs" / "a.log").read_text()
    rows = (tmp_path / "times.txt").read_text().splitlines()
    assert sorted(row.split()[0] for row in rows) == ["a", "b", "c"]


def test_a_failure_starts_nothing_new_and_lets_running_jobs_finish(tmp_path):
    _makefile(tmp_path, {"bad": "echo boom; exit 3", "after": "true", "slow": "sleep 0.8", "later": "true"})
    jobs = _jobs(("bad", ()), ("after", ()), ("slow", ()), ("later", ()))
    stage = Stage("s", (("bad", "after"), ("slow", "later")), "")
    runner = _runner(tmp_path, jobs, (stage,))
    assert not runner.run_stage(stage)
    status = {n: runner.results[n].status if n in runner.results else "not run" for n in jobs}
    assert status == {"bad": "FAILED", "after": "not run", "slow": "passed", "later": "not run"}
    assert "FAILED" in (tmp_path / "times.txt").read_text()
    assert "boom" in (tmp_path / "logs" / "bad.log").read_text()


def test_the_deadline_kills_what_runs_and_names_it(tmp_path):
    """A job that hangs is killed (its children too) and counts as failed; nothing new starts."""
    _makefile(tmp_path, {"hang": "sleep 300 & sleep 300", "next": "true", "quick": "true"})
    jobs = _jobs(("hang", ()), ("next", ()), ("quick", ()))
    stage = Stage("s", (("hang", "next"), ("quick",)), "")
    runner = _runner(tmp_path, jobs, (stage,))
    timer = threading.Timer(1.0, runner.time_out, kwargs={"grace": 5})
    started = time.monotonic()
    timer.start()
    assert not runner.run_stage(stage)
    assert time.monotonic() - started < 15, "the hung job was not killed"
    assert runner.timed_out == ["hang"]
    status = {n: runner.results[n].status if n in runner.results else "not run" for n in jobs}
    assert status == {"hang": "FAILED", "next": "not run", "quick": "passed"}
    assert "passed its deadline" in (tmp_path / "logs" / "hang.log").read_text()
    assert "hang" in (tmp_path / "times.txt").read_text().split("FAILED")[0], "the times row hides the kill"
    leftover = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True).stdout
    assert not leftover.strip(), f"the job's children outlived it: {leftover}"


def test_a_need_outside_the_run_is_assumed(tmp_path):
    """--only e2e does not wait for images, which this run does not hold."""
    _makefile(tmp_path, {"e2e": "true"})
    jobs = _jobs(("images", ()), ("e2e", ("images",)))
    stage = Stage("only", (("e2e",),), "")
    assert _runner(tmp_path, jobs, (stage,)).run_stage(stage)


def test_the_recorded_figures_come_from_the_results_page_table(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(
        textwrap.dedent("""\
        ## Something else
        | e2e | 9 | not this table |
        ## CI times (what scripts/ci.py compares against)
        | stage or job | seconds | date | commit |
        |---|---|---|---|
        | suites | 2,400 | 2026-12-06 | abc |
        | `e2e` | 1,000 | 2026-12-06 | abc |
        ## After
        | vm | 5 | |
        """)
    )
    assert recorded_figures(page) == {"suites": 2400, "e2e": 1000}


def test_growth_over_twenty_percent_is_named():
    lines = grown({"e2e": 1201, "vm": 1200, "new": 50}, {"e2e": 1000, "vm": 1000})
    assert lines == ["e2e took 1201 s, +20% over its recorded 1000 s"]


def test_the_real_results_page_records_every_stage():
    """The figures the run compares against are on the results page for every stage."""
    assert {stage.name for stage in ci.STAGES} <= set(recorded_figures())
