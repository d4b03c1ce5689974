"""Requests to a tenant's gateway exactly as written (requests would normalise dot
segments away before sending), for the path allowlist and key checks."""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit

import requests
from checks import HIDDEN_PATHS

POST_PATHS = ("/tokenize", "/pause", "/invocations", "/load", "/v1/load_lora_adapter", "/v1/unload_lora_adapter")


def raw_answer(url: str, path: str, key: str) -> tuple[int, str]:
    """(status, body) of one request sent exactly as written."""
    method = "POST" if path in POST_PATHS else "GET"
    request = requests.Request(method, url + path, headers={"Authorization": f"Bearer {key}"}).prepare()
    request.url = url + path
    session = requests.Session()
    # send() alone skips the environment: take its CA bundle (trust_bundle_ca) as a
    # request() would. Verification stays on.
    settings = session.merge_environment_settings(request.url, {}, None, None, None)
    answer = session.send(request, timeout=10, verify=settings["verify"])
    return answer.status_code, answer.text


def raw_status(url: str, path: str, key: str) -> int:
    return raw_answer(url, path, key)[0]


def path_answers(url: str, key: str) -> dict[str, tuple[int, str]]:
    """(status, body) of every path that must stay hidden behind the gateway."""
    return {path: raw_answer(url, path, key) for path in HIDDEN_PATHS}


# What the gateway reads of a body before its rules decide (haproxy.cfg.j2's
# tune.bufsize): sending a little more than this is enough for any refusal.
GATEWAY_BUFFER = 65536


def post_refused_early(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """POST `body` the way a careful client uploads a large one: headers with its whole
    Content-Length, then its first part (up to twice the gateway's buffer, stopping at the
    first write the closed connection refuses), then read the answer. The gateway answers
    a body above max_body_size with 413 and closes once its buffer is full; over TLS a
    client that keeps writing past that point gets an EOF on its write instead of the
    answer (urllib3 reads the answer after a broken pipe on plain TCP, not after a TLS
    EOF). The CA is the environment's (SSL_CERT_FILE, trust_bundle_ca). Returns (status,
    body of the answer)."""
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, timeout=60, context=ssl.create_default_context()
    )
    try:
        connection.putrequest("POST", parts.path or "/")
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders()
        # In pieces: once the gateway has read its buffer it answers and closes, and the
        # next write fails. What it answered is still there to read.
        for start in range(0, min(len(body), 2 * GATEWAY_BUFFER), 8192):
            try:
                connection.send(body[start : start + 8192])
            except (ssl.SSLError, OSError):
                break
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()
