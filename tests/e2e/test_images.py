"""End to end: image chat through the gateway of the demo's image tenant (companyB, the
tiny Qwen3-VL), with the official openai client, the way the article's users send it.

The image is real (PNG and JPEG made with Pillow, as data URLs) and the proof that the
engine looked at it is in the usage: the same question costs more prompt tokens with an
image than without one.
"""

from __future__ import annotations

import base64
import io
import json
import random
import time

import openai
import pytest
import requests
from gateway_probe import post_refused_early
from PIL import Image
from tenancy_inventory import api_key, base_url

# The tiny Qwen3-VL's processor caps an image at 256x256 pixels: at most 64 tokens.
QUESTION = "What is in this picture?"


def picture(width: int, height: int, fmt: str, noise: bool = False) -> bytes:
    """A test picture: a gradient, or random noise (which no codec can shrink)."""
    if noise:
        image = Image.frombytes("RGB", (width, height), random.Random(0).randbytes(width * height * 3))
    else:
        image = Image.new("RGB", (width, height))
        image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"compress_level": 0} if fmt == "PNG" else {"quality": 90}))
    return buffer.getvalue()


def data_url(data: bytes, fmt: str) -> str:
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode()}"


def image_message(url: str | None, count: int = 1) -> list[dict]:
    content: list[dict] = [{"type": "image_url", "image_url": {"url": url}} for _ in range(count if url else 0)]
    content.append({"type": "text", "text": QUESTION})
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def image_tenant(tenants) -> dict:
    takers = [t for t in tenants.values() if t["takes_images"]]
    assert takers, "the demo has no tenant whose model takes images"
    return takers[0]


@pytest.fixture(scope="module")
def image_client(image_tenant, inventory) -> openai.OpenAI:
    key = api_key(inventory, image_tenant["name"])
    return openai.OpenAI(base_url=f"{base_url(image_tenant)}/v1", api_key=key, max_retries=0, timeout=120)


def post_chat(tenant: dict, inventory, body: bytes) -> requests.Response:
    return requests.post(
        f"{base_url(tenant)}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key(inventory, tenant['name'])}", "Content-Type": "application/json"},
        data=body,
        timeout=120,
    )


def test_the_plan_says_which_tenants_take_images(tenants):
    assert tenants["companyB"]["takes_images"] and tenants["companyB"]["max_images"] == 1
    assert not tenants["companyA"]["takes_images"] and tenants["companyA"]["max_images"] == 0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_chat(image_tenant, image_client, fmt):
    model = image_tenant["served_model_name"]
    text_only = image_client.chat.completions.create(model=model, messages=image_message(None), max_tokens=4)
    url = data_url(picture(200, 120, fmt), fmt)
    reply = image_client.chat.completions.create(model=model, messages=image_message(url), max_tokens=8)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens >= 1
    # 200x120 at 32x32 pixels per token: the image adds its tokens to the prompt.
    assert reply.usage.prompt_tokens >= text_only.usage.prompt_tokens + 12, (reply.usage, text_only.usage)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_streamed_image_chat(image_tenant, image_client, fmt):
    stream = image_client.chat.completions.create(
        model=image_tenant["served_model_name"],
        messages=image_message(data_url(picture(160, 160, fmt), fmt)),
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) >= 3, "a stream of one chunk was buffered, not streamed"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text, "the stream carried no text"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 25


def body_of_size(tenant: dict, share: float) -> bytes:
    """A chat body about `share` x max_body_size, nearly all of it one random-pixel PNG
    (base64 is 4/3 of the PNG, and the PNG is 3 bytes per pixel, uncompressed)."""
    side = int((tenant["max_body_size"] * share * 3 / 4 / 3) ** 0.5)
    png = picture(side, side, "PNG", noise=True)
    message = image_message(data_url(png, "PNG"))
    return json.dumps({"model": tenant["served_model_name"], "messages": message, "max_tokens": 4}).encode()


def test_an_image_just_under_the_body_cap_passes(image_tenant, inventory):
    """A body of 95 % or more of max_body_size, nearly all of it one PNG, is served."""
    cap = image_tenant["max_body_size"]
    body = body_of_size(image_tenant, 0.96)
    assert 0.95 * cap <= len(body) <= cap, (len(body), cap)
    response = post_chat(image_tenant, inventory, body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["usage"]["prompt_tokens"] > 64


def test_an_image_over_the_body_cap_gets_413_and_never_reaches_the_engine(image_tenant, inventory, docker_client):
    body = body_of_size(image_tenant, 1.02)
    assert len(body) > image_tenant["max_body_size"]
    since = int(time.time()) - 1
    status, answer = post_refused_early(
        f"{base_url(image_tenant)}/v1/chat/completions",
        {"Authorization": f"Bearer {api_key(inventory, image_tenant['name'])}", "Content-Type": "application/json"},
        body,
    )
    assert status == 413, answer[:300]
    assert json.loads(answer)["error"]["code"] == 413
    # The gateway's log line for it names its backend too_large and no server: HAProxy
    # answered it itself.
    # HAProxy writes the line when the stream ends, which can be after the client has the
    # answer (it may still be draining the refused body), so look for up to 10 s.
    gateway = docker_client.containers.get(image_tenant["names"]["gateway"])
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        time.sleep(0.5)
        lines = [line for line in gateway.logs(tail=50, since=since).decode().splitlines() if " 413 " in line]
    assert lines, "the gateway logged no 413 within 10 s"
    assert "too_large/<NOSRV>" in lines[-1], lines[-1]


def test_more_images_than_allowed_get_a_clear_400(image_tenant, image_client):
    url = data_url(picture(64, 64, "PNG"), "PNG")
    allowed = image_tenant["max_images"]
    with pytest.raises(openai.BadRequestError) as excinfo:
        image_client.chat.completions.create(
            model=image_tenant["served_model_name"], messages=image_message(url, allowed + 1), max_tokens=4
        )
    assert excinfo.value.status_code == 400
    assert f"At most {allowed} image(s) may be provided in one prompt" in str(excinfo.value)


def test_the_articles_request_shape_gets_one_sentence_with_the_openai_form(image_tenant, inventory):
    """The article sends content parts {"image": b64} and {"text": ...}; the gateway
    answers 400 with the OpenAI form instead of vLLM's eight validation errors."""
    b64 = base64.b64encode(picture(64, 64, "PNG")).decode()
    body = {
        "model": image_tenant["served_model_name"],
        "messages": [{"role": "user", "content": [{"image": b64}, {"text": QUESTION}]}],
        "max_tokens": 8,
    }
    response = post_chat(image_tenant, inventory, json.dumps(body).encode())
    assert response.status_code == 400, response.text[:300]
    message = response.json()["error"]["message"]
    assert "not the OpenAI format" in message and '"image_url"' in message
    assert "validation error" not in message


def test_a_text_that_mentions_an_image_key_is_not_mistaken_for_the_articles_shape(image_tenant, image_client):
    """The check looks for a key named "image"; inside a string that quote is escaped."""
    reply = image_client.chat.completions.create(
        model=image_tenant["served_model_name"],
        messages=[{"role": "user", "content": 'Explain this JSON: {"image": "abc"}'}],
        max_tokens=4,
    )
    assert reply.usage.completion_tokens >= 1


@pytest.mark.parametrize("where", ["own-gateway", "internet"])
def test_an_image_url_is_refused_before_the_engine_fetches_anything(image_tenant, image_client, where):
    """vLLM fetches an http(s) image URL itself, from inside the engine: a request made on
    the client's behalf from the tenant's internal network, where the tenant's own gateway
    (the only thing in reach) is the target worth trying. The engine's allow-list names one
    host that cannot resolve, so vLLM refuses every such URL before it connects. Without
    the flag (the planted break) the message differs: vLLM tries the fetch and fails on
    what it got or on the connection. data: URLs (test_image_chat) are not affected."""
    host = image_tenant["names"]["gateway"] if where == "own-gateway" else "example.com"
    url = f"https://{host}:8080/v1/models" if where == "own-gateway" else f"https://{host}/cat.png"
    with pytest.raises(openai.BadRequestError) as excinfo:
        image_client.chat.completions.create(
            model=image_tenant["served_model_name"], messages=image_message(url), max_tokens=4
        )
    message = str(excinfo.value)
    assert "The URL must be from one of the allowed domains: ['no-remote-media.invalid']" in message, message
    assert f"Input URL domain: {host.lower()}" in message, message  # urllib3 lowercases hosts
