"""Emulated time: scaled job durations, and estimates reported in the client's real time.

The emulator's clock is frozen (`freeze_clock`): a new job is certainly still processing
at its first retrieve, and it finishes only when the test moves the clock on.
"""

from __future__ import annotations

from typing import Any

import pytest
from emulator_support import (
    PRIVATE,
    T2V,
    EmulatorFactory,
    FrozenClock,
    api,
    freeze_clock,
    queue,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    return freeze_clock(monkeypatch)


def first_estimate(emulator: Emulator, **overrides: Any) -> int:
    with api(emulator) as client:
        job = queue(client, **overrides)
        body = client.post("/video/retrieve", json=ref(job)).json()
    assert body["status"] == "PROCESSING"
    estimate: int = body["average_execution_time"]
    return estimate


def test_first_estimate_comes_from_a_prior(emulator: Emulator, clock: FrozenClock) -> None:
    # Wan 2.5 takes about 120 emulated seconds (x 0.75-1.35); the test scale is 0.004.
    assert 0.004 * 120_000 * 0.75 <= first_estimate(emulator) <= 0.004 * 120_000 * 1.35


def test_estimates_differ_per_model(emulator: Emulator, clock: FrozenClock) -> None:
    # Grok Imagine is about twice as fast as Wan 2.5 in the catalog.
    assert first_estimate(emulator, model=PRIVATE, duration="6s") < first_estimate(emulator)


def test_reported_times_are_real_times(
    emulator_factory: EmulatorFactory, clock: FrozenClock
) -> None:
    slow = first_estimate(emulator_factory(time_scale=0.008))
    fast = first_estimate(emulator_factory(time_scale=0.004))
    assert abs(slow - 2 * fast) <= 1


def test_execution_duration_grows_while_processing(emulator: Emulator, clock: FrozenClock) -> None:
    answers = []
    with api(emulator) as client:
        job = queue(client)
        for _ in range(3):
            answers.append(client.post("/video/retrieve", json=ref(job)).json())
            # 50 ms of real time: 12.5 emulated seconds, far from the job's 60 or more.
            clock.advance(0.05)
    assert [answer["status"] for answer in answers] == ["PROCESSING"] * 3
    assert [answer["execution_duration"] for answer in answers] == [0, 50, 100]


def test_same_seed_gives_the_same_estimates(
    emulator_factory: EmulatorFactory, clock: FrozenClock
) -> None:
    assert first_estimate(emulator_factory(seed=5)) == first_estimate(emulator_factory(seed=5))


def test_finished_jobs_feed_the_estimate(
    emulator_factory: EmulatorFactory, clock: FrozenClock
) -> None:
    emulator = emulator_factory(seed=9)
    before = first_estimate(emulator)
    with api(emulator) as client:
        jobs = [queue(client, model=T2V, duration="10s", resolution="1080p") for _ in range(6)]
        # Past the longest run any catalog job can take at the test scale (well under 10 s).
        clock.advance(10)
        for job in jobs:
            assert wait_until_done(client, job).headers["content-type"] == "video/mp4"
    # Ten-second 1080p jobs take longer than the five-second 720p prior.
    assert first_estimate(emulator) > before
