"""An abstract OpenAI-API user and the per-tenant users generated from the plan.

Each tenant of the inventory gets a user class bound to its gateway and key, so one
Locust run loads every tenant and reports each one under its own request names.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from locust import HttpUser, between, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from tenancy_inventory import api_key, base_url, load_plan

INVENTORY = os.environ.get("TENANCY_INVENTORY", "inventory/local")


class OpenAIUser(HttpUser):
    """Weighted OpenAI-API tasks against one tenant. Subclasses set tenant, key and model."""

    abstract = True
    wait_time = between(0.0, 0.1)
    tenant = ""
    key = ""
    model = ""
    max_tokens = 16

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def _post(self, kind: str, path: str, payload: dict) -> None:
        with self.client.post(
            path, data=json.dumps(payload), headers=self.headers, name=f"{self.tenant} {kind}", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{kind}: HTTP {response.status_code}: {(response.text or '')[:200]}")

    @task(3)
    def completion(self) -> None:
        self._post("completion", "/v1/completions", {"model": self.model, "prompt": "Hello", "max_tokens": 16})

    @task(3)
    def chat(self) -> None:
        messages = [{"role": "user", "content": "Hello"}]
        self._post("chat", "/v1/chat/completions", {"model": self.model, "messages": messages, "max_tokens": 16})

    @task(1)
    def streamed_chat(self) -> None:
        """Streamed chat; time to first token is reported as its own request type."""
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Stream"}],
            "max_tokens": 16,
            "stream": True,
        }
        start = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions",
            data=json.dumps(payload),
            headers=self.headers,
            name=f"{self.tenant} stream",
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
                name=f"{self.tenant} stream ttft",
                response_time=(first_token_at - start) * 1000,
                response_length=chunks,
                exception=None,
                context={},
            )


def tenant_users(inventory: str = INVENTORY) -> dict[str, type[OpenAIUser]]:
    """One concrete user class per present tenant of the inventory."""
    users = {}
    for tenant in load_plan(inventory):
        if tenant["state"] != "present":
            continue
        class_name = "User_" + tenant["name"].replace("-", "_")
        users[class_name] = type(
            class_name,
            (OpenAIUser,),
            {
                "host": base_url(tenant),
                "tenant": tenant["name"],
                "key": api_key(inventory, tenant["name"]),
                "model": tenant["served_model_name"],
            },
        )
    return users
