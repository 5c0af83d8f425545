"""The PREFECT_INTEGRATIONS_VENICE_POLL_* variables reach the poll policy the tasks use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prefect_venice.tasks import VeniceSettings


def test_poll_variables_build_the_poll_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_MIN_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_MAX_INTERVAL_SECONDS", "7")
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_FIRST_INTERVAL_SECONDS", "2")
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_TARGET_LAG_SECONDS", "1.25")

    policy = VeniceSettings().poll_policy()

    assert (policy.min_interval, policy.max_interval, policy.first_interval) == (0.5, 7.0, 2.0)
    assert policy.target_lag == 1.25


def test_the_target_lag_defaults_to_the_guides_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_INTEGRATIONS_VENICE_POLL_TARGET_LAG_SECONDS", raising=False)

    assert VeniceSettings().poll_policy().target_lag == 2.5


def test_a_target_lag_of_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_TARGET_LAG_SECONDS", "0")

    with pytest.raises(ValidationError, match="poll_target_lag_seconds"):
        VeniceSettings()
