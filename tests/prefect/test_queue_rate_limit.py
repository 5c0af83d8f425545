"""PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT: every /video/queue request takes a slot first."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import rate_limit as real_rate_limit

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.flows import VideoRequest, generate_video, generate_videos


def create_limit() -> str:
    name = f"venice-queue-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=50, slot_decay_per_second=50.0)
        )
    return name


@pytest.fixture
def slots_taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the rate limits the tasks took a slot of, in order."""
    taken: list[str] = []

    def counting(names: str, **options: Any) -> None:
        real_rate_limit(names, **options)
        taken.append(names)

    monkeypatch.setattr("prefect_venice.tasks.pacing.rate_limit", counting)
    return taken


def queue_requests_seen(emulator: Emulator) -> int:
    """Every /video/queue request that reached the emulator, whatever it answered."""
    return sum(emulator.ledger()["statuses"].get("queue", {}).values())


def test_every_queue_call_of_a_batch_takes_a_slot(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    slots_taken: list[str],
) -> None:
    name = create_limit()
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT", name)
    requests = [
        VideoRequest(prompt="A kite over dunes", aspect_ratio="16:9", output_dir=str(output_dir))
        for _ in range(3)
    ]

    results = generate_videos(requests=requests, max_usd=5.0, credentials_block=credentials_block)

    assert len(results) == 3
    assert emulator.ledger()["calls"]["queue"] == 3
    assert slots_taken == [name] * 3, "only queue calls are paced when only queue is set"


def test_queue_calls_the_client_retries_take_a_slot_each(
    emulator_factory: Any,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    slots_taken: list[str],
) -> None:
    # A queue 500 means no job was created: the client retries it, and that retry is
    # one more request against Venice's 40 a minute. The draws are seeded: at 0.8 some
    # attempts fail and one succeeds within the client's five.
    emulator = emulator_factory(faults=FaultConfig(rate_500={"queue": 0.8}))
    block = f"queue-500-{uuid.uuid4().hex[:6]}"
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(block)
    name = create_limit()
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT", name)
    request = VideoRequest(prompt="A calm lake", aspect_ratio="16:9", output_dir=str(output_dir))

    state = generate_video(request=request, credentials_block=block, return_state=True)

    assert state.is_completed(), state.message
    statuses = emulator.ledger()["statuses"]["queue"]
    assert statuses.get("500", 0) >= 1, "no 500 was injected; the test proves nothing"
    assert statuses.get("200") == 1
    assert slots_taken.count(name) == queue_requests_seen(emulator)


def test_a_missing_queue_limit_fails_before_anything_is_queued(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT", "no-such-queue-limit")
    request = VideoRequest(prompt="A calm lake", aspect_ratio="16:9", output_dir=str(output_dir))

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    assert "no-such-queue-limit" in (state.message or "")
    assert emulator.ledger()["calls"].get("queue", 0) == 0
    assert emulator.ledger()["charged_usd_total"] == 0
