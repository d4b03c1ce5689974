"""API keys stay secret: private files on the controller, and nowhere in Docker's view,
the host's process list or a verbose playbook run."""

from __future__ import annotations

import checks
import pytest
from infra_env import docker_on, infra_host, key_leaks_in_docker, playbook_output, tenant_ids
from tenancy_inventory import api_key, key_file


@pytest.fixture(scope="module")
def verbose_output() -> str:
    return playbook_output("-vvv", "playbooks/tenants-list.yml")


@pytest.mark.parametrize("name", tenant_ids())
def test_credential_file_is_private(inventory, name):
    path = key_file(inventory, name)
    assert checks.private_file(path.stat().st_mode, str(path)) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_key_absent_from_docker_inspect_and_logs(tenants, inventory, name):
    assert key_leaks_in_docker(docker_on(tenants[name]), api_key(inventory, name)) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_key_absent_from_process_list(tenants, inventory, name):
    processes = infra_host(tenants[name]["host"]).check_output("ps -eo args")
    assert checks.leaks(api_key(inventory, name), processes, "the host's process list") == []


@pytest.mark.parametrize("name", tenant_ids())
def test_key_absent_from_verbose_playbook_output(verbose_output, inventory, name):
    assert checks.leaks(api_key(inventory, name), verbose_output, "ansible-playbook -vvv output") == []
