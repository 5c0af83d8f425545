"""Prefect-layer fixtures: one test Prefect server per session, a block aimed at the emulator."""

from __future__ import annotations

import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, TaskRun
from prefect.logging.handlers import APILogHandler
from prefect.settings import (
    PREFECT_HOME,
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.client import VeniceClient
from prefect_venice.emulator import Emulator
from prefect_venice.models import QueuedJob, QueueRequest


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run every Prefect test against one temporary server, home and result store."""
    home = tmp_path_factory.mktemp("prefect-home")
    settings = {
        PREFECT_HOME: home,
        PREFECT_LOCAL_STORAGE_PATH: home / "storage",
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
    }
    with temporary_settings(updates=settings), ExitStack() as stack:
        # The server subprocess imports the prefect_venice collection; started from the
        # repository root, the bare prefect_venice/ folder there would shadow the
        # installed package and its mapped blocks/tasks/flows.
        previous = os.getcwd()
        os.chdir(home)
        try:
            stack.enter_context(prefect_test_harness(server_startup_timeout=60))
        finally:
            os.chdir(previous)
        yield


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Poll the emulator's sub-second jobs every few milliseconds; a job journal per test."""
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_MIN_INTERVAL_SECONDS", "0.01")
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_FIRST_INTERVAL_SECONDS", "0.02")
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_POLL_MAX_INTERVAL_SECONDS", "0.1")
    monkeypatch.delenv("VENICE_API_KEY", raising=False)


@pytest.fixture
def credentials_block(emulator: Emulator) -> str:
    """Save a VeniceCredentials block aimed at the emulator and return its name."""
    name = f"emulator-{uuid.uuid4().hex[:8]}"
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(name)
    return name


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    """A fresh folder for the videos of one test."""
    return tmp_path / "videos"


class PrefectAPI:
    """Reads back what a flow run left in the Prefect API."""

    def flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """Read a flow run back from the Prefect API."""
        with get_client(sync_client=True) as client:
            return client.read_flow_run(flow_run_id)

    def logs(self, flow_run_id: uuid.UUID) -> list[Log]:
        """Every log line the Prefect API stored for a flow run and its task runs."""
        APILogHandler().flush()
        with get_client(sync_client=True) as client:
            return client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                limit=200,
            )

    def artifacts(self, flow_run_id: uuid.UUID) -> list[Artifact]:
        """Every artifact the Prefect API stored for a flow run."""
        with get_client(sync_client=True) as client:
            return client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    def task_runs(self, flow_run_id: uuid.UUID) -> list[TaskRun]:
        """Every task run of a flow run."""
        with get_client(sync_client=True) as client:
            return client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )


@pytest.fixture
def prefect_api() -> PrefectAPI:
    """Read flow runs, logs, artifacts and task runs back from the test server."""
    return PrefectAPI()


@pytest.fixture
def png_image(tmp_path: Path) -> Path:
    """A small, valid 16x16 PNG on disk, for image-to-video requests."""
    width = height = 16
    raw = b"".join(b"\x00" + bytes([200, 120, 40]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "start.png"
    path.write_bytes(png)
    return path


@pytest.fixture
def queued_jobs(monkeypatch: pytest.MonkeyPatch) -> list[QueuedJob]:
    """Every job VeniceClient.queue returns during the test (to learn private links)."""
    jobs: list[QueuedJob] = []
    original = VeniceClient.queue

    def spy(self: VeniceClient, request: QueueRequest, *, validate: bool = True) -> QueuedJob:
        job = original(self, request, validate=validate)
        jobs.append(job)
        return job

    monkeypatch.setattr(VeniceClient, "queue", spy)
    return jobs


def venice_events(
    resource_id: str, expected: int, timeout: float = 15.0, prefix: str = "venice.video."
) -> list[dict[str, Any]]:
    """The events (of `prefix`: venice.video.* by default) about one resource, oldest first.

    The server stores events in the background, so this reads until `expected`
    events are there or `timeout` seconds have passed (then returns what it has).
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            response = client.request(
                "POST",
                "/events/filter",
                json={
                    "filter": {
                        "event": {"prefix": [prefix]},
                        "resource": {"id": [resource_id]},
                    },
                    "limit": 50,
                },
            )
        events: list[dict[str, Any]] = response.json()["events"]
        if len(events) >= expected or time.monotonic() > deadline:
            return sorted(events, key=lambda event: event["occurred"])
        time.sleep(0.2)
