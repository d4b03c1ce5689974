"""tenancy_prometheus_reload: the monitoring role's wait after its SIGHUP reload."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_prometheus_reload import tenancy_prometheus_reload


def metrics(loaded_at: float, succeeded: int) -> str:
    """A /metrics body as Prometheus 2.42 writes it (HELP/TYPE lines, other metrics)."""
    return (
        "# HELP prometheus_config_last_reload_success_timestamp_seconds Timestamp of the last successful ...\n"
        "# TYPE prometheus_config_last_reload_success_timestamp_seconds gauge\n"
        f"prometheus_config_last_reload_success_timestamp_seconds {loaded_at:.15e}\n"
        "# TYPE prometheus_config_last_reload_successful gauge\n"
        f"prometheus_config_last_reload_successful {succeeded}\n"
        "prometheus_ready 1\n"
    )


BEFORE = metrics(1.796587057540846e09, 1)


def test_a_later_successful_load_is_loaded():
    assert tenancy_prometheus_reload(metrics(1.796587060123e09, 1), BEFORE) == "loaded"


def test_the_same_load_is_still_pending():
    assert tenancy_prometheus_reload(BEFORE, BEFORE) == "pending"


def test_a_failed_attempt_is_failed_whatever_the_timestamp():
    """Prometheus keeps the old config and the old success time, and says 0."""
    assert tenancy_prometheus_reload(metrics(1.796587057540846e09, 0), BEFORE) == "failed"


@pytest.mark.parametrize("text", ["", "up 1\n", None, 3])
def test_a_body_without_the_metrics_is_an_error(text):
    with pytest.raises(AnsibleFilterError, match="no prometheus_config_last_reload"):
        tenancy_prometheus_reload(text, BEFORE)
    with pytest.raises(AnsibleFilterError, match="no prometheus_config_last_reload"):
        tenancy_prometheus_reload(BEFORE, text)
