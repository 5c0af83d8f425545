"""Fixtures for the core client: sync and async clients against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from core_support import FAST_POLL, FrozenClock, SleepLog, Venice, VeniceFactory, fast_retry

from prefect_venice import AsyncVeniceClient, VeniceClient
from prefect_venice.emulator import Emulator
from prefect_venice.emulator import service as emulator_service


@pytest.fixture(params=["sync", "async"])
async def venice_factory(request: pytest.FixtureRequest) -> AsyncIterator[VeniceFactory]:
    """Build sync or async clients (per the param) pointed at an emulator."""
    made: list[Venice] = []
    flavour = request.param

    def make(emu: Emulator, *, api_key: str | None = None, **overrides: Any) -> Venice:
        sleeps = SleepLog()
        retry_overrides = overrides.pop("retry", {})
        options: dict[str, Any] = {
            "base_url": emu.base_url,
            "retry": fast_retry(sleeps, **retry_overrides),
            "poll": FAST_POLL,
            "timeout": 5.0,
        }
        options.update(overrides)
        cls = AsyncVeniceClient if flavour == "async" else VeniceClient
        venice = Venice(cls(api_key or emu.api_key, **options), sleeps)
        made.append(venice)
        return venice

    yield make
    for venice in made:
        await venice.close()


@pytest.fixture
def venice(venice_factory: VeniceFactory, emulator: Emulator) -> Venice:
    """A client of either flavour on the default test emulator."""
    return venice_factory(emulator)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Freeze the emulator's job clock: jobs stay PROCESSING until the test advances it."""
    frozen = FrozenClock()
    monkeypatch.setattr(emulator_service, "time", frozen)
    return frozen
