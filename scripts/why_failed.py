#!/usr/bin/env python3
"""Print why a `make test` job failed: the lines of its log that say so, in a few KB.

`make test` (scripts/ci.py) runs its suites two at a time, so a failed job's output is
printed when that job ends, and the job beside it can print for many minutes more.
CI keeps only the tail of what `.ci/run` printed: twice a failure's reason was gone
from it (fe5d72a's chaos scenario; eed2e24's LUKS VM). scripts/ci.py keeps each job's
whole output in reports/jobs/JOB.log and, when a stage fails, ends with this script's
excerpt of each failed job's log, after the stage and job times.

The excerpt: the last few blocks that start at a line naming a failure (Ansible's
`fatal:`, a failed or unreachable recap, pytest's `FAILED`/`E ` lines and errors,
Molecule's ERROR/CRITICAL, a Python traceback, a Locust verdict), each with the lines
that follow it, then the log's last lines; every line cut to a width, the whole to a
budget, which the reason gets before the tail does (d9308da's CI run printed only the
VM job's tail: its `fatal:` block was the oldest lines, and those went first).

    scripts/why_failed.py [--budget CHARS] LOG [LOG ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# A line that names a failure starts a block. Strong lines say what failed (a task, an
# assertion, a traceback); weak ones only that something did (a recap, Molecule's or
# make's last words). Over budget, the log's tail goes first, then weak blocks, then the
# oldest strong ones: the reason is what must reach CI's short tail.
STRONG = re.compile(
    r"fatal: \[|FAILED!|UNREACHABLE!|^FAILED |^E {3}|^_{3,} .* _{3,}$|^Traceback "
    r"|AssertionError|^FAIL\b|verdict: FAIL"
)
WEAK = re.compile(r"\bfailed=[1-9]|\bunreachable=[1-9]|^ERROR |^CRITICAL |\bTimeout|timed out|^make(\[\d+\])?: \*\*\*")
# Lines that repeat without saying anything: retries, progress dots.
NOISE = re.compile(r"^FAILED - RETRYING: |^\.+$")
# Molecule colours its lines and frames a playbook's output in a box ("  │ fatal: ..."):
# both go before a line is matched or printed.
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
FRAME = re.compile(r"^[\s│┌└─]+")


def _blocks(lines: list[str], block_lines: int) -> list[tuple[bool, list[int]]]:
    """(strong, line indices) of each block: a signal line and the lines after it, up to
    `block_lines`; a signal inside a block extends it (up to twice that), so a run of
    pytest's `E` lines or an Ansible failure and its recap stay one block."""
    found: list[tuple[bool, list[int]]] = []
    start = end = -1
    strong = False
    for i, line in enumerate(lines):
        is_strong, is_weak = bool(STRONG.search(line)), bool(WEAK.search(line))
        if not (is_strong or is_weak):
            continue
        if start >= 0 and i < end:
            end = min(max(end, i + block_lines), start + 2 * block_lines)
            strong = strong or is_strong
            continue
        if start >= 0:
            found.append((strong, list(range(start, min(end, i)))))
        start, end, strong = i, i + block_lines, is_strong
    if start >= 0:
        found.append((strong, list(range(start, min(end, len(lines))))))
    return found


def excerpt(
    text: str, budget: int = 6000, width: int = 240, blocks: int = 4, block_lines: int = 14, tail: int = 12
) -> str:
    """The lines of a log that say why it failed, at most `budget` characters.

    Blocks start at a line matching STRONG or WEAK and run `block_lines` lines; the last
    `blocks` of them are kept, then the last `tail` lines of the log. Each line is cut to
    `width` characters. Over budget, lines go in this order: the tail's oldest (down to
    its last two), weak blocks (oldest first), strong blocks (oldest first) but the last
    block, that block's last lines (down to its first), and last the oldest lines of
    whatever is left.
    """
    bare = (FRAME.sub("", COLOUR.sub("", line)) for line in text.splitlines())
    lines = [line for line in bare if not NOISE.search(line)]
    lines = [line if len(line) <= width else line[: width - 3] + "..." for line in lines]
    found = _blocks(lines, block_lines)[-blocks:]
    tail_lines = list(range(max(0, len(lines) - tail), len(lines)))

    def render() -> str:
        keep = sorted({i for _, block in found for i in block} | set(tail_lines))
        out: list[str] = []
        last = -1
        for i in keep:
            if i != last + 1:
                out.append("  [...]")
            out.append(lines[i])
            last = i
        return "\n".join(out)

    out = render()
    while len(out) > budget and len(tail_lines) > 2:
        tail_lines.pop(0)
        out = render()
    for strong in (False, True):
        while len(out) > budget and len(found) > 1 and any(s == strong for s, _ in found):
            found.remove(next(b for b in found if b[0] == strong))
            out = render()
    # One block left: keep its first lines (the signal), shorten it from its end.
    while len(out) > budget and found and len(found[-1][1]) > 1:
        found[-1][1].pop()
        out = render()
    rows = out.splitlines()
    while rows and sum(len(row) + 1 for row in rows) > budget:
        rows.pop(0)
    return "\n".join(rows)


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
