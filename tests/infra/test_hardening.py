"""Hardening of every tenant container: no root, read-only rootfs, no capabilities, no
privilege gain, no Docker socket, only the expected host paths, memory and pids limits,
bounded logs."""

from __future__ import annotations

import checks
import pytest
from infra_env import docker_on, expected_mounts, tenant_ids

ROLES = ("engine", "gateway")


@pytest.mark.parametrize("check", sorted(checks.HARDENING))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", tenant_ids())
def test_container_is_hardened(tenants, name, role, check):
    attrs = docker_on(tenants[name]).container(tenants[name]["names"][role])
    assert checks.HARDENING[check](attrs) == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", tenant_ids())
def test_container_mounts_only_its_own_paths(tenants, name, role):
    tenant = tenants[name]
    attrs = docker_on(tenant).container(tenant["names"][role])
    assert checks.only_expected_mounts(attrs, expected_mounts(tenant, role)) == []
