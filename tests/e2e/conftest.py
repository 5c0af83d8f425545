"""One demo stack for the whole e2e session: server, emulator and serve process, in tmp."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The demo's modules live in deployments/, a folder of scripts rather than a package.
DEPLOYMENTS_DIR = Path(__file__).resolve().parents[2] / "deployments"
if str(DEPLOYMENTS_DIR) not in sys.path:
    sys.path.append(str(DEPLOYMENTS_DIR))

from demo import DemoResult, demo_request, run_on_demand, start_demo_stack  # noqa: E402
from supervisor import REPO_ROOT, Stack, StackConfig, prefect_client_settings, stop_stack  # noqa: E402

#: Seconds between runs of the daily deployment during the tests.
TEST_DAILY_INTERVAL = 10.0
#: The emulator's jobs (60-180 emulated seconds) take well under a second.
TEST_TIME_SCALE = 0.005
#: Screenshots and other things worth looking at after a run (git-ignored).
OUTPUT_DIR = REPO_ROOT / "test-output" / "e2e"


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> StackConfig:
    """Free ports, a private Prefect home under tmp, a fast emulator and a fast schedule."""
    return StackConfig(
        root=tmp_path_factory.mktemp("e2e-stack"),
        time_scale=TEST_TIME_SCALE,
        daily_interval=TEST_DAILY_INTERVAL,
        scheduler_loop_seconds=2,
    )


@pytest.fixture(scope="session")
def demo_stack(stack_config: StackConfig) -> Iterator[Stack]:
    """The stack `make demo` starts, started by the demo's own functions; stopped at the end."""
    stack = start_demo_stack(stack_config)
    try:
        yield stack
    finally:
        stop_stack(stack_config)


@pytest.fixture
def prefect_api(stack_config: StackConfig, demo_stack: Stack) -> Iterator[Stack]:
    """Point this process's Prefect client at the stack for one test."""
    with prefect_client_settings(stack_config, demo_stack):
        yield demo_stack


@pytest.fixture(scope="session")
def on_demand_run(stack_config: StackConfig, demo_stack: Stack) -> tuple[DemoResult, Any]:
    """One run of `generate-video/on-demand` through the API, as the demo makes it."""
    with prefect_client_settings(stack_config, demo_stack):
        return run_on_demand(demo_stack, demo_request(stack_config), timeout=180)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """`test-output/e2e/` under the repository: screenshots land here."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR
