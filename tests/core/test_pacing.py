"""Pacing to Venice's per-key limits from its own headers: no 429, the allowance used in full."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from prefect_venice import QueueRequest, VeniceClient
from prefect_venice.emulator import Emulator
from prefect_venice.pacing import Pacer

EmulatorFactory = Callable[..., Emulator]
WINDOW = 2.0
LIMIT = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": str(reset),
    }


def test_one_probe_goes_first_then_the_reported_allowance_is_spent() -> None:
    clock = Clock()
    pacer = Pacer(None, clock=clock)

    assert pacer.reserve() == 0.0  # the probe
    assert pacer.reserve() > 0.0  # the others wait for its answer
    pacer.observe(headers(3, 2, clock.now + 10))

    assert [pacer.reserve() for _ in range(2)] == [0.0, 0.0]
    assert pacer.reserve() == pytest.approx(5.0)  # at most 5 s per sleep, then ask again
    clock.now += 10
    assert pacer.reserve() == 0.0  # a new window of 3


def test_an_api_without_rate_limit_headers_is_not_held_back() -> None:
    pacer = Pacer(None, clock=Clock())

    assert pacer.reserve() == 0.0
    pacer.observe({})

    assert [pacer.reserve() for _ in range(50)] == [0.0] * 50


def test_processes_sharing_the_account_file_spend_one_allowance(tmp_path: Path) -> None:
    clock = Clock()
    state = tmp_path / "account.json"
    first, second = Pacer(state, clock=clock), Pacer(state, clock=clock)
    assert first.reserve() == 0.0
    first.observe(headers(4, 3, clock.now + 30))

    granted = [p.reserve() == 0.0 for p in (first, second, first, second, first)]

    assert granted == [True, True, True, False, False]
    assert oct(state.stat().st_mode & 0o777) == "0o600"


def queue_concurrently(emulator: Emulator, calls: int, *, pacing: bool) -> None:
    request = QueueRequest(
        model="wan-2.5-preview-text-to-video", prompt="A kite", duration="5s", aspect_ratio="16:9"
    )
    with VeniceClient(emulator.api_key, base_url=emulator.base_url, pacing=pacing) as client:
        threads = [
            threading.Thread(target=client.queue, args=(request,), kwargs={"validate": False})
            for _ in range(calls)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


@pytest.fixture
def limited(emulator_factory: EmulatorFactory) -> Emulator:
    """Five queue calls per real two-second window, whatever the time scale."""
    return emulator_factory(
        real_time_limits=True, rate_limit_window_seconds=WINDOW, queue_requests_per_window=LIMIT
    )


def test_concurrent_queue_calls_stay_inside_the_limit_without_a_429(limited: Emulator) -> None:
    queue_concurrently(limited, 12, pacing=True)

    log = [e for e in limited.requests() if e["endpoint"] == "queue"]
    # The server's own judgment: twelve answers, not one 429, so twelve calls in all.
    assert [e["status"] for e in log] == [200] * 12
    assert limited.ledger()["calls"]["queue"] == 12
    # Five a window: the twelve needed three of the server's (fixed) windows.
    assert log[-1]["time"] - log[0]["time"] > WINDOW


def test_without_pacing_the_same_calls_run_into_429s(limited: Emulator) -> None:
    queue_concurrently(limited, 12, pacing=False)

    statuses = [e["status"] for e in limited.requests() if e["endpoint"] == "queue"]
    assert 429 in statuses
    assert statuses.count(200) == 12  # the client retried each 429: no job was created


def test_no_call_starts_in_the_last_moments_of_a_window() -> None:
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    assert pacer.reserve() == 0.0
    pacer.observe(headers(10, 9, clock.now + 10))
    clock.now += 10
    assert pacer.reserve() == 0.0  # a new window; its answer tells the windows' length
    pacer.observe(headers(10, 9, clock.now + 10))

    clock.now += 9.8  # 0.2 s before the end of a 10 s window: a call could land in the next
    assert pacer.reserve() == pytest.approx(0.2)
    clock.now += 0.2
    assert pacer.reserve() == 0.0


def test_a_short_window_keeps_at_least_a_tenth_of_a_second_clear_at_its_end() -> None:
    # 5 % of a time-scaled 0.6 s window is 30 ms: less than a busy interpreter may take
    # between taking a call and sending it, which then lands in (and overspends) the next.
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    assert pacer.reserve() == 0.0
    pacer.observe(headers(40, 39, clock.now + 0.6))
    clock.now += 0.6
    assert pacer.reserve() == 0.0
    pacer.observe(headers(40, 39, clock.now + 0.6))

    clock.now += 0.45  # 0.15 s before the end: still open
    assert pacer.reserve() == 0.0
    clock.now += 0.08  # 0.07 s before the end: closed, though 5 % would be 0.03 s
    assert pacer.reserve() == pytest.approx(0.07)


def test_a_late_answer_from_an_ended_window_does_not_reopen_the_allowance() -> None:
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    assert pacer.reserve() == 0.0
    pacer.observe(headers(4, 3, clock.now + 10))  # window one ends at 1010
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]

    clock.now += 10
    assert pacer.reserve() == 0.0  # window two
    pacer.observe(headers(4, 3, clock.now + 10))  # ends at 1020
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # A call of window one, answered only now (a busy machine): its end is in the past.
    pacer.observe(headers(4, 0, 1010.0))

    assert pacer.reserve() == pytest.approx(5.0)  # spent until 1020; not a fresh four
