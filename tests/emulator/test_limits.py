"""Per-key rate limits, their headers, and the lockout after many failed requests."""

from __future__ import annotations

import time

import httpx
import pytest
from emulator_support import (
    T2V,
    EmulatorFactory,
    FrozenClock,
    api,
    freeze_clock,
    queue_body,
    ref,
)

from prefect_venice.emulator import Emulator

HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
UNKNOWN_JOB = {"model": T2V, "queue_id": "00000000-0000-4000-8000-000000000000"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    return freeze_clock(monkeypatch)


def test_queue_and_retrieve_carry_rate_limit_headers(emulator: Emulator) -> None:
    with api(emulator) as client:
        queued = client.post("/video/queue", json=queue_body())
        retrieved = client.post("/video/retrieve", json=UNKNOWN_JOB)
    assert queued.headers["x-ratelimit-limit-requests"] == "40"
    assert queued.headers["x-ratelimit-remaining-requests"] == "39"
    assert retrieved.headers["x-ratelimit-limit-requests"] == "120"
    reset = float(queued.headers["x-ratelimit-reset-requests"])
    assert reset > time.time() - 1  # a Unix time, not a delay


def test_remaining_counts_down(emulator: Emulator, clock: FrozenClock) -> None:
    with api(emulator) as client:
        remaining = [
            int(client.post("/video/retrieve", json=UNKNOWN_JOB).headers[HEADERS[1]])
            for _ in range(3)
        ]
    assert remaining == [119, 118, 117]


def test_exceeding_the_queue_limit_is_429(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(queue_requests_per_window=3, rate_limit_window_seconds=1000)
    with api(emulator) as client:
        statuses = [client.post("/video/queue", json=queue_body()).status_code for _ in range(4)]
        refused = client.post("/video/queue", json=queue_body())
    assert statuses == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert float(refused.headers["Retry-After"]) > 0
    assert "Rate limit" in refused.json()["error"]
    # A refused call creates and charges nothing.
    assert len(emulator.ledger()["jobs"]) == 3


def test_the_window_resets(emulator_factory: EmulatorFactory, clock: FrozenClock) -> None:
    # A 10 emulated-second window is 0.04 s at the test time scale.
    emulator = emulator_factory(retrieve_requests_per_window=1, rate_limit_window_seconds=10)
    with api(emulator) as client:
        assert client.post("/video/retrieve", json=UNKNOWN_JOB).status_code == 404
        clock.advance(0.039)
        refused = client.post("/video/retrieve", json=UNKNOWN_JOB)
        assert refused.status_code == 429
        clock.advance(float(refused.headers["Retry-After"]) + 0.001)
        assert client.post("/video/retrieve", json=UNKNOWN_JOB).status_code == 404


def test_rate_limits_can_be_switched_off(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(
        rate_limits_enabled=False, retrieve_requests_per_window=1, lockout_enabled=False
    )
    with api(emulator) as client:
        answers = [client.post("/video/retrieve", json=UNKNOWN_JOB) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [404, 404, 404]
    assert HEADERS[0] not in answers[0].headers


def test_too_many_failures_block_the_key(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(lockout_window_seconds=5000)
    with api(emulator) as client:
        for _ in range(21):
            assert client.post("/video/retrieve", json=UNKNOWN_JOB).status_code == 404
        blocked = client.post("/video/quote", json=queue_body())
    assert blocked.status_code == 429
    assert float(blocked.headers["Retry-After"]) > 0
    assert "blocked" in blocked.json()["error"]


def test_twenty_failures_do_not_block(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(lockout_window_seconds=5000)
    with api(emulator) as client:
        for _ in range(20):
            client.post("/video/retrieve", json=UNKNOWN_JOB)
        assert client.post("/video/quote", json=queue_body()).status_code == 200


def test_the_block_ends(emulator_factory: EmulatorFactory, clock: FrozenClock) -> None:
    emulator = emulator_factory(lockout_failures=2, lockout_window_seconds=5000, lockout_seconds=10)
    with api(emulator) as client:
        for _ in range(3):
            client.post("/video/retrieve", json=UNKNOWN_JOB)
        clock.advance(0.039)  # 10 emulated seconds are 0.04 s at the test time scale
        blocked = client.post("/video/quote", json=queue_body())
        assert blocked.status_code == 429
        clock.advance(float(blocked.headers["Retry-After"]) + 0.001)
        assert client.post("/video/quote", json=queue_body()).status_code == 200


def test_failures_outside_the_window_do_not_add_up(
    emulator_factory: EmulatorFactory, clock: FrozenClock
) -> None:
    # A 10 emulated-second window is 0.04 s at the test time scale.
    emulator = emulator_factory(lockout_failures=2, lockout_window_seconds=10)
    with api(emulator) as client:
        for _ in range(3):
            client.post("/video/retrieve", json=UNKNOWN_JOB)
            clock.advance(0.041)
        assert client.post("/video/quote", json=queue_body()).status_code == 200


def test_requests_without_the_key_do_not_block_it(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(lockout_failures=2, lockout_window_seconds=5000)
    for _ in range(5):
        assert httpx.post(f"{emulator.base_url}/video/quote", json={}).status_code == 401
    with api(emulator) as client:
        assert client.post("/video/quote", json=queue_body()).status_code == 200


def reset_in(response: httpx.Response) -> float:
    """Real seconds from now until the window of this answer resets."""
    return float(response.headers[HEADERS[2]]) - time.time()


def test_real_time_limits_catch_the_41st_queue_call_of_a_real_minute(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(time_scale=0.01, real_time_limits=True)
    with api(emulator) as client:
        answers = [client.post("/video/queue", json=queue_body()) for _ in range(41)]
    assert [answer.status_code for answer in answers] == [200] * 40 + [429]
    assert 50 < reset_in(answers[-1]) <= 60.001
    assert float(answers[-1].headers["Retry-After"]) > 50


def test_real_time_limits_keep_the_retrieve_window_a_real_minute(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(time_scale=0.01, real_time_limits=True)
    with api(emulator) as client:
        retrieved = client.post("/video/retrieve", json=UNKNOWN_JOB)
    assert retrieved.headers[HEADERS[0]] == "120"
    assert 50 < reset_in(retrieved) <= 60.001


def test_without_real_time_limits_the_window_follows_the_time_scale(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(time_scale=0.01)
    with api(emulator) as client:
        queued = client.post("/video/queue", json=queue_body())
    # 60 emulated seconds at a scale of 0.01.
    assert reset_in(queued) <= 0.601


def test_real_time_limits_keep_the_lockout_in_real_seconds(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(time_scale=0.01, real_time_limits=True)
    with api(emulator) as client:
        for _ in range(21):
            assert client.post("/video/retrieve", json=UNKNOWN_JOB).status_code == 404
        blocked = client.post("/video/quote", json=queue_body())
    assert blocked.status_code == 429
    assert 25 < float(blocked.headers["Retry-After"]) <= 30


def first_estimate(emulator: Emulator) -> int:
    """`average_execution_time` of a new job's first retrieve (it is still processing)."""
    with api(emulator) as client:
        job = client.post("/video/queue", json=queue_body()).json()
        answer = client.post("/video/retrieve", json=ref(job)).json()
    assert answer["status"] == "PROCESSING"
    estimate: int = answer["average_execution_time"]
    return estimate


def test_real_time_limits_leave_job_times_scaled(emulator_factory: EmulatorFactory) -> None:
    slow_jobs = {"time_scale": 0.01, "job_duration_factor": 100}
    scaled = first_estimate(emulator_factory(**slow_jobs))
    assert first_estimate(emulator_factory(real_time_limits=True, **slow_jobs)) == scaled
