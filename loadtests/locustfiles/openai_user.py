"""An abstract OpenAI-API user and the per-tenant users generated from the plan.

Each tenant of the inventory gets a user class bound to its gateway and key, so one
Locust run loads every tenant and reports each one under its own request names.
LOADTEST_TENANTS (comma-separated names) restricts a run to some tenants, e.g. to
measure one tenant alone.
"""

from __future__ import annotations

import base64
import json
import os
import random
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import shapes
from locust import HttpUser, between
from tenancy_inventory import api_key, base_url, ca_file, key_file, load_plan, trust_bundle_ca

INVENTORY = os.environ.get("TENANCY_INVENTORY", "inventory/local")
# The tenants serve https only: Locust's client (requests) trusts the bundle CA.
trust_bundle_ca(INVENTORY)
# The default models directory (roles/tenancy/defaults tenancy_models_dir).
MODELS_DIR = Path(os.environ.get("TENANCY_MODELS_DIR", "/var/lib/tenancy/models"))


def present_tenants(inventory: str = INVENTORY) -> list[dict]:
    """The plan's present tenants, limited to LOADTEST_TENANTS when that is set."""
    wanted = {name for name in os.environ.get("LOADTEST_TENANTS", "").split(",") if name}
    tenants = [t for t in load_plan(inventory) if t["state"] == "present"]
    return [t for t in tenants if not wanted or t["name"] in wanted]


def scenario_tenants(scenario: str, *roles: str | None) -> list[dict]:
    """Distinct present tenants for a scenario's roles, in order. Each role is the
    environment variable that names its tenant (e.g. NOISY_TENANT), or None; a role left
    unset takes the first present tenant not chosen yet. Exits with a clear message when
    the plan has too few tenants or a variable names no present tenant."""
    tenants = {t["name"]: t for t in present_tenants()}
    if len(tenants) < len(roles):
        raise SystemExit(f"{scenario} needs {len(roles)} present tenant(s); the plan has {len(tenants)}")
    chosen: list[dict] = []
    for role in roles:
        name = (os.environ.get(role) if role else None) or next(
            n for n in tenants if n not in {c["name"] for c in chosen}
        )
        if name not in tenants or tenants[name] in chosen:
            raise SystemExit(f"{scenario}: {role}={name!r} is not a present tenant of its own ({', '.join(tenants)})")
        chosen.append(tenants[name])
    return chosen


def model_takes_images(tenant: dict) -> bool:
    """Whether the tenant's model takes images: the planner's verdict (takes_images in
    the plan record, from the model's vision_config), not a second guess here."""
    return bool(tenant.get("takes_images"))


def png_url(side: int, row: Callable[[], bytes]) -> str:
    """A side x side RGB PNG as a data URL; row() gives each row's pixel bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + row() for _ in range(side))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def noise_png(side: int, seed: int = 0) -> str:
    """A side x side PNG of random pixels: no codec shrinks it, so the body is as big as
    the picture (about 4 x side^2 bytes in base64)."""
    rng = random.Random(seed)
    return png_url(side, lambda: rng.randbytes(side * 3))


def tiny_png() -> str:
    """An 8x8 red PNG as a data URL: enough for a vision model, no file needed."""
    return png_url(8, lambda: b"\xff\x00\x00" * 8)


class TenantUser(HttpUser):
    """One tenant's OpenAI API, with no tasks of its own: scenarios list the requests
    they want in `tasks` (Locust adds a subclass's tasks to its bases' tasks, so a base
    with tasks could not be narrowed). bind() sets tenant, key and model.

    With key_refresh_s > 0 the key is re-read from key_path at most that often, the way a
    client picks up a rotated key (see rotation.py)."""

    abstract = True
    wait_time = between(0.0, 0.1)
    tenant = ""
    key = ""
    key_path = ""
    key_refresh_s = 0.0
    model = ""
    max_tokens = 16
    ignore_eos = False
    # The bundle CA the tenant's https endpoint is checked against (bind() sets it).
    # Locust's session ignores REQUESTS_CA_BUNDLE (trust_env off), so it is set here.
    ca_path = ""

    def on_start(self) -> None:
        self._key_read_at = time.monotonic()
        if self.ca_path:
            self.client.verify = self.ca_path

    @property
    def headers(self) -> dict[str, str]:
        if self.key_refresh_s and time.monotonic() - self._key_read_at >= self.key_refresh_s:
            self.key = Path(self.key_path).read_text().strip()
            self._key_read_at = time.monotonic()
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def request_name(self, kind: str) -> str:
        """The name requests are reported under; scenarios with phases extend it."""
        return f"{self.tenant} {kind}"

    def _post(self, kind: str, path: str, payload: dict, expect: int = 200) -> int:
        with self.client.post(
            path, data=json.dumps(payload), headers=self.headers, name=self.request_name(kind), catch_response=True
        ) as response:
            if response.status_code != expect:
                response.failure(f"{kind}: expected HTTP {expect}, got {response.status_code}: {response.text[:200]}")
            return response.status_code

    def chat_payload(self, content: str = "Hello") -> dict:
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
        }
        # vLLM's extension: generate exactly max_tokens, so a request's cost does not depend on
        # when the random demo model happens to emit its end token.
        return {**payload, "ignore_eos": True} if self.ignore_eos else payload

    def completion(self) -> None:
        self._post(
            "completion", "/v1/completions", {"model": self.model, "prompt": "Hello", "max_tokens": self.max_tokens}
        )

    def chat(self) -> None:
        self._post("chat", "/v1/chat/completions", self.chat_payload())

    # The picture image_chat sends (a data URL); scenarios may set a bigger one.
    image_url: str | None = None

    def image_chat(self) -> None:
        content = [
            {"type": "text", "text": "What colour is this?"},
            {"type": "image_url", "image_url": {"url": self.image_url or tiny_png()}},
        ]
        payload = {**self.chat_payload(), "messages": [{"role": "user", "content": content}]}
        self._post("image chat", "/v1/chat/completions", payload)

    def streamed_chat(self) -> None:
        """Streamed chat; time to first token is reported as its own request type."""
        payload = {**self.chat_payload("Stream"), "stream": True}
        start = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions",
            data=json.dumps(payload),
            headers=self.headers,
            name=self.request_name("stream"),
            stream=True,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"stream: HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            first_token_at = None
            chunks = 0
            for line in response.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    chunks += 1
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
            if first_token_at is None:
                response.failure("stream: no data chunk came back")
                return
            self.environment.events.request.fire(
                request_type="TTFT",
                name=self.request_name("stream ttft"),
                response_time=(first_token_at - start) * 1000,
                response_length=chunks,
                exception=None,
                context={},
            )


class OpenAIUser(TenantUser):
    """The weighted mix of the qps scenario: completion 3, chat 3, streamed chat 1."""

    abstract = True
    tasks: ClassVar[dict] = {TenantUser.completion: 3, TenantUser.chat: 3, TenantUser.streamed_chat: 1}


class MultimodalOpenAIUser(OpenAIUser):
    """OpenAIUser plus a chat with an image, for tenants whose model takes images."""

    abstract = True

    tasks: ClassVar[dict] = {TenantUser.image_chat: 1}  # added to the inherited mix


class PhasedChatUser(TenantUser):
    """Chats only, each request named after the shape's phase it was sent in (the phased
    scenarios compare "<tenant> chat [solo]" with the loaded phase)."""

    abstract = True
    tasks: ClassVar[list] = [TenantUser.chat]

    def request_name(self, kind: str) -> str:
        return f"{self.tenant} {kind} [{shapes.current_phase()}]"


def bind(base: type[TenantUser], tenant: dict, inventory: str = INVENTORY, **attributes: object) -> type[TenantUser]:
    """A concrete subclass of `base` bound to one tenant's gateway, key and model."""
    class_name = f"{base.__name__}_{tenant['name'].replace('-', '_')}"
    return type(
        class_name,
        (base,),
        {
            "abstract": False,
            "host": base_url(tenant),
            "tenant": tenant["name"],
            "key": api_key(inventory, tenant["name"]),
            "key_path": str(key_file(inventory, tenant["name"])),
            "ca_path": str(ca_file(inventory)),
            "model": tenant["served_model_name"],
            **attributes,
        },
    )


def tenant_users(inventory: str = INVENTORY) -> dict[str, type[TenantUser]]:
    """One concrete user class per present tenant; image chat only where the model takes images."""
    users = {}
    for tenant in present_tenants(inventory):
        if model_takes_images(tenant):
            base: type[OpenAIUser] = MultimodalOpenAIUser
        else:
            print(f"{tenant['name']}: text only, model {tenant['model']} takes no images")
            base = OpenAIUser
        user = bind(base, tenant, inventory)
        users[user.__name__] = user
    return users
