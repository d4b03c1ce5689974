"""Whether Prometheus has loaded its config since a given moment, read from its own
/metrics. The monitoring role reloads Prometheus with SIGHUP (its lifecycle API is off:
any local user could POST /-/quit to it), which answers nothing; this filter is the wait
on the real condition that follows."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_prometheus_reload
short_description: Did Prometheus load its config after a moment? C(loaded), C(pending) or C(failed)
version_added: "0.1.0"
description:
  - Reads C(prometheus_config_last_reload_success_timestamp_seconds) and
    C(prometheus_config_last_reload_successful) from the text of Prometheus's C(/metrics).
  - C(loaded) when the last successful load is later than the one in O(before) and the last attempt
    succeeded; C(failed) when the last attempt failed (Prometheus keeps running on the
    old config and logs why); C(pending) otherwise (the signal not handled yet).
  - Raises C(AnsibleFilterError) when the text has neither metric (not Prometheus's /metrics).
positional: _input, before
options:
  _input:
    description: The body of C(GET /metrics) now.
    type: str
    required: true
  before:
    description: The body of C(GET /metrics) read before the signal was sent.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Wait until Prometheus has loaded the new config
  ansible.builtin.uri:
    url: "http://127.0.0.1:9090/metrics"
    return_content: true
  register: __after
  until: __after.content | tenancy_prometheus_reload(__before.content) != 'pending'
  retries: 30
  delay: 1
"""

RETURN = r"""
_value:
  description: C(loaded), C(pending) or C(failed).
  type: str
"""

_METRIC = re.compile(
    r"^(prometheus_config_last_reload_success_timestamp_seconds|prometheus_config_last_reload_successful) (\S+)$",
    re.M,
)


def reload_metrics(text: Any) -> tuple[float, bool]:
    """(last successful load time, last attempt succeeded) from a /metrics body."""
    found = dict(_METRIC.findall(text)) if isinstance(text, str) else {}
    if len(found) != 2:
        raise AnsibleFilterError(
            "tenancy_prometheus_reload: no prometheus_config_last_reload_* metrics in the text given "
            f"(starts {str(text)[:80]!r})"
        )
    return float(found["prometheus_config_last_reload_success_timestamp_seconds"]), float(
        found["prometheus_config_last_reload_successful"]
    ) == 1


def tenancy_prometheus_reload(text: Any, before: Any) -> str:
    """``loaded``, ``pending`` or ``failed`` (see DOCUMENTATION)."""
    since, _ = reload_metrics(before)
    loaded_at, succeeded = reload_metrics(text)
    if not succeeded:
        return "failed"
    return "loaded" if loaded_at > since else "pending"


class FilterModule:
    """Prometheus config reloads."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_prometheus_reload": tenancy_prometheus_reload}
