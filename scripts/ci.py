#!/usr/bin/env python3
"""`make test`, declared: every stage and job CI runs, in what order, side by side or not.

This file is the one place to look. STAGES below is the whole of `make test`: the stages
run one after the other; inside a stage each lane runs its jobs in order, and the lanes
run side by side (the machine has two cores, so no stage has more than two lanes). A
job's `needs` are jobs that must have passed first, in any lane or earlier stage; a lane
waits for them. When a job fails, no new job starts anywhere, the jobs already running
finish, and the run stops after that stage. A run still going at its deadline (84
minutes, before CI's hard limit of 90) kills what runs and ends as for a failure, naming
the jobs it killed.

Every job is a make target, so `make TARGET` runs it by hand too. Each job's whole output
goes to reports/jobs/JOB.log (and is printed when the job ends); its start, end and
length go to reports/job-times.txt. At the end the run prints each stage's and job's
time against CI's budget and against the figures recorded in docs/benchmarks.md ("CI
times"), names any that grew more than 20 % over its figure, prints rows to paste into
that table, and, when something failed, scripts/why_failed.py's excerpt of the failed
jobs' logs: CI keeps only the tail of the output.

    scripts/ci.py                  everything (what `make test` and CI run)
    scripts/ci.py --only e2e       one job (or several, comma-separated), nothing else;
                                   its needs are not run: they must have run before
    scripts/ci.py --list           the stages, lanes, jobs and their make targets
    scripts/ci.py --deadline S     kill what still runs after S seconds (default 84 min)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 50 * 60  # CI's budget for a cold run; its hard limit is 90 minutes
# Past this the run kills what is still running and reports as for a failure. CI's hard
# limit (90 minutes, with the venv's set-up before this script) would kill it without a
# word, and the job that hung would go unnamed.
DEADLINE_S = 84 * 60
GROWTH_WARN = 0.20  # a stage or job this much over its recorded figure is named at the end
RESULTS_PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS_HEADING = "## CI times"


@dataclass(frozen=True)
class Job:
    name: str
    target: str  # the make target that runs it
    what: str  # one line: what it proves or prepares
    needs: tuple[str, ...] = ()  # jobs that must have passed before it starts

    @property
    def command(self) -> list[str]:
        return ["make", "--no-print-directory", self.target]


@dataclass(frozen=True)
class Stage:
    name: str
    lanes: tuple[tuple[str, ...], ...]  # side by side; each runs its jobs in order
    why: str


JOBS: tuple[Job, ...] = (
    Job("docker", "docker-test", "the docker role starts Docker as make test owns it (tests/docker-daemon.yml)"),
    Job("check", "check", "lint (ruff, yamllint, ansible-lint production, syntax) and unit tests, side by side"),
    Job("images", "images-export", "build the local images once, saved as archives for the multi-host hosts"),
    Job("vm", "volume-vm", "LUKS volumes on a real kernel: Molecule in a qemu VM (open, power cycle, rotate)"),
    Job("e2e", "e2e", "deploy the demo tenants, test them end to end; leaves them deployed", ("images",)),
    Job(
        "load-untimed", "loadtests-untimed", "the Locust scenarios that count, not time: rotation, rate_limit", ("e2e",)
    ),
    Job("multihost-up", "multihost-bringup", "start two hosts, converge inventory/multihost over SSH", ("images",)),
    Job("multihost-checks", "multihost-checks", "multi-host suite, testinfra, its planted breaks", ("multihost-up",)),
    Job("multihost-down", "multihost-down", "remove the multi-host hosts", ("multihost-up",)),
    Job("volume", "volume", "the tenant role's LUKS header, key, rotation and erase tasks on loop devices"),
    Job("gateway", "gateway", "the gateway's HAProxy through a DNS outage and NXDOMAIN", ("images",)),
    Job(
        "molecule", "molecule", "Molecule scenarios of the host roles (Docker-in-Docker, local base image)", ("images",)
    ),
    Job("loadtests", "loadtests", "the timed Locust scenarios and their planted break, alone", ("e2e",)),
)

STAGES: tuple[Stage, ...] = (
    # The fast tier: a lint or unit failure stops the run in about a minute. Docker's
    # set-up (mostly apt and the daemon's start, little CPU) goes beside it: every later
    # job needs the daemon, and neither lint nor the unit tests do.
    Stage("fast", (("check",), ("docker",)), "lint and unit tests; Docker installed and started beside them"),
    # Both cores are busy all through this stage, so what counts is the total work and two
    # lanes of about equal length. The VM takes one core under TCG and needs nothing, so
    # it starts at once; e2e follows it (images are long done by then). The multi-host
    # hosts cost about 0.3 of a core when idle, and the short jobs fill that lane's end.
    Stage(
        "suites",
        (
            ("vm", "e2e", "load-untimed"),
            ("images", "multihost-up", "multihost-checks", "multihost-down", "volume", "gateway", "molecule"),
        ),
        "every job that times nothing, two at a time",
    ),
    Stage("timed", (("loadtests",),), "what times: nothing else may run beside it (on the tenants e2e left)"),
)

JOB_BY_NAME = {job.name: job for job in JOBS}


def validate(stages: tuple[Stage, ...], jobs: dict[str, Job]) -> list[str]:
    """What is wrong with a declaration: jobs declared but never run or run twice,
    unknown names, a stage named as a job, needs that no earlier point of the run
    satisfies (a lane would wait for ever)."""
    problems: list[str] = []
    placed = [name for stage in stages for lane in stage.lanes for name in lane]
    for name in sorted({n for n in placed if placed.count(n) > 1}):
        problems.append(f"job {name} is in more than one place")
    for name in sorted(set(placed) - set(jobs)):
        problems.append(f"job {name} is in a stage but not declared")
    for name in sorted(set(jobs) - set(placed)):
        problems.append(f"job {name} is declared but in no stage")
    # Stages and jobs share one table in the results page (and one namespace in growth).
    for name in sorted({stage.name for stage in stages} & set(jobs)):
        problems.append(f"stage {name} has a job's name: the two would share one row of the results page")
    if problems:
        return problems
    done: set[str] = set()
    for stage in stages:
        in_stage = {n for lane in stage.lanes for n in lane}
        for name in sorted(in_stage):
            for need in jobs[name].needs:
                if need not in done and need not in in_stage:
                    problems.append(f"job {name} needs {need}, which does not run before it")
        # Play the stage: each lane starts its next job once that job's needs are done.
        # A step in which no lane can move, with jobs left, is a lane waiting for ever.
        heads = [list(lane) for lane in stage.lanes]
        while any(heads):
            movable = [lane for lane in heads if lane and set(jobs[lane[0]].needs) & in_stage <= done]
            if not movable:
                stuck = ", ".join(f"{lane[0]} (needs {', '.join(jobs[lane[0]].needs)})" for lane in heads if lane)
                problems.append(f"stage {stage.name} cannot go on: {stuck} wait for ever")
                break
            for lane in movable:
                done.add(lane.pop(0))
    return problems


@dataclass
class Result:
    name: str
    status: str = "not run"  # passed, FAILED, not run
    start: float = 0.0
    end: float = 0.0

    @property
    def seconds(self) -> int:
        return round(self.end - self.start) if self.end else 0


@dataclass
class Runner:
    jobs: dict[str, Job]
    logs: Path
    times: Path
    planned: frozenset[str] = frozenset()  # the jobs of this run: needs outside it are assumed done
    cwd: Path = ROOT  # where the Makefile is
    stream: bool = True  # print a single lane's output as it comes
    results: dict[str, Result] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    running: dict[str, subprocess.Popen] = field(default_factory=dict)
    timed_out: list[str] = field(default_factory=list)  # jobs killed at the run's deadline

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def run_stage(self, stage: Stage) -> bool:
        stream = self.stream and len(stage.lanes) == 1
        threads = [threading.Thread(target=self._lane, args=(lane, stream), daemon=True) for lane in stage.lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        names = [n for lane in stage.lanes for n in lane]
        return all(self.results.get(n, Result(n)).status == "passed" for n in names)

    def _lane(self, lane: tuple[str, ...], stream: bool) -> None:
        for name in lane:
            if not self._wait_for_needs(self.jobs[name]):
                return
            if not self.run_job(self.jobs[name], stream):
                self.stop.set()
                with self.changed:
                    self.changed.notify_all()
                return

    def _wait_for_needs(self, job: Job) -> bool:
        with self.changed:
            while True:
                if self.stop.is_set():
                    return False
                states = [self.results.get(n, Result(n)).status for n in job.needs if n in self.planned]
                if all(s == "passed" for s in states):
                    return True
                self.changed.wait(timeout=5)

    def run_job(self, job: Job, stream: bool = False) -> bool:
        result = self.results[job.name] = Result(job.name, "running", time.time())
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{job.name}.log"
        self.say(f"== {job.name} started {time.strftime('%H:%M:%S')} (make {job.target})")
        with log.open("w") as out:
            proc = subprocess.Popen(
                job.command, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
            with self.lock:
                self.running[job.name] = proc
            for line in iter(proc.stdout.readline, b""):
                text = line.decode(errors="replace")
                out.write(text)
                out.flush()
                if stream:
                    sys.stdout.write(text)
                    sys.stdout.flush()
            rc = proc.wait()
            killed = job.name in self.timed_out
            if killed:
                out.write(f"\n== scripts/ci.py killed {job.name}: the run passed its deadline ==\n")
        with self.changed:
            self.running.pop(job.name, None)
            result.end = time.time()
            passed = rc == 0 and not killed
            result.status = "passed" if passed else "FAILED"
            self.changed.notify_all()
        if not stream:
            self.say(f"== {job.name} output (reports/jobs/{job.name}.log) ==\n{log.read_text(errors='replace')}")
        why = ", killed at the run's deadline" if killed else ""
        self.say(f"== {job.name} {result.status} after {result.seconds} s (rc {rc}{why})")
        with self.lock, self.times.open("a") as times:
            times.write(
                f"  {job.name:<18} {result.seconds:>5}  {_hms(result.start)}-{_hms(result.end)}"
                f"{'' if passed else '  FAILED'}\n"
            )
        return passed

    def kill_all(self, sig: int = signal.SIGTERM) -> None:
        with self.lock:
            procs = list(self.running.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def time_out(self, grace: float = 30.0) -> None:
        """The run's deadline: start nothing more, stop what runs (SIGTERM to each job's
        process group, SIGKILL to what is left after `grace` seconds). The killed jobs
        count as failed, so the end of the output names them."""
        with self.changed:
            self.stop.set()
            self.timed_out.extend(self.running)
            self.changed.notify_all()
        names = ", ".join(self.timed_out) or "nothing was running"
        self.say(f"== scripts/ci.py: the run passed its deadline; stopping {names}")
        self.kill_all()
        end = time.time() + grace
        while self.running and time.time() < end:
            time.sleep(0.2)
        self.kill_all(signal.SIGKILL)


def _hms(stamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp))


def recorded_figures(page: Path = RESULTS_PAGE) -> dict[str, int]:
    """Seconds per stage or job from the results page's "CI times" table: rows like
    `| e2e | 1,040 | ... |` under the heading, up to the next heading."""
    figures: dict[str, int] = {}
    if not page.is_file():
        return figures
    inside = False
    for line in page.read_text().splitlines():
        if line.startswith("## "):
            inside = line.startswith(RESULTS_HEADING)
            continue
        row = re.match(r"^\| *`?([a-z0-9-]+)`? *\| *([\d,]+) *\|", line) if inside else None
        if row:
            figures[row.group(1)] = int(row.group(2).replace(",", ""))
    return figures


def grown(measured: dict[str, int], recorded: dict[str, int], limit: float = GROWTH_WARN) -> list[str]:
    """One line for each stage or job that took more than `limit` over its figure."""
    lines = []
    for name, seconds in measured.items():
        figure = recorded.get(name)
        if figure and seconds > figure * (1 + limit):
            lines.append(f"{name} took {seconds} s, {seconds / figure - 1:+.0%} over its recorded {figure} s")
    return lines


def summary(stage_times: dict[str, tuple[str, int]], runner: Runner, total: int, recorded: dict[str, int]) -> str:
    out = [f"\nstage times (s), against the budget of {BUDGET_S} s ({BUDGET_S // 60} min):"]
    for name, (status, seconds) in stage_times.items():
        was = f"  recorded {recorded[name]}" if name in recorded else ""
        flag = "" if status == "passed" else f"  {status}"
        out.append(f"  {name:<18} {seconds:>5}  {seconds / BUDGET_S:>4.0%}{was}{flag}")
    verdict = "within" if total <= BUDGET_S else "OVER"
    out.append(f"  {'total':<18} {total:>5}  {total / BUDGET_S:>4.0%}  {verdict} the budget")
    out.append("job times (s, start-end):")
    out.append(runner.times.read_text().rstrip() if runner.times.is_file() else "  (none)")
    measured = {n: s for n, (st, s) in stage_times.items() if st == "passed"}
    measured |= {n: r.seconds for n, r in runner.results.items() if r.status == "passed"}
    growth = grown(measured, recorded)
    if growth:
        out.append(f"grown more than {GROWTH_WARN:.0%} over the figures in docs/benchmarks.md ({RESULTS_HEADING[3:]}):")
        out.extend(f"  {line}" for line in growth)
    commit = _commit()
    out.append(f"rows for docs/benchmarks.md ({RESULTS_HEADING[3:]}), this run:")
    for name, seconds in [*measured.items(), ("total", total)]:
        out.append(f"| {name} | {seconds:,} | {time.strftime('%Y-%m-%d')} | {commit} |")
    return "\n".join(out)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def listing(stages: tuple[Stage, ...], jobs: dict[str, Job]) -> str:
    out = []
    for number, stage in enumerate(stages, 1):
        out.append(f"{number}. {stage.name}: {stage.why}")
        for lane_no, lane in enumerate(stage.lanes, 1):
            prefix = f"   lane {lane_no}:" if len(stage.lanes) > 1 else "  "
            out.append(prefix)
            for name in lane:
                job = jobs[name]
                needs = f" (needs {', '.join(job.needs)})" if job.needs else ""
                out.append(f"     {name:<17} make {job.target:<18} {job.what}{needs}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated jobs to run, alone and in the declared order")
    parser.add_argument("--list", action="store_true", help="print the stages, lanes and jobs")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument(
        "--deadline", type=int, default=DEADLINE_S, help=f"seconds after which what runs is killed ({DEADLINE_S})"
    )
    args = parser.parse_args(argv)

    problems = validate(STAGES, JOB_BY_NAME)
    if problems:
        print("scripts/ci.py: the declaration is broken:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.list:
        print(listing(STAGES, JOB_BY_NAME))
        return 0

    stages = STAGES
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in JOB_BY_NAME]
        if unknown:
            print(f"scripts/ci.py: no job {', '.join(unknown)}; jobs: {', '.join(JOB_BY_NAME)}", file=sys.stderr)
            return 2
        ordered = tuple(n for s in STAGES for lane in s.lanes for n in lane if n in wanted)
        stages = (Stage("only", (ordered,), "the jobs asked for"),)
        for name in ordered:
            assumed = [n for n in JOB_BY_NAME[name].needs if n not in ordered]
            if assumed:
                print(f"note: {name} assumes {', '.join(assumed)} ran before (its needs; not run now)")

    logs, times = args.reports / "jobs", args.reports / "job-times.txt"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    times.write_text("")
    planned = frozenset(n for stage in stages for lane in stage.lanes for n in lane)
    runner = Runner(JOB_BY_NAME, logs, times, planned)
    signal.signal(signal.SIGTERM, lambda *_: (runner.kill_all(), sys.exit(143)))

    recorded = recorded_figures()
    t0 = time.time()
    watchdog = threading.Timer(args.deadline, runner.time_out)
    watchdog.daemon = True
    watchdog.start()
    stage_times: dict[str, tuple[str, int]] = {}
    failed_stage = None
    try:
        for stage in stages:
            start = time.time()
            runner.say(f"\n==== stage {stage.name} started {time.strftime('%H:%M:%S')}: {stage.why}")
            ok = runner.run_stage(stage)
            stage_times[stage.name] = ("passed" if ok else "FAILED", round(time.time() - start))
            if not ok:
                failed_stage = stage
                break
    except KeyboardInterrupt:
        runner.kill_all()
        raise
    watchdog.cancel()
    print(summary(stage_times, runner, round(time.time() - t0), recorded), flush=True)
    if failed_stage is None:
        return 0
    failed = [str(logs / f"{n}.log") for n, r in runner.results.items() if r.status == "FAILED"]
    if failed:  # none when the deadline came between two jobs
        subprocess.run([sys.executable, str(ROOT / "scripts" / "why_failed.py"), *failed], check=False)
    else:
        print(f"scripts/ci.py: no job failed; the run stopped at its deadline ({args.deadline} s)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
