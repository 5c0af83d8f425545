"""A wait ends at its deadline or at a final error, never at one transient failure."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from mock_support import MP4, Handler, mock_venice

from prefect_venice import (
    NetworkError,
    NotFoundError,
    PollPolicy,
    Processing,
    QueuedJob,
    RetryPolicy,
    ServiceUnavailableError,
    WaitTimeoutError,
)
from prefect_venice.errors import AuthenticationError, VeniceError
from prefect_venice.polling import WaitClock

JOB = QueuedJob(model="wan-2.5-preview-text-to-video", queue_id="job-transient")
PROCESSING = {"status": "PROCESSING", "average_execution_time": 1000, "execution_duration": 10}
FLAVOURS = pytest.mark.parametrize("flavour", ["sync", "async"])


def retrieve_script(*answers: int | str | type[httpx.TransportError]) -> tuple[list[int], Handler]:
    """A retrieve handler playing answers in order (the last repeats): a status, 'processing',
    'mp4' or an httpx exception class."""
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/video/retrieve")
        answer = answers[min(calls[0], len(answers) - 1)]
        calls[0] += 1
        if answer == "processing":
            return httpx.Response(200, json=PROCESSING)
        if answer == "mp4":
            return httpx.Response(200, content=MP4, headers={"Content-Type": "video/mp4"})
        if isinstance(answer, int):
            body = {"error": f"status {answer} from the test"}
            return httpx.Response(answer, content=json.dumps(body).encode())
        assert isinstance(answer, type)
        raise answer("injected", request=request)

    return calls, handler


@FLAVOURS
async def test_503s_beyond_the_clients_retries_do_not_end_the_wait(
    flavour: str, tmp_path: Path
) -> None:
    # Seven 503s: more than one retrieve call's five attempts.
    calls, handler = retrieve_script(*([503] * 7), "processing", "mp4")
    venice = mock_venice(flavour, handler)

    saved = await venice.wait_for_video(JOB, tmp_path / "v.mp4", max_wait_seconds=60)

    assert saved.size_bytes == len(MP4)
    assert calls[0] == 9
    await venice.close()


@FLAVOURS
async def test_dropped_connections_and_429s_do_not_end_the_wait(
    flavour: str, tmp_path: Path
) -> None:
    calls, handler = retrieve_script(*([httpx.ConnectError] * 5), *([429] * 5), "processing", "mp4")
    venice = mock_venice(flavour, handler)

    saved = await venice.wait_for_video(JOB, tmp_path / "v.mp4", max_wait_seconds=60)

    assert saved.path.read_bytes() == MP4
    assert calls[0] == 12
    await venice.close()


@FLAVOURS
async def test_persistent_503s_end_the_wait_at_its_deadline_naming_the_error(
    flavour: str, tmp_path: Path
) -> None:
    calls, handler = retrieve_script(503)
    venice = mock_venice(flavour, handler)

    with pytest.raises(WaitTimeoutError) as caught:
        await venice.wait_for_video(JOB, tmp_path / "v.mp4", max_wait_seconds=0.3)

    text = str(caught.value)
    assert JOB.queue_id in text
    assert "the last poll failed: Venice answered 503 to POST /video/retrieve" in text
    assert caught.value.queue_id == JOB.queue_id
    assert isinstance(caught.value.__cause__, ServiceUnavailableError)
    assert calls[0] > 5  # more than one retrieve call's own attempts
    # Every pause between polls stayed within the poll policy's cap.
    assert max(venice.sleeps.delays) <= 0.05
    assert not (tmp_path / "v.mp4").exists()
    await venice.close()


@FLAVOURS
async def test_a_network_failure_that_persists_is_named_in_the_timeout(
    flavour: str, tmp_path: Path
) -> None:
    _, handler = retrieve_script(httpx.ConnectError)
    venice = mock_venice(flavour, handler)

    with pytest.raises(WaitTimeoutError, match="ConnectError") as caught:
        await venice.wait_for_video(JOB, tmp_path / "v.mp4", max_wait_seconds=0.2)

    cause = caught.value.__cause__
    assert isinstance(cause, NetworkError)
    # No httpx error (which holds the request, key included) anywhere in the chain.
    assert cause.__cause__ is None and cause.__context__ is None
    await venice.close()


@FLAVOURS
@pytest.mark.parametrize(("status", "error"), [(404, NotFoundError), (401, AuthenticationError)])
async def test_a_final_error_still_ends_the_wait_at_once(
    flavour: str, status: int, error: type[VeniceError], tmp_path: Path
) -> None:
    calls, handler = retrieve_script("processing", status)
    venice = mock_venice(flavour, handler)

    with pytest.raises(error):
        await venice.wait_for_video(JOB, tmp_path / "v.mp4", max_wait_seconds=60)

    assert calls[0] == 2
    await venice.close()


# WaitClock.after_transient_error, on its own ---------------------------------------------


def clock_at(now: list[float]) -> WaitClock:
    return WaitClock(
        "job-1",
        max_wait_seconds=10,
        policy=PollPolicy(min_interval=1, max_interval=4, jitter=0),
        on_progress=None,
        clock=lambda: now[0],
        retry=RetryPolicy(base_delay=1.0, max_delay=100.0),
    )


def test_transient_errors_back_off_within_the_poll_interval_cap() -> None:
    now = [0.0]
    clock = clock_at(now)
    delays = [clock.after_transient_error(ServiceUnavailableError("busy")) for _ in range(50)]
    assert all(1 <= d <= 4 for d in delays)
    assert clock.failed_polls == 50 and clock.failures_in_a_row == 50
    status = Processing(average_execution_time_ms=100_000, execution_duration_ms=0)
    clock.after_processing(status)
    assert clock.failures_in_a_row == 0 and clock.failed_polls == 50


def test_the_last_pause_ends_at_the_deadline() -> None:
    now = [9.5]
    clock = clock_at(now)
    clock.started = 0.0
    assert clock.after_transient_error(ServiceUnavailableError("busy")) <= 0.5


def test_a_transient_error_past_the_deadline_is_a_timeout_naming_it() -> None:
    now = [0.0]
    clock = clock_at(now)
    now[0] = 10.5
    busy = ServiceUnavailableError("Venice answered 503 to POST /video/retrieve.")
    with pytest.raises(WaitTimeoutError, match=r"job-1 was not ready after 10\.5 s") as caught:
        clock.after_transient_error(busy)
    assert "the last poll failed: Venice answered 503" in str(caught.value)
    assert caught.value.__cause__ is busy
    assert clock.last_error is busy


def test_a_final_error_is_raised_unchanged() -> None:
    clock = clock_at([0.0])
    gone = NotFoundError("no such job")
    with pytest.raises(NotFoundError) as caught:
        clock.after_transient_error(gone)
    assert caught.value is gone
    assert clock.failed_polls == 0


def test_hours_of_failures_do_not_overflow_the_backoff() -> None:
    clock = clock_at([0.0])
    clock.max_wait_seconds = float("inf")
    for _ in range(2000):
        assert clock.after_transient_error(ServiceUnavailableError("busy")) <= 4
