"""The names a tenant's gateway certificate holds (the plan's tls_sans), and the
validation of the tls_names field: what a client may name the endpoint by is in the
certificate, and a name that is neither a DNS name nor an address is refused, naming the
tenant, the field and the value, before anything changes."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_plan import tenancy_plan


def plan_one(hosts=None, **fields):
    return tenancy_plan([{"name": "a", "port": 30001, **fields}], {}, hosts or {"localhost": {}})[0]


def test_a_loopback_tenant_is_named_by_its_address_and_localhost():
    record = plan_one(bind_address="127.0.0.1")
    assert record["endpoint"] == "https://127.0.0.1:30001/v1"
    assert record["tls_sans"] == ["IP:127.0.0.1", "DNS:localhost"]


def test_a_tenant_on_all_addresses_is_named_by_the_hosts_address_and_name():
    record = plan_one({"gpu1.example.com": {"tenancy_address": "10.0.0.5"}})
    assert record["endpoint"] == "https://10.0.0.5:30001/v1"
    assert record["tls_sans"] == ["IP:10.0.0.5", "DNS:gpu1.example.com"]


def test_tls_names_are_added_once_each_in_order():
    record = plan_one(
        {"h1": {"tenancy_address": "10.0.0.5"}}, tls_names=["api.a.example", "*.a.example", "10.0.0.5", "2001:db8::1"]
    )
    assert record["tls_sans"] == ["IP:10.0.0.5", "DNS:h1", "DNS:api.a.example", "DNS:*.a.example", "IP:2001:db8::1"]
    assert record["tls_names"] == ["api.a.example", "*.a.example", "10.0.0.5", "2001:db8::1"]


def test_one_name_may_be_given_as_a_string():
    assert plan_one(tls_names="api.a.example")["tls_names"] == ["api.a.example"]


def test_an_inventory_name_that_is_no_dns_name_is_left_out():
    assert plan_one({"my_host": {"tenancy_address": "10.0.0.5"}})["tls_sans"] == ["IP:10.0.0.5"]


@pytest.mark.parametrize(
    "bad", ["-a.example", "a..example", "a_b.example", "*", "*.com", "a.*.example", "10.0.0.256", "x" * 64 + ".example"]
)
def test_a_name_no_certificate_can_hold_is_refused_by_name(bad):
    with pytest.raises(AnsibleFilterError) as error:
        plan_one(tls_names=["ok.example", bad])
    message = str(error.value)
    assert "tenant 'a'" in message and "'tls_names'" in message and repr(bad) in message


@pytest.mark.parametrize("bad", [{"a": 1}, 7, [None]])
def test_tls_names_must_be_a_list_of_names(bad):
    with pytest.raises(AnsibleFilterError, match=r"tenant 'a': field 'tls_names'"):
        plan_one(tls_names=bad)
