"""Requests to a tenant's gateway exactly as written (requests would normalise dot
segments away before sending), for the path allowlist and key checks."""

from __future__ import annotations

import requests
from checks import HIDDEN_PATHS

POST_PATHS = ("/tokenize", "/pause", "/invocations", "/load")


def raw_status(url: str, path: str, key: str) -> int:
    method = "POST" if path in POST_PATHS else "GET"
    request = requests.Request(method, url + path, headers={"Authorization": f"Bearer {key}"}).prepare()
    request.url = url + path
    session = requests.Session()
    # send() alone skips the environment: take its CA bundle (trust_bundle_ca) as a
    # request() would. Verification stays on.
    settings = session.merge_environment_settings(request.url, {}, None, None, None)
    return session.send(request, timeout=10, verify=settings["verify"]).status_code


def path_statuses(url: str, key: str) -> dict[str, int]:
    """Status of every path that must stay hidden behind the gateway."""
    return {path: raw_status(url, path, key) for path in HIDDEN_PATHS}
