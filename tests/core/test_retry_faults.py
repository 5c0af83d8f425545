"""Retries under injected faults, and the rule that a paid queue call is never repeated blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from core_support import SleepLog, Venice, VeniceFactory, fast_retry
from test_client_endpoints import public_request

from prefect_venice import (
    AsyncVeniceClient,
    NetworkError,
    OutcomeUnknownError,
    ServerError,
    ServiceUnavailableError,
    VeniceClient,
)
from prefect_venice.emulator import Emulator, FaultConfig


def settled_ledger(emulator: Emulator, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The ledger once done(ledger) holds (calls under injected latency land late)."""
    deadline = time.monotonic() + 5
    ledger = emulator.ledger()
    while not done(ledger) and time.monotonic() < deadline:
        time.sleep(0.02)
        ledger = emulator.ledger()
    time.sleep(0.7)  # let any further (wrongly) repeated call land too
    return emulator.ledger()


async def test_retrieve_survives_frequent_503s(
    venice_factory: VeniceFactory, emulator: Emulator, tmp_path: Path
) -> None:
    venice = venice_factory(emulator, retry={"max_attempts": 8})
    job = await venice.queue(public_request())
    emulator.configure_faults(FaultConfig(rate_503={"retrieve": 0.3}))

    saved = await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert saved.path.exists()
    assert emulator.ledger()["statuses"]["retrieve"]["503"] >= 1


async def test_quote_and_complete_survive_500s(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(public_request())
    await venice.wait_for_video(job, tmp_path / "v.mp4")
    emulator.configure_faults(FaultConfig(rate_500={"quote": 0.5, "complete": 0.5}))

    for _ in range(3):
        assert (await venice.quote(public_request())).usd > 0
    assert await venice.complete(job) is True
    assert emulator.ledger()["statuses"]["quote"].get("500", 0) >= 1


async def test_queue_is_retried_on_500_without_paying_twice(
    venice_factory: VeniceFactory, emulator: Emulator
) -> None:
    venice = venice_factory(emulator, retry={"max_attempts": 10})
    await venice.list_video_models()
    # Seeded: the emulator's first queue draws fail, a later one succeeds.
    emulator.configure_faults(FaultConfig(rate_500={"queue": 0.75}))

    job = await venice.queue(public_request())

    ledger = emulator.ledger()
    assert ledger["statuses"]["queue"]["500"] >= 1
    assert ledger["statuses"]["queue"]["200"] == 1
    assert list(ledger["jobs"]) == [job.queue_id]
    assert ledger["charged_usd_total"] == ledger["jobs"][job.queue_id]["charged_usd"]


async def test_queue_is_not_retried_on_503(venice: Venice, emulator: Emulator) -> None:
    await venice.list_video_models()
    emulator.configure_faults(FaultConfig(rate_503={"queue": 1.0}))

    with pytest.raises(ServiceUnavailableError):
        await venice.queue(public_request())

    assert emulator.ledger()["calls"]["queue"] == 1


async def test_queue_500_exhausted_says_nothing_was_charged(
    venice: Venice, emulator: Emulator
) -> None:
    await venice.list_video_models()
    emulator.configure_faults(FaultConfig(rate_500={"queue": 1.0}))

    with pytest.raises(ServerError, match="nothing was charged"):
        await venice.queue(public_request())

    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 5
    assert ledger["charged_usd_total"] == 0


async def test_queue_dropped_after_the_job_was_created_is_never_resent(
    venice: Venice, emulator: Emulator
) -> None:
    await venice.list_video_models()
    emulator.configure_faults(FaultConfig(queue_drop_after_create_rate=1.0))

    with pytest.raises(OutcomeUnknownError) as caught:
        await venice.queue(public_request())

    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 1
    assert len(ledger["jobs"]) == 1
    assert "dashboard" in str(caught.value)
    assert not caught.value.retryable


async def test_queue_read_timeout_is_an_unknown_outcome_and_never_resent(
    venice_factory: VeniceFactory, emulator: Emulator
) -> None:
    venice = venice_factory(emulator, timeout=httpx.Timeout(5.0, read=0.2))
    await venice.list_video_models()
    emulator.configure_faults(FaultConfig(latency={"queue": 0.6}))

    with pytest.raises(OutcomeUnknownError, match="ReadTimeout"):
        await venice.queue(public_request())

    # The emulator records the call once its injected latency is over.
    ledger = settled_ledger(emulator, lambda ledger: len(ledger["jobs"]) >= 1)
    assert ledger["calls"]["queue"] == 1
    assert len(ledger["jobs"]) == 1


async def test_retrieve_read_timeout_is_retried(
    venice_factory: VeniceFactory, emulator: Emulator, tmp_path: Path
) -> None:
    venice = venice_factory(
        emulator, timeout=httpx.Timeout(5.0, read=0.2), retry={"max_attempts": 3}
    )
    job = await venice.queue(public_request())
    emulator.configure_faults(FaultConfig(latency={"retrieve": 0.6}))

    with pytest.raises(NetworkError, match="after 3 attempts: ReadTimeout"):
        await venice.retrieve(job, tmp_path / "v.mp4")

    ledger = settled_ledger(
        emulator, lambda ledger: ledger["jobs"][job.queue_id]["retrieve_calls"] >= 3
    )
    assert ledger["jobs"][job.queue_id]["retrieve_calls"] == 3


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_queue_connect_error_is_retried_because_nothing_was_sent(flavour: str) -> None:
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if request.url.path.endswith("/models"):
            raise AssertionError("validation is off in this test")
        raise httpx.ConnectError("connection refused", request=request)

    log = SleepLog()
    policy = fast_retry(log, max_attempts=3)
    request = public_request()
    if flavour == "sync":
        client = VeniceClient("k" * 16, transport=httpx.MockTransport(refuse), retry=policy)
        with client, pytest.raises(NetworkError) as caught:
            client.queue(request, validate=False)
    else:
        async with AsyncVeniceClient(
            "k" * 16, transport=httpx.MockTransport(refuse), retry=policy
        ) as ac:
            with pytest.raises(NetworkError) as caught:
                await ac.queue(request, validate=False)

    assert attempts == 3
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert len(log.delays) == 2
