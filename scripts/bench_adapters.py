"""LoRA adapter cost: chat latency with a tenant's adapter versus its base model, through
its gateway, one request at a time, the two interleaved (base, adapter, base, ...) so
both see the same machine. Prints the p50 and p90 of each and the adapter's ratio.

  python scripts/bench_adapters.py [--inventory inventory/local] [--tenant companyA]
                                   [--requests 60] [--max-tokens 16]

Results: docs/benchmarks.md, "LoRA adapters".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import requests
from tenancy_inventory import api_key, base_url, load_plan, trust_bundle_ca


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    parser.add_argument("--tenant", default=None, help="tenant with an adapter (default: the first)")
    parser.add_argument("--requests", type=int, default=60, help="requests per model")
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    trust_bundle_ca(args.inventory)
    plan = [t for t in load_plan(args.inventory) if t["state"] == "present" and t["adapters"]]
    tenant = next((t for t in plan if args.tenant in (None, t["name"])), None)
    if tenant is None:
        print("no present tenant with an adapter in this inventory", file=sys.stderr)
        return 1
    models = {"base": tenant["served_model_name"], "adapter": tenant["adapters"][0]["name"]}
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key(args.inventory, tenant['name'])}"
    url = f"{base_url(tenant)}/v1/chat/completions"
    # The gateway's rate limit would turn a long run into 429s: stay under it.
    pause = 60 / tenant["rpm_limit"] if tenant["rpm_limit"] < 100_000 else 0
    latencies: dict[str, list[float]] = {kind: [] for kind in models}
    tokens: dict[str, int] = dict.fromkeys(models, 0)
    for index in range(args.requests * 2 + 4):
        kind = ("base", "adapter")[index % 2]
        body = {
            "model": models[kind],
            "messages": [{"role": "user", "content": f"Say hello {index}"}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        start = time.perf_counter()
        answer = session.post(url, json=body, timeout=120)
        elapsed = time.perf_counter() - start
        answer.raise_for_status()
        if index >= 4:  # the first two of each warm up
            latencies[kind].append(elapsed * 1000)
            tokens[kind] += answer.json()["usage"]["completion_tokens"]
        time.sleep(max(0.0, pause - elapsed))
    print(f"tenant {tenant['name']}: {args.requests} chats per model, {args.max_tokens} tokens each, one at a time")
    print(f"{'MODEL':<28}{'P50 MS':>10}{'P90 MS':>10}{'TOKENS':>8}")
    for kind, model in models.items():
        values, label = latencies[kind], f"{model} ({kind})"
        print(f"{label:<28}{statistics.median(values):>10.1f}{percentile(values, 0.9):>10.1f}{tokens[kind]:>8}")
    ratio = statistics.median(latencies["adapter"]) / statistics.median(latencies["base"])
    print(f"adapter p50 / base p50: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
