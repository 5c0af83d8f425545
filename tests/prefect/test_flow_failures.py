"""generate_video when things go wrong: budget, API refusals, flaky service, a retried run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import venice_events
from prefect import flow

from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.flows import VideoRequest, generate_video
from prefect_venice.generation import LocalDestination


def text_request(output_dir: Path, **overrides: Any) -> VideoRequest:
    values: dict[str, Any] = {
        "prompt": "A gondola gliding through Venice canals at sunset",
        "aspect_ratio": "16:9",
        "output_dir": str(output_dir),
    }
    values.update(overrides)
    return VideoRequest(**values)


def test_quote_over_budget_fails_before_queueing(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    request = text_request(output_dir, duration="10s", resolution="1080p", max_usd=0.05)

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert "above the budget of $0.05" in (state.message or "")
    assert "nothing was queued" in (state.message or "")
    assert "The quote of $" in (state.message or "")
    ledger = emulator.ledger()
    assert ledger["calls"].get("quote") == 1
    assert ledger["calls"].get("queue", 0) == 0
    assert ledger["charged_usd_total"] == 0
    events = venice_events(f"venice.model.{request.model}", expected=1)
    gate = [e for e in events if e["event"] == "venice.video.budget-exceeded"]
    assert gate and gate[-1]["payload"]["max_usd"] == 0.05


def test_invalid_request_fails_before_any_paid_call(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    request = text_request(output_dir, duration="7s")

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert "5s" in (state.message or "") and "10s" in (state.message or "")
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_flaky_retrieve_and_complete_still_succeed_with_one_queue_call_each(
    emulator_factory: Any, tmp_path: Path
) -> None:
    from prefect_venice.blocks import VeniceCredentials

    flaky = {"retrieve": 0.15, "complete": 0.15}
    emulator = emulator_factory(faults=FaultConfig(rate_500=flaky, rate_503=flaky))
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(
        "flaky", overwrite=True
    )

    results = []
    for index in range(3):
        request = text_request(tmp_path / f"v{index}")
        state = generate_video(request=request, credentials_block="flaky", return_state=True)
        assert state.is_completed(), state.message
        results.append(state.result())

    ledger = emulator.ledger()
    statuses = {**ledger["statuses"]["retrieve"], **ledger["statuses"].get("complete", {})}
    assert {"500", "503"} & set(statuses), "no fault was injected; the test proves nothing"
    assert ledger["calls"]["queue"] == 3
    for result in results:
        assert ledger["jobs"][result.queue_id]["queue_calls"] == 1
        assert Path(result.path).is_file()


@pytest.fixture
def failures(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make the first move of a saved video into place fail; lists the paths it failed."""
    real_place = LocalDestination.place
    failed: list[Path] = []

    def fail_once(self: LocalDestination, staged: Path, queue_id: str) -> Path:
        if not failed:
            failed.append(self.final_path(queue_id))
            raise OSError("disk went away (injected)")
        return real_place(self, staged, queue_id)

    monkeypatch.setattr(LocalDestination, "place", fail_once)
    return failed


def test_retried_flow_run_resumes_the_same_job(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    failures: list[Path],
    prefect_api: Any,
) -> None:
    state = generate_video.with_options(retries=1, retry_delay_seconds=0)(
        request=text_request(output_dir), credentials_block=credentials_block, return_state=True
    )

    assert state.is_completed(), state.message
    result = state.result()
    assert failures == [Path(result.path)], "the injected failure never happened"
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 1
    assert list(ledger["jobs"]) == [result.queue_id]
    assert prefect_api.flow_run(state.state_details.flow_run_id).run_count == 2


@pytest.mark.parametrize(
    ("setup", "status", "expected"),
    [
        ("no-balance", "402", "Add funds"),
        ("bad-key", "401", "Check the API key"),
        ("violation", "422", "Change the prompt"),
    ],
)
def test_final_api_errors_fail_at_once_without_retries(
    emulator: Emulator, output_dir: Path, setup: str, status: str, expected: str
) -> None:
    from prefect_venice.blocks import VeniceCredentials

    api_key = "not-the-key" if setup == "bad-key" else emulator.api_key
    VeniceCredentials(api_key=api_key, base_url=emulator.base_url).save(setup, overwrite=True)
    if setup == "no-balance":
        emulator.set_balance(0.0)
    prompt = "A forbidden scene" if setup == "violation" else "A calm lake"

    state = generate_video(
        request=text_request(output_dir, prompt=prompt), credentials_block=setup, return_state=True
    )

    assert state.is_failed()
    assert expected in (state.message or "")
    ledger = emulator.ledger()
    refusals = sum(counts.get(status, 0) for counts in ledger["statuses"].values())
    assert refusals == 1, ledger["statuses"]
    assert ledger["calls"].get("queue", 0) == (0 if setup == "bad-key" else 1)
    assert ledger["calls"].get("retrieve", 0) == 0
    assert ledger["charged_usd_total"] == 0


@pytest.mark.parametrize(
    ("storage_block", "expected"),
    [
        ("no-slash-here", "<block-type-slug>/<block-name>"),
        ("local-file-system/no-such-block", "no-such-block"),
    ],
)
def test_a_bad_storage_block_fails_before_anything_is_queued(
    emulator: Emulator, credentials_block: str, output_dir: Path, storage_block: str, expected: str
) -> None:
    request = text_request(output_dir, storage_block=storage_block)

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert expected in (state.message or "")
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_a_failure_after_queueing_names_the_paid_job_so_it_can_be_resumed(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_gone(self: LocalDestination, staged: Path, queue_id: str) -> Path:
        raise OSError("disk went away (injected)")

    monkeypatch.setattr(LocalDestination, "place", disk_gone)

    state = generate_video(
        request=text_request(output_dir), credentials_block=credentials_block, return_state=True
    )

    assert state.is_failed()
    (queue_id,) = emulator.ledger()["jobs"]
    assert queue_id in (state.message or "")
    assert "disk went away" in (state.message or "")
    assert "retry this flow run" in (state.message or "").lower()


def test_a_failing_event_emitter_does_not_lose_the_paid_job(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_venice.tasks import events

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("events are down (injected)")

    monkeypatch.setattr(events, "emit_event", broken)

    state = generate_video.with_options(retries=1, retry_delay_seconds=0)(
        request=text_request(output_dir), credentials_block=credentials_block, return_state=True
    )

    assert state.is_completed(), state.message
    assert emulator.ledger()["calls"]["queue"] == 1


def test_retried_parent_flow_resumes_its_subflows_job(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    failures: list[Path],
) -> None:
    # A failed subflow gets a new flow run when its parent is retried (as the daily
    # deployment's flow calls generate_video); the stored queue answer must still be found.
    @flow(retries=1, retry_delay_seconds=0)
    def parent() -> str:
        result = generate_video(
            request=text_request(output_dir), credentials_block=credentials_block
        )
        return result.queue_id

    state = parent(return_state=True)

    assert state.is_completed(), state.message
    assert failures, "the injected failure never happened"
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 1
    assert list(ledger["jobs"]) == [state.result()]


def test_queue_video_task_refuses_a_bad_request_before_paying(
    emulator: Emulator, credentials_block: str
) -> None:
    from prefect_venice.blocks import VeniceCredentials
    from prefect_venice.errors import InvalidRequestError
    from prefect_venice.models import QueueRequest
    from prefect_venice.tasks import queue_video

    @flow
    def composed() -> None:
        # A user's own flow that skips validate_video_request.
        request = QueueRequest(
            model="wan-2.5-preview-text-to-video",
            prompt="A harbour at dawn",
            duration="7s",
            aspect_ratio="16:9",
        )
        credentials = VeniceCredentials.load(credentials_block)
        assert isinstance(credentials, VeniceCredentials)
        queue_video(credentials, request)

    with pytest.raises(InvalidRequestError, match="5s"):
        composed()
    assert emulator.ledger()["calls"].get("queue", 0) == 0
