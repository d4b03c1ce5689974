"""Converge and re-converge times of site.yml with the images already built.

Removes the inventory's tenants (state: absent), then times a first converge (networks,
keys, engines started one at a time and waited for, gateways) and a second, idempotent
run, and prints their ratio. Destroys and recreates the tenants: API keys change.
Usage: python scripts/bench_converge.py [--inventory inventory/local]
"""

from __future__ import annotations

import argparse
import json
import time

from tenancy_inventory import ROOT, load_plan, run_ansible


def site(inventory: str, *extra: str) -> float:
    start = time.perf_counter()
    run_ansible("ansible-playbook", "-i", inventory, ROOT / "site.yml", *extra, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    args = parser.parse_args()
    plan = [t for t in load_plan(args.inventory) if t["state"] == "present"]
    absent = [{"name": t["name"], "port": t["port"], "state": "absent"} for t in plan]
    site(args.inventory, "-e", json.dumps({"tenants": absent}))
    first = site(args.inventory)
    second = site(args.inventory)
    print(f"tenants: {len(plan)}")
    print(f"first converge (images prebuilt): {first:.1f} s")
    print(f"second run (changed=0):          {second:.1f} s")
    print(f"second / first:                   {second / first:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
