"""What each host's Prometheus scrapes: the metrics port of every tenant on that host,
labelled with the tenant and the host (roles/monitoring)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils.plan_records import plan_records

DOCUMENTATION = r"""
name: tenancy_scrape_targets
short_description: Prometheus static_configs for the tenants of one host
version_added: "0.1.0"
description:
  - From a plan (C(tenancy_plan) records), one static_config per tenant present on
    C(host) - its gateway's metrics port on C(address) - with the labels C(tenant) and
    C(host), so every series says whose it is.
  - A plan that is not a list of records with C(name), C(host), C(state) and
    C(metrics_port) raises C(AnsibleFilterError).
positional: _input, host, address
options:
  _input:
    description: The plan.
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host whose tenants are wanted.
    type: str
    required: true
  address:
    description:
      - Where the metrics ports are published (C(tenant_metrics_bind_address)).
      - C(0.0.0.0) is scraped on the loopback.
    type: str
    default: 127.0.0.1
"""

EXAMPLES = r"""
- name: The scrape targets of this host
  ansible.builtin.set_fact:
    monitoring_targets: "{{ tenancy_plan | tenancy_scrape_targets(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: Prometheus static_configs, in plan order.
  type: list
  elements: dict
"""


def tenancy_scrape_targets(plan: Any, host: str, address: str = "127.0.0.1") -> list[dict[str, Any]]:
    scrape_address = "127.0.0.1" if address in ("0.0.0.0", "", None) else address
    targets = []
    for record in plan_records(plan, "tenancy_scrape_targets"):
        if record.get("host") != host or record.get("state") != "present":
            continue
        if not isinstance(record.get("metrics_port"), int):
            raise AnsibleFilterError(f"tenancy_scrape_targets: tenant {record['name']!r} has no metrics_port")
        targets.append(
            {
                "targets": [f"{scrape_address}:{record['metrics_port']}"],
                "labels": {"tenant": record["name"], "host": host},
            }
        )
    return targets


class FilterModule:
    """Tenancy scrape target filter."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_scrape_targets": tenancy_scrape_targets}
