"""What the host's Prometheus costs: CPU, memory, disk and samples, idle and under load.

Samples `docker stats` of the Prometheus container every few seconds for --seconds
while --clients keep-alive clients send chats to every tenant (0: idle), then prints
its mean and peak CPU (% of one core), peak memory, TSDB size on disk, the samples it
ingests per second and its slowest scrape. Run it on the host (the demo: this machine).
Usage: python scripts/bench_monitoring.py [--inventory inventory/local] [--seconds 120] [--clients 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time

import requests
from tenancy_inventory import api_key, base_url, load_plan, trust_bundle_ca

PROMETHEUS = "http://127.0.0.1:9090"
CONTAINER = "tenancy-prometheus"
DATA_DIR = "/var/lib/tenancy/prometheus"


def stats() -> tuple[float, float]:
    """(CPU % of one core, memory MiB) of the Prometheus container right now."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", CONTAINER],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = json.loads(out)
    memory = row["MemUsage"].split("/")[0].strip()
    factor = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    unit = next(u for u in factor if memory.endswith(u))
    return float(row["CPUPerc"].rstrip("%")), float(memory[: -len(unit)]) * factor[unit]


def query(expr: str) -> float:
    answer = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": expr}, timeout=10).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    trust_bundle_ca(args.inventory)
    tenants = [t for t in load_plan(args.inventory) if t["state"] == "present"]
    stop = threading.Event()
    sent = [0]

    def client(tenant: dict) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {api_key(args.inventory, tenant['name'])}"}
        body = {"model": tenant["served_model_name"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        while not stop.is_set():
            session.post(f"{base_url(tenant)}/v1/chat/completions", json=body, headers=headers, timeout=120)
            sent[0] += 1

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in tenants for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    cpu, memory = [], []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        c, m = stats()
        cpu.append(c)
        memory.append(m)
        time.sleep(3)
    stop.set()
    disk = subprocess.run(["du", "-sb", DATA_DIR], capture_output=True, text=True, check=True).stdout.split()[0]
    print(f"tenants {len(tenants)}, clients {args.clients} per tenant, {sent[0]} chats in {args.seconds} s")
    print(f"prometheus CPU mean {sum(cpu) / len(cpu):.1f} %, peak {max(cpu):.1f} % of one core")
    print(f"prometheus memory peak {max(memory):.0f} MiB")
    print(f"TSDB on disk {int(disk) / 2**20:.1f} MiB")
    print(f"samples ingested {query('rate(prometheus_tsdb_head_samples_appended_total[1m])'):.0f}/s")
    print(f"series in the head {query('prometheus_tsdb_head_series'):.0f}")
    print(f"slowest scrape {query('max(scrape_duration_seconds)') * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
