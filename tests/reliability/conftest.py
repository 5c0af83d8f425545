"""Issue 7's reliability suite: off by default, on with VENICE_RELIABILITY=1 (`make reliability`).

Everything the suite claims is a count read from the emulator's ledger or request log.
One Prefect test server serves the whole session; every emulator gets its own API key,
every test its own job journal and output folders, all under one session root, so the
last test (test_reliability_secrets.py) can scan everything the runs left behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_HOME,
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness
from reliability_support import (
    ENABLE_ENV,
    FIGURES_PATH,
    POLL_ENV,
    Figures,
    ReliabilitySession,
    start_emulator_in,
)

from prefect_venice.emulator import Emulator

_HERE = Path(__file__).resolve().parent
_SKIP_REASON = (
    f"the reliability suite (issue 7, several minutes) runs only with {ENABLE_ENV}=1: "
    "use `make reliability`"
)
# Runs last: it scans what every other test of the session left behind.
_LAST = "test_reliability_secrets.py"

_figures = Figures(FIGURES_PATH)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"reliability: issue 7's reliability suite; runs only with {ENABLE_ENV}=1"
    )


def _ours(item: pytest.Item) -> bool:
    return _HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item of the session, not only this folder's.
    enabled = os.environ.get(ENABLE_ENV) == "1"
    skip = pytest.mark.skip(reason=_SKIP_REASON)
    for item in items:
        if _ours(item):
            item.add_marker(pytest.mark.reliability)
            if not enabled:
                item.add_marker(skip)
    last = [item for item in items if _ours(item) and item.path.name == _LAST]
    items[:] = [item for item in items if item not in last] + last


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures.data:
        terminalreporter.write_sep("=", "reliability figures (counts from the emulator's ledger)")
        for line in _figures.lines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(also written to {FIGURES_PATH})")


@pytest.fixture(scope="session")
def figures() -> Figures:
    """The figures of this run, printed at the end and written to test-output/reliability/."""
    return _figures


@pytest.fixture(scope="session")
def reliability(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReliabilitySession]:
    """One Prefect test server, home and result store for the session, and the session's record."""
    root = tmp_path_factory.mktemp("reliability")
    home = root / "prefect-home"
    home.mkdir()
    settings = {
        PREFECT_HOME: home,
        PREFECT_LOCAL_STORAGE_PATH: home / "storage",
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
    }
    with temporary_settings(updates=settings), ExitStack() as stack:
        # The server subprocess imports the prefect_venice collection; from the repository
        # root, the bare prefect_venice/ folder would shadow the installed package.
        previous = os.getcwd()
        os.chdir(home)
        try:
            stack.enter_context(prefect_test_harness(server_startup_timeout=60))
        finally:
            os.chdir(previous)
        url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
        database = Path(url.split(":///", 1)[1])
        session = ReliabilitySession(
            root=root, prefect_home=home, database=database, api_url=str(PREFECT_API_URL.value())
        )
        stack.enter_context(_captured_logs(session.captures / "python-logs.txt"))
        yield session


def _captured_logs(path: Path) -> ExitStack:
    """Write this process's log records (Prefect's, httpx's URLs at DEBUG) to a file to scan."""
    stack = ExitStack()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    levels = {"": logging.INFO, "httpx": logging.INFO}
    names = ["", "prefect", "prefect.flow_runs", "prefect.task_runs", "httpx"]
    for name in names:
        logger = logging.getLogger(name or None)
        logger.addHandler(handler)
        stack.callback(logger.removeHandler, handler)
    for name, level in levels.items():
        logger = logging.getLogger(name or None)
        stack.callback(logger.setLevel, logger.level)
        logger.setLevel(level)
    stack.callback(handler.close)
    return stack


@pytest.fixture(autouse=True)
def reliability_env(
    reliability: ReliabilitySession, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """Fast polling, a job journal and a prefect-venice home per test (all scanned at the end)."""
    journal = reliability.folder("journals", request.node.name)
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR", str(journal))
    # Everything prefect-venice keeps on this machine (pacing accounts, the CLI's journal)
    # stays inside the session, where the secrets scan reads it.
    monkeypatch.setenv("PREFECT_VENICE_HOME", str(reliability.folder("homes", request.node.name)))
    for name, value in POLL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VENICE_API_KEY", raising=False)
    monkeypatch.delenv("VENICE_BASE_URL", raising=False)
    monkeypatch.delenv("VENICE_DOWNLOAD_URL", raising=False)
    return journal


@pytest.fixture
def start_emulator(reliability: ReliabilitySession) -> Iterator[Callable[..., Emulator]]:
    """Start seeded emulators with their own API keys; their links are remembered for the scan."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> Emulator:
            return start_emulator_in(stack, reliability, **overrides)

        yield start
