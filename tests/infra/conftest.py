"""Fixtures of the infra suite, and a dump of a tenant's container logs whenever a test
about that tenant fails.

  TENANCY_INVENTORY=inventory/local pytest tests/infra     (make test-infra)

The suite checks deployed tenants, and deploys them itself when they are not (the
`deployed` fixture): it does not rely on an earlier make target having run site.yml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_env import INVENTORY, docker_on, plan
from tenancy_inventory import ROOT, run_ansible


def not_running(tenants: list[dict]) -> list[str]:
    """Each planned container that is missing, stopped or unhealthy on its host."""
    problems = []
    for tenant in tenants:
        docker = docker_on(tenant)
        running = set(docker.containers("tenancy.tenant=" + tenant["name"]))
        for role in ("engine", "gateway"):
            name = tenant["names"][role]
            if name not in running:
                problems.append(f"{name} is missing")
                continue
            state = docker.container(name)["State"]
            health = state.get("Health", {}).get("Status", "healthy")
            if not state.get("Running") or health != "healthy":
                problems.append(f"{name} is {state.get('Status')} ({health})")
    return problems


@pytest.fixture(scope="session", autouse=True)
def deployed() -> None:
    """Every planned tenant runs, healthy, before any check: when one does not, converge
    the inventory with site.yml first. After make demo (or the multi-host job) this only
    looks, and costs a few seconds."""
    problems = not_running(plan())
    if not problems:
        return
    print(f"deploying {INVENTORY} first: {'; '.join(problems)}")
    result = run_ansible("ansible-playbook", "-i", INVENTORY, ROOT / "site.yml", timeout=3600)
    if result.returncode != 0:
        pytest.fail(f"site.yml failed (rc={result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    problems = not_running(plan())
    assert not problems, f"after site.yml: {'; '.join(problems)}"


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
