"""Emulated time: scaled job durations, and estimates reported in the client's real time."""

from __future__ import annotations

from typing import Any

from emulator_support import PRIVATE, T2V, EmulatorFactory, api, queue, ref, wait_until_done

from prefect_venice.emulator import Emulator


def first_estimate(emulator: Emulator, **overrides: Any) -> int:
    with api(emulator) as client:
        job = queue(client, **overrides)
        body = client.post("/video/retrieve", json=ref(job)).json()
    assert body["status"] == "PROCESSING"
    estimate: int = body["average_execution_time"]
    return estimate


def test_first_estimate_comes_from_a_prior(emulator: Emulator) -> None:
    # Wan 2.5 takes about 120 emulated seconds (x 0.75-1.35); the test scale is 0.004.
    assert 0.004 * 120_000 * 0.75 <= first_estimate(emulator) <= 0.004 * 120_000 * 1.35


def test_estimates_differ_per_model(emulator: Emulator) -> None:
    # Grok Imagine is about twice as fast as Wan 2.5 in the catalog.
    assert first_estimate(emulator, model=PRIVATE, duration="6s") < first_estimate(emulator)


def test_reported_times_are_real_times(emulator_factory: EmulatorFactory) -> None:
    slow = first_estimate(emulator_factory(time_scale=0.008))
    fast = first_estimate(emulator_factory(time_scale=0.004))
    assert abs(slow - 2 * fast) <= 1


def test_execution_duration_grows_while_processing(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        durations = [
            client.post("/video/retrieve", json=ref(job)).json()["execution_duration"]
            for _ in range(3)
        ]
    assert durations == sorted(durations)


def test_same_seed_gives_the_same_estimates(emulator_factory: EmulatorFactory) -> None:
    assert first_estimate(emulator_factory(seed=5)) == first_estimate(emulator_factory(seed=5))


def test_finished_jobs_feed_the_estimate(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(seed=9)
    before = first_estimate(emulator)
    with api(emulator) as client:
        jobs = [queue(client, model=T2V, duration="10s", resolution="1080p") for _ in range(6)]
        for job in jobs:
            wait_until_done(client, job)
    # Ten-second 1080p jobs take longer than the five-second 720p prior.
    assert first_estimate(emulator) > before
