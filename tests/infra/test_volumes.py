"""Data volumes: one private directory per tenant; LUKS active where encryption is on,
and the 'NOT ENCRYPTED' marking where it is off."""

from __future__ import annotations

import checks
import pytest
from infra_env import (
    data_dir,
    infra_host,
    luks_problems,
    neighbour_users,
    ownership_view,
    playbook_output,
    setting,
    tenant_ids,
)


@pytest.fixture(scope="module")
def listing() -> str:
    return playbook_output("playbooks/tenants-list.yml")


@pytest.mark.parametrize("name", tenant_ids())
def test_data_dir_is_private(tenants, name):
    tenant = tenants[name]
    directory = infra_host(tenant["host"]).file(data_dir(tenant))
    assert directory.is_directory
    owner = f"{directory.uid}:{directory.gid}"
    want = f"{tenant['uid']}:{tenant['uid']}"
    assert checks.private_dir(directory.mode, owner, directory.path, want) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_tenant_files_belong_to_its_own_uid(tenants, name):
    """The engine runs as the tenant's own uid, which no host account holds and no other
    tenant of the host shares (MPS GPU-mates aside), and every file of its volume is
    that uid's: an engine that escapes its mount namespace finds no neighbour's files
    owned by its own uid."""
    tenant = tenants[name]
    assert checks.tenant_ownership(tenant, ownership_view(tenant), neighbour_users(tenants, tenant)) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_volume_encryption_is_what_the_inventory_says(tenants, listing, name):
    tenant = tenants[name]
    encrypted = bool(setting(tenant["host"], "tenant_volume_encryption"))
    assert checks.volume_marking(listing, name, encrypted) == []
    if encrypted:
        assert luks_problems(tenant) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_engine_sees_only_its_encrypted_volume(tenants, name):
    """Where encryption is on, the engine's /data is the tenant's LUKS mapping (a bare
    directory under an unmounted mount point would take plaintext)."""
    tenant = tenants[name]
    if not setting(tenant["host"], "tenant_volume_encryption"):
        pytest.skip("tenant_volume_encryption is false on this host: there is no volume to be on")
    mountinfo = infra_host(tenant["host"]).check_output(
        "docker exec %s cat /proc/self/mountinfo", tenant["names"]["engine"]
    )
    assert checks.engine_data_on_volume(mountinfo, tenant["names"]["volume"]) == []
