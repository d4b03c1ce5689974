"""Isolation between tenants: networks, the gateway's allowlist, keys, data volumes, and
what the front door (the gateway) may spend: its tenant's cores, a bounded log."""

from __future__ import annotations

import checks
import pytest
import requests
from gateway_probe import path_answers, raw_status
from infra_env import (
    docker_on,
    flood_refused,
    gateway_config_state,
    lifecycle_statuses,
    local_user_view,
    model_exposure,
    monitoring_hosts,
    retired_key_statuses,
    setting,
    tenant_ids,
    tenant_pairs,
    wire_view,
)
from isolation import pair_breaches
from tenancy_inventory import api_key, base_url


@pytest.mark.parametrize(("source", "target"), tenant_pairs())
def test_engine_cannot_reach_another_tenants_engine(tenants, source, target):
    source_docker, target_docker = docker_on(tenants[source]), docker_on(tenants[target])
    assert pair_breaches(source_docker, tenants[source], tenants[target], target_docker) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_local_user_cannot_reach_any_engine(tenants, name):
    """An unprivileged user on the engine's host (uid 65534, no groups) has no route into
    the tenant's internal network and gets no answer from the engine without a key."""
    assert local_user_view(tenants[name]) == []


@pytest.mark.parametrize("host", monitoring_hosts())
def test_local_user_cannot_stop_prometheus(host):
    """Prometheus meters every tenant of its host: an unprivileged local user's POST
    /-/quit or /-/reload is refused (no --web.enable-lifecycle), and it still runs."""
    address = setting(host, "monitoring_listen_address")
    assert checks.prometheus_stoppable(host, lifecycle_statuses(host, address)) == []
    # Again: a Prometheus that had quit on the first /-/quit would not answer now.
    assert checks.prometheus_stoppable(host, lifecycle_statuses(host, address)) == []


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
    assert checks.exposed_paths(path_answers(url, key)) == []


@pytest.mark.parametrize(("source", "target"), tenant_pairs())
def test_foreign_key_gets_401(tenants, inventory, source, target):
    status = raw_status(base_url(tenants[target]), "/v1/models", api_key(inventory, source))
    assert checks.foreign_key_accepted(status, source, target) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_retired_key_is_refused_at_its_grace_time(tenants, name):
    """A key rotated with a grace period stops at its expiry by the gateway's own clock,
    with no playbook run: throwaway retired keys in the live map, one expired, one
    expiring while the test waits, one with an hour left (the control)."""
    assert checks.retired_key_outlives_grace(name, retired_key_statuses(tenants[name])) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_tenant_port_speaks_only_verified_tls(tenants, name):
    """From this machine (over the network to a remote host), as a sniffer's victim or a
    careless client would: a plain HTTP request to the tenant's port gets no HTTP answer,
    and a handshake that trusts only the bundle CA and checks the name succeeds."""
    assert checks.wire_exposure(name, wire_view(tenants[name])) == []


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


@pytest.mark.parametrize("name", tenant_ids())
def test_engine_sees_only_its_own_model(tenants, name):
    """The engine mounts its own model's directory of the host's model store and nothing
    above it, and no other tenant's model path exists inside it (a model both share is
    one copy, and not another tenant's)."""
    assert model_exposure(tenants[name]) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_gateway_runs_on_its_tenants_cores(tenants, name):
    """What a flood on this tenant's port costs its gateway stays on this tenant's cores."""
    tenant = tenants[name]
    assert checks.gateway_cpuset(docker_on(tenant).container(tenant["names"]["gateway"]), tenant) == []


@pytest.mark.parametrize("name", tenant_ids())
def test_gateway_runs_the_config_it_was_given(tenants, name):
    """The running HAProxy loaded the config file the role wrote (none written and left unloaded)."""
    tenant = tenants[name]
    assert checks.config_loaded(gateway_config_state(tenant), tenant["names"]["gateway"]) == []


def test_refused_requests_leave_a_bounded_log(tenants):
    """A flood of bad-key requests costs Docker's log pipeline at most the gateway's cap
    of lines a second (tenant_gateway_log_refused_rate), not a line per request."""
    tenant = next(iter(tenants.values()))
    lines, refused, seconds = flood_refused(tenant)
    cap = setting(tenant["host"], "tenant_gateway_log_refused_rate")
    assert refused == 2000
    assert checks.refused_log_lines(lines, refused, seconds, cap) == []
