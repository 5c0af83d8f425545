"""Videos are streamed to disk in chunks, checked, and never left half-written."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from core_support import VeniceFactory
from test_client_endpoints import private_request, public_request

from prefect_venice import NetworkError, WaitTimeoutError
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.errors import LinkExhaustedError

VIDEO_BYTES = 64 * 1024 * 1024  # 1000x the 64 KiB chunk size


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".part")]


async def test_a_large_video_is_saved_without_holding_it_in_memory(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=VIDEO_BYTES)  # type: ignore[operator]
    venice = venice_factory(emu, timeout=30.0)
    job = await venice.queue(public_request())
    destination = tmp_path / "big.mp4"

    tracemalloc.start()
    try:
        saved = await venice.wait_for_video(job, destination)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert saved.size_bytes == VIDEO_BYTES == destination.stat().st_size
    digest = hashlib.sha256()
    with destination.open("rb") as video:
        for block in iter(lambda: video.read(1 << 20), b""):
            digest.update(block)
    assert saved.sha256 == digest.hexdigest()
    # Python-side allocations stay near the chunk size; holding the video would be 64 MB.
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


async def test_connection_dropped_mid_body_leaves_no_file(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=4 * 1024 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu, retry={"max_attempts": 2})
    job = await venice.queue(public_request())
    emu.configure_faults(FaultConfig(drop_rate={"retrieve": 1.0}))
    destination = tmp_path / "v.mp4"

    with pytest.raises(NetworkError) as caught:
        while True:  # PROCESSING answers until the job is done; then every body drops
            await venice.retrieve(job, destination)
            await asyncio.sleep(0.02)
    assert job.queue_id in str(caught.value)
    assert not destination.exists()
    assert leftovers(tmp_path) == []

    # A wait treats the drops as transient until its deadline, then names them.
    with pytest.raises(WaitTimeoutError, match="RemoteProtocolError") as timed_out:
        await venice.wait_for_video(job, destination, max_wait_seconds=0.5)
    assert isinstance(timed_out.value.__cause__, NetworkError)
    assert not destination.exists()
    assert leftovers(tmp_path) == []


async def test_dropped_transfer_with_delete_on_completion_still_saves_the_video(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=2 * 1024 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(public_request())
    # Seeded draws for retrieve drops: 0.39, 0.22, 0.40, 0.69: three video bodies cut off,
    # then a whole one. The media must survive on Venice until a transfer completes.
    emu.configure_faults(FaultConfig(drop_rate={"retrieve": 0.5}))

    saved = await venice.wait_for_video(job, tmp_path / "v.mp4", delete_media_on_completion=True)

    assert saved.size_bytes == 2 * 1024 * 1024
    record = emu.ledger()["jobs"][job.queue_id]
    # Deleted through /video/complete after the save, not by the retrieve flag.
    assert record["media_deleted"] is True
    assert record["complete_calls"] == 1
    assert leftovers(tmp_path) == []


def link_statuses(emu: Emulator, queue_id: str) -> list[object]:
    return [
        entry["status"]
        for entry in emu.requests()
        if entry["endpoint"] == "link_get" and entry["queue_id"] == queue_id
    ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as video:
        for block in iter(lambda: video.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def test_dropped_link_transfer_resumes_with_a_range(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=2 * 1024 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu)
    reference_job = await venice.queue(private_request())
    job = await venice.queue(private_request())  # the same request: the same video
    reference = await venice.wait_for_video(reference_job, tmp_path / "reference.mp4")
    # Seeded draws for link_get drops: 0.57, 0.38, 0.73: two cuts, then a whole transfer.
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 0.6}))

    saved = await venice.wait_for_video(job, tmp_path / "v.mp4")

    # Each GET continued where the last was cut (the emulator cuts an answer halfway).
    assert link_statuses(emu, job.queue_id) == [200, 206, 206]
    assert emu.ledger()["jobs"][job.queue_id]["link_gets"] == 3
    assert saved.size_bytes == 2 * 1024 * 1024
    assert saved.sha256 == reference.sha256 == file_sha256(saved.path)
    assert saved.path.read_bytes() == reference.path.read_bytes()
    assert leftovers(tmp_path) == []


async def test_a_large_private_video_resumes_without_holding_it_in_memory(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=VIDEO_BYTES // 2)  # type: ignore[operator]
    venice = venice_factory(emu, timeout=30.0)
    job = await venice.queue(private_request())
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 0.6}))

    tracemalloc.start()
    try:
        saved = await venice.wait_for_video(job, tmp_path / "big.mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert link_statuses(emu, job.queue_id) == [200, 206, 206]
    assert saved.size_bytes == VIDEO_BYTES // 2 == saved.path.stat().st_size
    assert saved.sha256 == file_sha256(saved.path)
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


async def test_a_link_used_up_by_earlier_gets_is_named_as_such(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=1024 * 1024, link_max_gets=2)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(private_request())
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    # Every GET is cut: the first two spend the link, the third is refused with 429.
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 1.0}))

    with pytest.raises(LinkExhaustedError) as caught:
        await venice.wait_for_video(job, tmp_path / "v.mp4")

    text = str(caught.value)
    assert "answered 429 after 2 earlier GETs from this client" in text
    assert "used up" in text and job.queue_id in text
    assert link not in text and urlsplit(link).path not in text
    assert link_statuses(emu, job.queue_id) == [200, 206, 429]
    assert not (tmp_path / "v.mp4").exists()
    assert leftovers(tmp_path) == []


async def test_link_that_always_drops_fails_after_a_few_tries_without_a_file(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=1024 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(private_request())
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 1.0}))

    with pytest.raises(NetworkError, match="after 3 attempts") as caught:
        await venice.wait_for_video(job, tmp_path / "v.mp4")

    # Halves of what was left arrived each time (the emulator cuts each answer halfway).
    assert f"{1024 * 1024 * 7 // 8} of {1024 * 1024} bytes had arrived" in str(caught.value)
    assert link_statuses(emu, job.queue_id) == [200, 206, 206]
    assert not (tmp_path / "v.mp4").exists()
    assert leftovers(tmp_path) == []
    assert emu.ledger()["jobs"][job.queue_id]["link_gets"] == 3
