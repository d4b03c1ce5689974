"""What a lifecycle verb and a no-op converge cost as the number of tenants grows.

On a copy of an inventory (its tenants file and credentials; the original is left alone),
with tenancy_cpu_oversubscribe so that more CPU tenants than cores can be planned:
  1. a no-op site.yml with the inventory's own tenants;
  2. tenant-add of each extra tenant, one after another (up to --up-to tenants);
  3. a no-op site.yml with them all;
  4. tenant-remove of the extra tenants, last added first;
  5. a no-op site.yml again.
Prints each run's seconds and, for the verbs, how many tenants the converge touched.
The extra tenants are really deployed on the inventory's hosts (and removed at the end).
Usage: .venv/bin/python scripts/bench_verbs.py (after make venv) [--inventory inventory/local] [--up-to 5]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml
from tenancy_inventory import ROOT, load_plan, run_ansible


def timed(inventory: Path, playbook: str, *extra: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = run_ansible("ansible-playbook", "-i", inventory, ROOT / playbook, *extra, timeout=3600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{playbook} {' '.join(extra)} failed:\n{result.stdout[-4000:]}")
    return seconds, result.stdout


def recap(stdout: str) -> str:
    """The play recap's ok/changed counts of the first host."""
    match = re.search(r"ok=(\d+)\s+changed=(\d+)", stdout)
    return f"ok={match.group(1)} changed={match.group(2)}" if match else "?"


def tenant_tasks(stdout: str) -> int:
    """Tasks the tenant role ran (its task names start with the file they are in)."""
    return len(re.findall(r"^TASK \[tenant : ", stdout, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    parser.add_argument("--up-to", type=int, default=5)
    args = parser.parse_args()
    source = (ROOT / args.inventory).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-verbs-")) / source.name
    shutil.copytree(source, work)
    overrides = work / "group_vars" / "all" / "bench.yml"
    overrides.write_text(yaml.safe_dump({"tenancy_cpu_oversubscribe": True}))
    base = [t for t in load_plan(work) if t["state"] == "present"]
    ports = {t["port"] for t in base}
    extra = []
    port = 30100
    while len(base) + len(extra) < args.up_to:
        port += 1
        if port not in ports:
            extra.append((f"bench{len(extra) + 3}", port))
    rows = []
    try:
        return run(work, base, extra, rows)
    except BaseException:
        # Kept on purpose: it holds the bench tenants' keys and list, which removing any
        # that are left needs.
        print(f"bench-verbs failed; the inventory copy is kept at {work}", file=sys.stderr)
        raise


def run(work: Path, base: list[dict], extra: list[tuple[str, int]], rows: list) -> int:
    try:
        seconds, out = timed(work, "site.yml")
        rows.append((f"site.yml no-op, {len(base)} tenants", seconds, recap(out), tenant_tasks(out)))
        for count, (name, port) in enumerate(extra, start=len(base) + 1):
            seconds, out = timed(
                work, "playbooks/tenant-add.yml", "-e", f"tenant={name}", "-e", f"port={port}", "-e", "cpus=1"
            )
            rows.append((f"tenant-add {name} (tenant {count})", seconds, recap(out), tenant_tasks(out)))
        seconds, out = timed(work, "site.yml")
        rows.append((f"site.yml no-op, {len(base) + len(extra)} tenants", seconds, recap(out), tenant_tasks(out)))
    finally:
        for count, (name, _) in reversed(list(enumerate(extra, start=len(base) + 1))):
            listed = yaml.safe_load((work / "group_vars" / "all" / "tenants.yml").read_text())["tenants"]
            if any(t["name"] == name for t in listed):
                seconds, out = timed(work, "playbooks/tenant-remove.yml", "-e", f"tenant={name}", "-e", "confirm=yes")
                rows.append((f"tenant-remove {name} (back to {count - 1})", seconds, recap(out), tenant_tasks(out)))
    seconds, out = timed(work, "site.yml")
    rows.append((f"site.yml no-op, {len(base)} tenants again", seconds, recap(out), tenant_tasks(out)))
    width = max(len(r[0]) for r in rows)
    print(f"{'run'.ljust(width)}  seconds  recap               tenant-role tasks")
    for label, seconds, counts, tasks in rows:
        print(f"{label.ljust(width)}  {seconds:7.1f}  {counts:<18}  {tasks}")
    shutil.rmtree(work.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
