"""`prefect-venice recovery`: the automations that recover the runs of a dead worker."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from prefect_venice.cli import main
from prefect_venice.tasks.recovery import CRASH_ZOMBIES, RETRY_CRASHED


def _named(name: str) -> list[object]:
    with get_client(sync_client=True) as client:
        return list(client.read_automations_by_name(name))


def test_recovery_creates_the_zombie_and_retry_automations_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["recovery"]) == 0
    assert main(["recovery", "--silence", "120"]) == 0  # replaces, never duplicates

    out = capsys.readouterr().out
    assert f"automation: {CRASH_ZOMBIES}" in out
    assert "PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30" in out
    (zombies,) = _named(CRASH_ZOMBIES)
    (retry,) = _named(RETRY_CRASHED)
    trigger = zombies.trigger  # type: ignore[attr-defined]
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert "prefect.flow-run.Completed" in trigger.expect
    assert trigger.within.total_seconds() == 120
    assert trigger.for_each == {"prefect.resource.id"}
    # Only runs tagged venice are watched.
    related = trigger.match_related
    related = related[0] if isinstance(related, list) else related
    assert related["prefect.resource.id"] == ["prefect.tag.venice"]
    (crash,) = zombies.actions  # type: ignore[attr-defined]
    assert crash.state == StateType.CRASHED
    (again,) = retry.actions  # type: ignore[attr-defined]
    assert (again.state, again.name) == (StateType.SCHEDULED, "AwaitingRetry")
    assert retry.trigger.expect == {"prefect.flow-run.Crashed"}  # type: ignore[attr-defined]
    # Only runs that started, and fewer than three times: never a crash loop.
    assert retry.trigger.match["prefect.run-count"] == ["1", "2"]  # type: ignore[attr-defined]
    # ...and only those the heartbeat automation marked, by the message it gives them.
    assert retry.trigger.match["prefect.state-message"] == [  # type: ignore[attr-defined]
        "No heartbeat for*"
    ]
    assert crash.message.startswith("No heartbeat for 120 s")


def test_no_retry_removes_the_retry_automation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recovery"]) == 0
    assert main(["recovery", "--no-retry"]) == 0

    assert len(_named(CRASH_ZOMBIES)) == 1
    assert _named(RETRY_CRASHED) == []


def test_a_silence_shorter_than_two_heartbeats_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["recovery", "--silence", "10"]) == 2
    assert "--silence must be at least 30 seconds" in capsys.readouterr().err


def test_max_attempts_bounds_the_retries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recovery", "--max-attempts", "5"]) == 0
    (retry,) = _named(RETRY_CRASHED)
    assert retry.trigger.match["prefect.run-count"] == ["1", "2", "3", "4"]  # type: ignore[attr-defined]
    assert main(["recovery", "--max-attempts", "1"]) == 2
    assert "--max-attempts must be at least 2" in capsys.readouterr().err
