"""End-to-end fixtures: converge the demo inventory once per session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest
from helpers import INVENTORY, run_site
from tenancy_inventory import load_plan


@pytest.fixture(scope="session")
def first_converge() -> subprocess.CompletedProcess[str]:
    result = run_site()
    if result.returncode != 0:
        pytest.fail(f"site.yml failed (rc={result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def plan(first_converge) -> list[dict]:
    return [t for t in load_plan(INVENTORY) if t["state"] == "present"]


@pytest.fixture(scope="session")
def inventory() -> Path:
    return INVENTORY


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="session")
def tenants(plan) -> dict[str, dict]:
    assert len(plan) >= 2, "the end-to-end suite needs at least two tenants"
    return {t["name"]: t for t in plan}
