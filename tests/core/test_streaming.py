"""Videos are streamed to disk in chunks, checked, and never left half-written."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from pathlib import Path

import pytest
from core_support import VeniceFactory
from test_client_endpoints import private_request, public_request

from prefect_venice import NetworkError, WaitTimeoutError
from prefect_venice.emulator import FaultConfig

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


async def test_dropped_link_transfer_restarts_into_a_fresh_file(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=2 * 1024 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(private_request())
    # Seeded draws for link_get drops: 0.57, 0.38, 0.73: two drops, then a whole transfer.
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 0.6}))

    saved = await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert saved.size_bytes == 2 * 1024 * 1024
    assert saved.path.read_bytes()[4:8] == b"ftyp"
    assert emu.ledger()["jobs"][job.queue_id]["link_gets"] == 3
    assert leftovers(tmp_path) == []


async def test_link_that_always_drops_fails_after_a_few_tries_without_a_file(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=1024 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(private_request())
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 1.0}))

    with pytest.raises(NetworkError, match="after 3 attempts"):
        await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert not (tmp_path / "v.mp4").exists()
    assert leftovers(tmp_path) == []
    assert emu.ledger()["jobs"][job.queue_id]["link_gets"] == 3
