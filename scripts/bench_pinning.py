"""Two tenants under load at once: per-tenant p50/max latency and wall time.

Shows whether one tenant's engine slows the other's down (e.g. both pinned to the same
core). Each tenant gets --clients keep-alive clients sending --requests completions.
Usage: python scripts/bench_pinning.py [--inventory inventory/local] [--clients 2] [--requests 40]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import requests
from tenancy_inventory import api_key, base_url, load_plan, trust_bundle_ca


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    trust_bundle_ca(args.inventory)
    tenants = [t for t in load_plan(args.inventory) if t["state"] == "present"]
    results: list[tuple[str, float, int]] = []

    def client(tenant: dict) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {api_key(args.inventory, tenant['name'])}"}
        body = {"model": tenant["served_model_name"], "prompt": "Hello", "max_tokens": 16}
        for _ in range(args.requests):
            start = time.perf_counter()
            response = session.post(f"{base_url(tenant)}/v1/completions", json=body, headers=headers, timeout=120)
            results.append((tenant["name"], time.perf_counter() - start, response.status_code))

    threads = [threading.Thread(target=client, args=(t,)) for t in tenants for _ in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for tenant in tenants:
        latencies = [r[1] * 1000 for r in results if r[0] == tenant["name"]]
        codes = sorted({r[2] for r in results if r[0] == tenant["name"]})
        print(
            f"{tenant['name']:12} cpuset {tenant['cpuset'] or '-':6} n {len(latencies):4} "
            f"p50 {statistics.median(latencies):7.1f} ms  max {max(latencies):7.1f} ms  status {codes}"
        )
    print(f"wall time {wall:.1f} s")
    return 0 if all(r[2] == 200 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
