"""Fixtures of the infra suite, and a dump of a tenant's container logs whenever a test
about that tenant fails.

  TENANCY_INVENTORY=inventory/local pytest tests/infra     (make test-infra)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_env import INVENTORY, docker_on, plan


@pytest.fixture(scope="session")
def tenants() -> dict[str, dict]:
    return {t["name"]: t for t in plan()}


@pytest.fixture(scope="session")
def inventory() -> Path:
    return INVENTORY


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test about a tenant, attach the last log lines of its containers."""
    report = yield
    if report.when == "call" and report.failed:
        names = [v for k, v in item.funcargs.items() if k in ("name", "source", "target") and isinstance(v, str)]
        for tenant in (t for t in plan() if t["name"] in names):
            docker = docker_on(tenant)
            for role in ("engine", "gateway"):
                container = tenant["names"][role]
                # The dump must never hide the real failure.
                try:
                    logs = docker.logs(container)
                except Exception as exc:
                    logs = f"(no logs: {exc})"
                report.sections.append((f"docker logs --tail 50 {container}", logs))
    return report
