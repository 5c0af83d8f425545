"""Helpers for core tests: one awaitable surface over both clients, recorded sleeps."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

from prefect_venice import AsyncVeniceClient, PollPolicy, RetryPolicy, VeniceClient


class FrozenClock:
    """The emulator service's `time` module, with a monotonic clock that moves only when told.

    Installed by the `clock` fixture: jobs then finish by the test's steps, not by how fast
    the machine answers. `time()` stays the real wall clock (request log, headers).
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SleepLog:
    """Records every backoff/poll delay and sleeps a capped real time (jobs must progress)."""

    def __init__(self, cap: float = 0.02) -> None:
        self.delays: list[float] = []
        self.cap = cap

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(min(seconds, self.cap))

    async def async_sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(min(seconds, self.cap))


def fast_retry(log: SleepLog, **overrides: Any) -> RetryPolicy:
    options: dict[str, Any] = {
        "base_delay": 0.001,
        "max_delay": 0.01,
        "sleep": log.sleep,
        "async_sleep": log.async_sleep,
    }
    options.update(overrides)
    return RetryPolicy(**options)


FAST_POLL = PollPolicy(min_interval=0.01, max_interval=0.05, first_interval=0.01)


class Venice:
    """One test-facing surface over either client: every method is awaited.

    The sync client's methods run inline (the emulator serves from its own
    threads), so one async test body covers both twins.
    """

    def __init__(self, client: VeniceClient | AsyncVeniceClient, sleeps: SleepLog) -> None:
        self.client = client
        self.sleeps = sleeps
        self.is_async = isinstance(client, AsyncVeniceClient)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return call

    async def close(self) -> None:
        if isinstance(self.client, AsyncVeniceClient):
            await self.client.aclose()
        else:
            self.client.close()


VeniceFactory = Callable[..., Venice]
