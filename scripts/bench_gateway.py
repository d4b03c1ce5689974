"""Gateway overhead: completion requests/s and p50 latency straight to one tenant's
engine versus through its gateway, at the same concurrency.

The engine sits on an internal Docker network whose bridge has no host address
(inhibit_ipv4, roles/tenant/tasks/network.yml), so no local user reaches it. For the
"direct" path this script (as root) gives the host that address for the length of the
run and removes it afterwards. Prints one table and the ratios. Usage:
  python scripts/bench_gateway.py [--inventory inventory/local] [--tenant companyA]
                                  [--requests 400] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import requests
from tenancy_inventory import api_key, base_url, load_plan, trust_bundle_ca


def run(url: str, headers: dict[str, str], model: str, total: int, concurrency: int) -> tuple[float, float, int]:
    """Send `total` completions with `concurrency` keep-alive clients. Returns (req/s, p50 ms, failures)."""
    local = threading.local()
    body = {"model": model, "prompt": "Benchmark the gateway", "max_tokens": 16, "temperature": 0}

    def one(_: int) -> tuple[float, bool]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        start = time.perf_counter()
        response = session.post(url, json=body, headers=headers, timeout=120)
        return time.perf_counter() - start, response.status_code == 200

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency * 2)))  # warm-up: connections and engine
        start = time.perf_counter()
        results = list(pool.map(one, range(total)))
        elapsed = time.perf_counter() - start
    latencies = [latency for latency, ok in results if ok]
    failures = sum(1 for _, ok in results if not ok)
    return total / elapsed, statistics.median(latencies) * 1000 if latencies else float("nan"), failures


@contextlib.contextmanager
def route_into(network) -> object:
    """The host's address on the network's bridge (Docker reserves it as the gateway)."""
    attrs = network.attrs
    bridge = (attrs.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{attrs['Id'][:12]}"
    config = next(c for c in attrs["IPAM"]["Config"] if ipaddress.ip_network(c["Subnet"]).version == 4)
    address = f"{config['Gateway']}/{config['Subnet'].split('/')[1]}"
    subprocess.run(["ip", "address", "add", address, "dev", bridge], check=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "address", "del", address, "dev", bridge], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    parser.add_argument("--tenant", default=None, help="tenant to measure (default: the first)")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trust_bundle_ca(args.inventory)

    plan = [t for t in load_plan(args.inventory) if t["state"] == "present"]
    tenant = next(t for t in plan if args.tenant in (None, t["name"]))
    client = docker.from_env()
    engine = client.containers.get(tenant["names"]["engine"])
    engine_ip = engine.attrs["NetworkSettings"]["Networks"][tenant["names"]["network"]]["IPAddress"]
    targets = {
        "direct": (f"http://{engine_ip}:8000/v1/completions", {}),
        "gateway": (
            f"{base_url(tenant)}/v1/completions",
            {"Authorization": f"Bearer {api_key(args.inventory, tenant['name'])}"},
        ),
    }
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in targets}
    with route_into(client.networks.get(tenant["names"]["network"])):
        for _ in range(args.rounds):
            for name, (url, headers) in targets.items():  # interleaved, so drift hits both alike
                samples[name].append(run(url, headers, tenant["served_model_name"], args.requests, args.concurrency))

    print(
        f"tenant {tenant['name']}, {args.requests} completions x {args.rounds} rounds, "
        f"concurrency {args.concurrency}, max_tokens 16"
    )
    print(f"{'path':8}  {'req/s (median)':>14}  {'p50 ms (median)':>15}  {'failures':>8}")
    summary = {}
    for name, runs in samples.items():
        rps = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        failures = sum(r[2] for r in runs)
        summary[name] = (rps, p50)
        print(f"{name:8}  {rps:14.1f}  {p50:15.1f}  {failures:8d}")
    ratio = summary["gateway"][0] / summary["direct"][0]
    added = summary["gateway"][1] - summary["direct"][1]
    print(f"gateway/direct req/s ratio: {ratio:.3f}; p50 added by the gateway: {added:+.1f} ms")
    return 0 if all(r[2] == 0 for runs in samples.values() for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
