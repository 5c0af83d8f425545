"""The tasks compose into users' own flows, sync and async alike."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from prefect import flow

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.emulator import Emulator
from prefect_venice.models import QueueRequest
from prefect_venice.tasks import (
    VideoResult,
    complete_video,
    download_video,
    queue_video,
    quote_video,
    wait_for_video,
)

REQUEST = QueueRequest(
    model="wan-2.5-preview-text-to-video",
    prompt="Fog rolling over a harbour",
    duration="5s",
    aspect_ratio="16:9",
)


@flow
def sync_pipeline(credentials_block: str, destination: str) -> VideoResult:
    credentials = VeniceCredentials.load(credentials_block)
    assert isinstance(credentials, VeniceCredentials)
    quote_video(credentials, REQUEST)
    job = queue_video(credentials, REQUEST)
    ready = wait_for_video(credentials, job)
    result = download_video(credentials, job, ready, destination=destination)
    complete_video(credentials, job)
    return result


@flow
async def async_pipeline(credentials_block: str, destination: str) -> VideoResult:
    credentials = await VeniceCredentials.aload(credentials_block)
    quote_video(credentials, REQUEST)
    job = queue_video(credentials, REQUEST)
    # .submit() runs the blocking poll on the task runner's threads, so the event
    # loop stays free for other work while the video renders.
    ready = wait_for_video.submit(credentials, job).result()
    result = download_video(credentials, job, ready, destination=destination)
    complete_video(credentials, job)
    return result


def test_tasks_run_in_a_sync_flow(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    result = sync_pipeline(credentials_block, str(output_dir))

    assert Path(result.path).stat().st_size == result.size_bytes
    assert emulator.ledger()["jobs"][result.queue_id]["media_deleted"] is True


async def test_tasks_run_in_an_async_flow(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    result = await async_pipeline(credentials_block, str(output_dir))

    assert await asyncio.to_thread(os.path.getsize, result.path) == result.size_bytes
    assert emulator.ledger()["calls"]["queue"] == 1


def test_download_without_a_wait_asks_venice_once(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    @flow
    def resume(destination: str) -> VideoResult:
        credentials = VeniceCredentials.load(credentials_block)
        assert isinstance(credentials, VeniceCredentials)
        job = queue_video(credentials, REQUEST)
        wait_for_video(credentials, job)
        return download_video(credentials, job, destination=destination)

    result = resume(str(output_dir))

    assert Path(result.path).is_file()
    assert result.source == "retrieve"
