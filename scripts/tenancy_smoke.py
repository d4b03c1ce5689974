"""Send one chat completion to every tenant through its gateway and print a table.

Exits non-zero when any present tenant is unhealthy or does not answer.
Usage: python scripts/tenancy_smoke.py [--inventory inventory/local]
"""

from __future__ import annotations

import argparse
import sys

import openai
import requests
from tenancy_inventory import api_key, base_url, key_file, load_plan


def check(tenant: dict, inventory: str) -> tuple[str, str]:
    """Return (health, answer) for one tenant."""
    url = base_url(tenant)
    try:
        health = "healthy" if requests.get(f"{url}/health", timeout=5).status_code == 200 else "unhealthy"
    except requests.RequestException as exc:
        return f"unreachable ({type(exc).__name__})", ""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key(inventory, tenant["name"]), max_retries=0, timeout=60)
    try:
        reply = client.chat.completions.create(
            model=tenant["served_model_name"],
            messages=[{"role": "user", "content": "Say hello"}],
            max_tokens=8,
        )
    except openai.OpenAIError as exc:
        return health, f"ERROR {exc}"
    return health, f"ok ({reply.usage.completion_tokens} tokens)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    args = parser.parse_args()

    rows = [("TENANT", "ENDPOINT", "MODEL", "HEALTH", "CHAT", "KEY FILE")]
    failed = False
    for tenant in load_plan(args.inventory):
        if tenant["state"] != "present":
            continue
        health, answer = check(tenant, args.inventory)
        failed |= health != "healthy" or not answer.startswith("ok")
        rows.append(
            (
                tenant["name"],
                f"{base_url(tenant)}/v1",
                tenant["served_model_name"],
                health,
                answer,
                str(key_file(args.inventory, tenant["name"])),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if failed:
        print("\nsome tenants did not answer; see `docker logs tenancy-<tenant>-engine`", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
