"""Planner time for 1,000 tenants over 100 hosts x 8 GPUs (shared and MIG).

Quotas are drawn from a fixed seed, so every run plans the same input. Prints the median
of --repeat runs per mode.
Usage: python scripts/bench_planner.py [--tenants 1000] [--hosts 100] [--gpus 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "filter_plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collections"))
from tenancy_plan import tenancy_plan


def inventory(hosts: int, gpus: int, mode: str) -> dict:
    gpu = {"name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB", "mode": mode}
    return {f"gpu{h:03d}": {"tenancy_gpus": [{**gpu, "index": i} for i in range(gpus)]} for h in range(hosts)}


def tenants(count: int, mode: str) -> list[dict]:
    rng = random.Random(1)
    # MIG quotas fit its profiles (5-35 GiB); shared quotas spread wider (2-40 GiB).
    low, high = (5, 35) if mode == "mig" else (2, 40)
    return [{"name": f"t{i:04d}", "port": 20000 + i, "gpu_memory": f"{rng.randint(low, high)}G"} for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as models_dir:
        for mode in ("shared", "mig"):
            hosts = inventory(args.hosts, args.gpus, mode)
            spec = tenants(args.tenants, mode)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                plan = tenancy_plan(spec, {}, hosts, None, models_dir, True)
                times.append(time.perf_counter() - start)
            placed = sum(1 for t in plan if t["state"] == "present")
            print(
                f"{mode:6}: {args.tenants} tenants, {args.hosts} hosts x {args.gpus} GPUs: "
                f"median {statistics.median(times) * 1000:.0f} ms over {args.repeat} runs; {placed} placed"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
