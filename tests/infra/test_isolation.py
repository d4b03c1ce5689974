"""Isolation between tenants: networks, the gateway's allowlist, keys, data volumes."""

from __future__ import annotations

import checks
import pytest
import requests
from gateway_probe import path_statuses, raw_status
from infra_env import docker_on, setting, tenant_ids, tenant_pairs
from isolation import pair_breaches
from tenancy_inventory import api_key, base_url


@pytest.mark.parametrize(("source", "target"), tenant_pairs())
def test_engine_cannot_reach_another_tenants_engine(tenants, source, target):
    source_docker, target_docker = docker_on(tenants[source]), docker_on(tenants[target])
    assert pair_breaches(source_docker, tenants[source], tenants[target], target_docker) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_engine_joins_only_its_internal_network(tenants, name):
    tenant = tenants[name]
    docker = docker_on(tenant)
    internal = docker.network(tenant["names"]["network"])["Internal"]
    assert checks.engine_network(docker.container(tenant["names"]["engine"]), tenant, internal) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_gateway_publishes_only_the_tenant_port(tenants, name):
    tenant = tenants[name]
    assert checks.gateway_network(docker_on(tenant).container(tenant["names"]["gateway"]), tenant) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_gateway_exposes_only_v1_and_health(tenants, inventory, name):
    tenant = tenants[name]
    url, key = base_url(tenant), api_key(inventory, name)
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    assert raw_status(url, "/v1/models", key) == 200
    assert checks.exposed_paths(path_statuses(url, key)) == []


@pytest.mark.parametrize(("source", "target"), tenant_pairs())
def test_foreign_key_gets_401(tenants, inventory, source, target):
    status = raw_status(base_url(tenants[target]), "/v1/models", api_key(inventory, source))
    assert checks.foreign_key_accepted(status, source, target) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_tenant_sees_only_its_own_volume(tenants, name):
    """No container of this tenant mounts another tenant's data directory."""
    tenant = tenants[name]
    docker = docker_on(tenant)
    data_dir = setting(tenant["host"], "tenant_data_dir")
    problems = []
    for role in ("engine", "gateway"):
        problems += checks.foreign_data_mounts(docker.container(tenant["names"][role]), tenant, data_dir)
    assert problems == []
