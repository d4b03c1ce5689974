#!/usr/bin/env python3
"""Print why a `make test` job failed: the lines of its log that say so, in a few KB.

`make test` runs its suites two at a time with `--output-sync`, so a failed job's output
is printed when that job ends, and the job beside it can print for many minutes more.
CI keeps only the tail of what `.ci/run` printed: twice a failure's reason was gone
from it (fe5d72a's chaos scenario; eed2e24's LUKS VM). The Makefile keeps each job's
whole output in reports/jobs/JOB.log and, when a stage fails, ends with this script's
excerpt of each failed job's log, after the stage and job times.

The excerpt: the last few blocks that start at a line naming a failure (Ansible's
`fatal:`, a failed or unreachable recap, pytest's `FAILED`/`E ` lines and errors,
Molecule's CRITICAL, a Python traceback, a Locust verdict), each with the lines that
follow it, then the log's last lines; every line cut to a width, the whole to a budget.

    scripts/why_failed.py [--budget CHARS] LOG [LOG ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# A line that names a failure starts a block.
SIGNAL = re.compile(
    r"fatal: \[|FAILED!|UNREACHABLE!|\bfailed=[1-9]|\bunreachable=[1-9]"
    r"|^FAILED |^ERROR |^E {3}|^_{3,} .* _{3,}$|^CRITICAL |^Traceback "
    r"|AssertionError|\bTimeout|timed out|^FAIL\b|verdict: FAIL|^make(\[\d+\])?: \*\*\*"
)
# Lines that repeat without saying anything: retries, progress dots.
NOISE = re.compile(r"^FAILED - RETRYING: |^\.+$")
# Molecule colours its lines and frames a playbook's output in a box ("  │ fatal: ..."):
# both go before a line is matched or printed.
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
FRAME = re.compile(r"^[\s│┌└─]+")


def excerpt(
    text: str, budget: int = 6000, width: int = 240, blocks: int = 4, block_lines: int = 14, tail: int = 12
) -> str:
    """The lines of a log that say why it failed, at most `budget` characters.

    Blocks start at a line matching SIGNAL and run `block_lines` lines (or to the next
    block); the last `blocks` of them are kept, then the last `tail` lines of the log.
    Each line is cut to `width` characters. When the whole is over budget, the oldest
    lines go first: the end of a log is where a job stops.
    """
    bare = (FRAME.sub("", COLOUR.sub("", line)) for line in text.splitlines())
    lines = [line for line in bare if not NOISE.search(line)]
    starts = [i for i, line in enumerate(lines) if SIGNAL.search(line)][-blocks:]
    keep: list[int] = []
    for start, nxt in zip(starts, [*starts[1:], len(lines)], strict=True):
        keep.extend(range(start, min(start + block_lines, nxt)))
    keep.extend(range(max(0, len(lines) - tail), len(lines)))
    out: list[str] = []
    last = -1
    for i in sorted(set(keep)):
        if i != last + 1:
            out.append("  [...]")
        line = lines[i]
        out.append(line if len(line) <= width else line[: width - 3] + "...")
        last = i
    while out and sum(len(line) + 1 for line in out) > budget:
        out.pop(0)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=6000, help="characters for all logs together")
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    share = max(1000, args.budget // len(args.logs))
    for log in args.logs:
        print(f"\n== why {log.stem} failed (from {log}; the whole log is there) ==")
        if not log.is_file():
            print("  (no log was written)")
            continue
        print(excerpt(log.read_text(errors="replace"), budget=share))
    return 0


if __name__ == "__main__":
    sys.exit(main())
