"""`prefect-venice limits`: one command creates the global rate limits workers share."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from prefect_venice.cli import main


def test_the_limits_command_creates_both_limits_and_prints_the_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ["--queue-name", "cmd-venice-queue", "--retrieve-name", "cmd-venice-retrieve"]

    assert main(["limits", *names]) == 0
    assert main(["limits", *names, "--queue-per-minute", "20"]) == 0  # updates in place

    out = capsys.readouterr().out
    assert "export PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT=cmd-venice-queue" in out
    assert "export PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT=cmd-venice-retrieve" in out
    with get_client(sync_client=True) as client:
        queue = client.read_global_concurrency_limit_by_name("cmd-venice-queue")
        retrieve = client.read_global_concurrency_limit_by_name("cmd-venice-retrieve")
    assert queue.limit == 2
    assert queue.slot_decay_per_second == pytest.approx(20 / 60 * 0.97, abs=1e-3)
    assert retrieve.limit == 12
    assert retrieve.slot_decay_per_second == pytest.approx(120 / 60 * 0.97, abs=1e-3)


def test_a_rate_that_is_no_number_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limits", "--queue-per-minute", "nan"]) == 2
    assert "--queue-per-minute must be a positive number" in capsys.readouterr().err
