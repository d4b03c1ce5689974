"""Send one chat completion to every tenant through its gateway and print a table.

Tenants whose model takes images also get a chat with a picture (a 96x64 PNG); the
IMAGES column says how many images a prompt may carry (- for text only). Each of a
tenant's LoRA adapters gets a chat of its own (a row whose MODEL is the adapter's name).
Exits non-zero when any present tenant is unhealthy or does not answer.
Usage: python scripts/tenancy_smoke.py [--inventory inventory/local]
"""

from __future__ import annotations

import argparse
import base64
import io
import sys

import openai
import requests
from PIL import Image
from tenancy_inventory import api_key, base_url, key_file, load_plan, trust_bundle_ca


def picture_url() -> str:
    """A 96x64 gradient PNG as a data URL."""
    image = Image.new("RGB", (96, 64))
    image.putdata([(x * 2, y * 4, 128) for y in range(64) for x in range(96)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ask(client: openai.OpenAI, model: str, content: str | list) -> str:
    try:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}], max_tokens=8
        )
    except openai.OpenAIError as exc:
        return f"ERROR {exc}"
    return f"ok ({reply.usage.prompt_tokens} in, {reply.usage.completion_tokens} out)"


def check(tenant: dict, inventory: str) -> list[tuple[str, str, str, str]]:
    """(model, health, chat answer, image chat answer or -) for the tenant's model and
    for each of its adapters."""
    url = base_url(tenant)
    models = [tenant["served_model_name"], *(a["name"] for a in tenant.get("adapters") or [])]
    try:
        health = "healthy" if requests.get(f"{url}/health", timeout=5).status_code == 200 else "unhealthy"
    except requests.RequestException as exc:
        return [(model, f"unreachable ({type(exc).__name__})", "", "-") for model in models]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key(inventory, tenant["name"]), max_retries=0, timeout=60)
    results = []
    for model in models:
        image_answer = "-"
        if tenant.get("max_images") and model == tenant["served_model_name"]:
            parts = [
                {"type": "image_url", "image_url": {"url": picture_url()}},
                {"type": "text", "text": "What is this?"},
            ]
            image_answer = ask(client, model, parts)
        results.append((model, health, ask(client, model, "Say hello"), image_answer))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/local")
    args = parser.parse_args()
    trust_bundle_ca(args.inventory)

    rows = [("TENANT", "ENDPOINT", "MODEL", "IMAGES", "HEALTH", "CHAT", "IMAGE CHAT", "KEY FILE")]
    failed = False
    for tenant in load_plan(args.inventory):
        if tenant["state"] != "present":
            continue
        for model, health, answer, image_answer in check(tenant, args.inventory):
            failed |= health != "healthy" or not answer.startswith("ok") or image_answer.startswith("ERROR")
            base = model == tenant["served_model_name"]
            rows.append(
                (
                    tenant["name"],
                    f"{base_url(tenant)}/v1",
                    model if base else f"{model} (adapter)",
                    f"{tenant['max_images']}/prompt" if tenant.get("max_images") and base else "-",
                    health,
                    answer,
                    image_answer,
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
