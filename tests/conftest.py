"""Shared fixtures: a running local Venice emulator per test."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from prefect_venice.emulator import Emulator, EmulatorConfig

#: Jobs take 60-180 emulated seconds; at this scale they finish in roughly 0.2-1 s.
TEST_TIME_SCALE = 0.004
TEST_SEED = 1234

EmulatorFactory = Callable[..., Emulator]


def _test_config(**overrides: Any) -> EmulatorConfig:
    base = EmulatorConfig(time_scale=TEST_TIME_SCALE, seed=TEST_SEED)
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start emulators with `EmulatorConfig` overrides; all stop when the test ends."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> Emulator:
            return stack.enter_context(Emulator(_test_config(**overrides)))

        yield start


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A fresh, seeded emulator whose jobs finish within about a second."""
    return emulator_factory()


@pytest.fixture(scope="session", autouse=True)
def isolated_venice_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the job journal and the pacing accounts of every test out of the real home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_VENICE_HOME", str(tmp_path_factory.mktemp("venice-home")))
        yield
