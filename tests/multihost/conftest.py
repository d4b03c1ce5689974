"""Fixtures of the multi-host suite. `make multihost` brings the hosts up and converges
inventory/multihost; `make test-multihost` runs this suite against them.

Without the hosts, a bare `pytest` skips this suite; `make test-multihost` sets
TENANCY_MULTIHOST=1, and then missing hosts fail it."""

from __future__ import annotations

import os

import pytest
from multihost_env import INVENTORY, hosts_are_up, plan


def pytest_collection_modifyitems(config, items):
    if hosts_are_up():
        return
    if os.environ.get("TENANCY_MULTIHOST") == "1":
        raise pytest.UsageError("the multi-host test hosts are not up: run `make multihost` first")
    skip = pytest.mark.skip(reason="multi-host test hosts are not up (make multihost)")
    for item in items:
        if "tests/multihost" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tenants() -> dict[str, dict]:
    return {t["name"]: t for t in plan()}


@pytest.fixture(scope="session")
def inventory():
    return INVENTORY
