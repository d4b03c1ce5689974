"""Run Locust scenarios against the deployed tenants, full or short.

  python loadtests/run.py [--short] [--inventory inventory/local] SCENARIO... | all

Each scenario writes reports/<name>[-short]_stats.csv, ..._tenants.csv and .html and
enforces its own thresholds (see each locustfile's docstring). Scenarios that measure
the engines (qps, noisy_neighbour, oom) need more than a demo rpm_limit lets through: for
them the tenants are converged with the limit lifted (tenancy_tenant_overrides, as
`make bench` does) and converged back to the inventory's own limits afterwards, also
when a scenario fails. The others run against the limits as configured; rate_limit
runs last, because it leaves its tenant at the limit for a minute.
Exits non-zero when any scenario missed a threshold.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from tenancy_inventory import ROOT, ansible_bin

LIFTED = '{"tenancy_tenant_overrides": {"rpm_limit": 100000000}}'


@dataclass(frozen=True)
class Scenario:
    name: str
    lift_rpm_limit: bool
    full: list[str]
    short: list[str]
    env_full: dict[str, str] = field(default_factory=dict)
    env_short: dict[str, str] = field(default_factory=dict)


# Order matters: lifted-limit scenarios first (one lift, one restore), rate_limit last.
SCENARIOS = [
    Scenario("qps", True, ["-u", "8", "-r", "8", "-t", "60s"], ["-u", "4", "-r", "4", "-t", "20s"]),
    Scenario(
        "noisy_neighbour",
        True,
        ["-t", "150s"],
        ["-t", "90s"],
        {"NOISY_SOLO_S": "60", "NOISY_NOISY_S": "60"},
        # 15 s phases (60 victim samples each) gave a ratio of 1.36 where 60 s phases gave 1.14.
        {"NOISY_SOLO_S": "30", "NOISY_NOISY_S": "30"},
    ),
    Scenario("oom", True, ["-u", "27", "-r", "27", "-t", "60s"], ["-u", "27", "-r", "27", "-t", "20s"]),
    Scenario(
        "rotation",
        False,
        ["-u", "4", "-r", "4", "-t", "180s"],
        ["-u", "4", "-r", "4", "-t", "120s"],
        env_short={"ROTATION_DELAY_S": "3", "ROTATION_TAIL_S": "3"},
    ),
    Scenario(
        "chaos",
        False,
        ["-u", "4", "-r", "4", "-t", "400s"],
        ["-u", "4", "-r", "4", "-t", "300s"],
        env_short={"CHAOS_KILL_AFTER_S": "5", "CHAOS_TAIL_S": "3"},
    ),
    Scenario(
        "rate_limit",
        False,
        ["-u", "4", "-r", "4", "-t", "240s", "--stop-timeout", "10"],
        ["-u", "4", "-r", "4", "-t", "185s", "--stop-timeout", "10"],
    ),
]


def converge(inventory: str, *extra: str) -> None:
    command = [ansible_bin("ansible-playbook"), "-i", inventory, "site.yml", *extra]
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT, text=True, capture_output=True)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-2000:])
        raise SystemExit(f"site.yml failed (rc {result.returncode}); the tenants may still have lifted limits")


def run_locust(scenario: Scenario, inventory: str, short: bool) -> bool:
    report = ROOT / "reports" / (scenario.name + ("-short" if short else ""))
    report.parent.mkdir(exist_ok=True)
    command = [
        ansible_bin("locust"),
        "-f",
        str(ROOT / "loadtests" / "locustfiles" / f"{scenario.name}.py"),
        "--config",
        str(ROOT / "loadtests" / "locust.conf"),
        *(scenario.short if short else scenario.full),
        "--csv",
        str(report),
        "--html",
        f"{report}.html",
    ]
    env = {**os.environ, "TENANCY_INVENTORY": inventory, **(scenario.env_short if short else scenario.env_full)}
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", help="scenario names, or all")
    parser.add_argument("--short", action="store_true", help="short versions (make loadtest-short)")
    parser.add_argument("--inventory", default="inventory/local")
    args = parser.parse_args()
    known = {s.name: s for s in SCENARIOS}
    wanted = list(known) if args.scenarios == ["all"] else args.scenarios
    unknown = [name for name in wanted if name not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [s for s in SCENARIOS if s.name in wanted]

    results: list[tuple[str, bool, float]] = []
    lifted = [s for s in chosen if s.lift_rpm_limit]
    if lifted:
        converge(args.inventory, "-e", LIFTED)
        try:
            for scenario in lifted:
                started = time.monotonic()
                results.append(
                    (scenario.name, run_locust(scenario, args.inventory, args.short), time.monotonic() - started)
                )
        finally:
            converge(args.inventory)
    for scenario in (s for s in chosen if not s.lift_rpm_limit):
        started = time.monotonic()
        results.append((scenario.name, run_locust(scenario, args.inventory, args.short), time.monotonic() - started))

    print("\nSCENARIO          RESULT  SECONDS")
    for name, passed, seconds in results:
        print(f"{name:<17} {'ok' if passed else 'FAILED':<7} {seconds:7.1f}")
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
