"""VideoWriter's fast path: a thread of its own for large videos, bounded memory, early writeback.

The sizes that switch the fast path on (INLINE_BYTES, BATCH_BYTES, IN_FLIGHT_BYTES,
WRITEBACK_STEP) are shrunk here so that a few KiB exercise what a large video does;
tests/core/test_streaming.py runs the real sizes against the emulator.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_support import VeniceFactory
from test_client_endpoints import private_request, public_request

from prefect_venice import AsyncVeniceClient, NetworkError, VeniceClient
from prefect_venice import download as dl
from prefect_venice.download import VideoWriter
from prefect_venice.emulator import FaultConfig

HEAD = b"\x00\x00\x00\x18ftypisom"


def video(size: int, seed: int = 7) -> bytes:
    """An MP4-looking body of `size` bytes (an ftyp box first, then random bytes)."""
    return HEAD + random.Random(seed).randbytes(size - len(HEAD))


def pieces(data: bytes, seed: int = 3, largest: int = 700) -> Iterator[bytes]:
    """`data` cut into pieces of random sizes (1..largest), as a network hands them over."""
    rng = random.Random(seed)
    at = 0
    while at < len(data):
        step = rng.randint(1, largest)
        yield data[at : at + step]
        at += step


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefect-venice-writer"]


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".part")]


@pytest.fixture
def small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path after 4 KiB, 1 KiB batches, 4 KiB in flight, writeback every 8 KiB."""
    monkeypatch.setattr(dl, "INLINE_BYTES", 4096)
    monkeypatch.setattr(dl, "BATCH_BYTES", 1024)
    monkeypatch.setattr(dl, "IN_FLIGHT_BYTES", 4096)
    monkeypatch.setattr(dl, "WRITEBACK_STEP", 8192)


@pytest.mark.usefixtures("small_sizes")
def test_a_large_video_goes_through_the_writer_thread_byte_for_byte(tmp_path: Path) -> None:
    data = video(200_000)
    destination = tmp_path / "v.mp4"
    seen_threads = 0
    with VideoWriter(destination, expected_length=len(data)) as writer:
        for piece in pieces(data):
            writer.write(piece)
            seen_threads = max(seen_threads, len(writer_threads()))
        assert writer.received == len(data)
        saved = writer.commit()
    assert seen_threads == 1
    assert writer_threads() == []
    assert destination.read_bytes() == data
    assert saved.size_bytes == len(data)
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert leftovers(tmp_path) == []


def test_a_small_video_is_written_inline_without_a_thread(tmp_path: Path) -> None:
    data = video(3 * 1024 * 1024)  # under the real INLINE_BYTES (8 MiB)
    destination = tmp_path / "v.mp4"
    with VideoWriter(destination) as writer:
        for piece in pieces(data, largest=65536):
            writer.write(piece)
            assert writer_threads() == []
        saved = writer.commit()
    assert destination.read_bytes() == data
    assert saved.sha256 == hashlib.sha256(data).hexdigest()


def test_pieces_larger_than_a_batch_are_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "INLINE_BYTES", 0)
    monkeypatch.setattr(dl, "BATCH_BYTES", 1024)
    data = video(50_000)
    with VideoWriter(tmp_path / "v.mp4") as writer:
        for piece in pieces(data, largest=5000):
            writer.write(piece)
        saved = writer.commit()
    assert (tmp_path / "v.mp4").read_bytes() == data
    assert saved.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.usefixtures("small_sizes")
@pytest.mark.parametrize("keep", [0, 5, 3000, 4096, 9000, 19_999])
def test_truncating_while_the_thread_holds_batches_keeps_the_right_bytes(
    keep: int, tmp_path: Path
) -> None:
    data = video(60_000)
    destination = tmp_path / "v.mp4"
    with VideoWriter(destination, expected_length=len(data)) as writer:
        for piece in pieces(data[:20_000]):
            writer.write(piece)
        writer.write(b"garbage that must go" * 300)
        writer.truncate_to(keep)
        assert writer.received == keep
        for piece in pieces(data[keep:], seed=5):
            writer.write(piece)
        saved = writer.commit()
    assert destination.read_bytes() == data
    assert saved.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.usefixtures("small_sizes")
def test_a_failed_write_in_the_thread_is_raised_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = dl._write_all
    calls = 0

    def disk_fills_up(fd: int, chunk: bytes | memoryview) -> None:
        nonlocal calls
        calls += 1
        if threading.current_thread().name == "prefect-venice-writer" and calls > 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, chunk)

    monkeypatch.setattr(dl, "_write_all", disk_fills_up)
    destination = tmp_path / "v.mp4"
    data = video(100_000)
    writer = VideoWriter(destination, expected_length=len(data))
    with pytest.raises(OSError, match="No space left") as caught, writer:
        for piece in pieces(data):
            writer.write(piece)
        writer.commit()
    assert caught.value.errno == errno.ENOSPC
    assert not destination.exists()
    assert leftovers(tmp_path) == []
    assert writer_threads() == []


@pytest.mark.usefixtures("small_sizes")
def test_a_failure_after_the_last_write_is_raised_by_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = dl._write_all
    data = video(20_000)
    tail = data[-10:]

    def fails_on_the_tail(fd: int, chunk: bytes | memoryview) -> None:
        if bytes(chunk).endswith(tail):
            raise OSError(errno.EIO, "Input/output error")
        real_write_all(fd, chunk)

    monkeypatch.setattr(dl, "_write_all", fails_on_the_tail)
    destination = tmp_path / "v.mp4"
    with VideoWriter(destination) as writer:
        for piece in pieces(data[:-10]):
            writer.write(piece)
        writer.write(tail)  # returns: the thread writes the last batch later
        with pytest.raises(OSError, match="Input/output error"):
            writer.commit()
    assert not destination.exists()
    assert leftovers(tmp_path) == []
    assert writer_threads() == []


@pytest.mark.usefixtures("small_sizes")
def test_bytes_in_flight_stay_within_the_limit_and_a_writer_ahead_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = dl._write_all
    gate = threading.Event()
    in_flight_seen: list[int] = []
    writer = VideoWriter(tmp_path / "v.mp4")

    def slow_disk(fd: int, chunk: bytes | memoryview) -> None:
        if threading.current_thread().name == "prefect-venice-writer":
            assert writer._thread is not None
            in_flight_seen.append(writer._thread._in_flight)
            gate.wait()
        real_write_all(fd, chunk)

    monkeypatch.setattr(dl, "_write_all", slow_disk)
    data = video(40_000)
    done = threading.Event()

    def produce() -> None:
        for piece in pieces(data):
            writer.write(piece)
        done.set()

    with writer:
        producer = threading.Thread(target=produce)
        producer.start()
        # The disk is stuck: the producer must stop once 4 KiB wait for the thread.
        producer.join(timeout=1.0)
        assert not done.is_set()
        assert writer._thread is not None
        assert writer._thread._in_flight <= dl.IN_FLIGHT_BYTES
        assert writer.received < 4096 + 4096 + 2 * 1024 + 700
        gate.set()
        producer.join()
        saved = writer.commit()
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert max(in_flight_seen) <= dl.IN_FLIGHT_BYTES


@pytest.mark.usefixtures("small_sizes")
async def test_awrite_waits_for_the_thread_without_blocking_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = dl._write_all
    gate = threading.Event()

    def slow_disk(fd: int, chunk: bytes | memoryview) -> None:
        if threading.current_thread().name == "prefect-venice-writer":
            gate.wait()
        real_write_all(fd, chunk)

    monkeypatch.setattr(dl, "_write_all", slow_disk)
    data = video(40_000)

    async def release_the_disk() -> None:
        # Runs only if the loop is free while awrite waits for room.
        for _ in range(20):
            await asyncio.sleep(0)
        gate.set()

    rescued = threading.Event()

    def rescue() -> None:  # a blocked loop would hang here: fail instead
        rescued.set()
        gate.set()

    timer = threading.Timer(20.0, rescue)
    timer.start()

    async def write_all(writer: VideoWriter) -> None:
        for piece in pieces(data):
            await writer.awrite(piece)

    with VideoWriter(tmp_path / "v.mp4") as writer:
        releaser = asyncio.create_task(release_the_disk())
        await write_all(writer)
        await releaser
        saved = writer.commit()
    timer.cancel()
    assert not rescued.is_set(), "the event loop was blocked while awrite waited"
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "v.mp4").read_bytes() == data


@pytest.mark.usefixtures("small_sizes")
async def test_a_cancelled_awrite_leaves_no_file_and_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = dl._write_all
    gate = threading.Event()

    def slow_disk(fd: int, chunk: bytes | memoryview) -> None:
        if threading.current_thread().name == "prefect-venice-writer":
            gate.wait()
        real_write_all(fd, chunk)

    monkeypatch.setattr(dl, "_write_all", slow_disk)
    data = video(40_000)
    waiting = asyncio.Event()

    async def save() -> None:
        with VideoWriter(tmp_path / "v.mp4") as writer:
            for piece in pieces(data):
                if writer.received > 6000:  # past INLINE_BYTES, before the limit is hit
                    waiting.set()
                await writer.awrite(piece)

    task = asyncio.create_task(save())
    await waiting.wait()
    task.cancel()
    gate.set()  # the thread finishes its batch; the rest is discarded
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "v.mp4").exists()
    assert leftovers(tmp_path) == []
    assert writer_threads() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writeback hints are Linux-only")
@pytest.mark.usefixtures("small_sizes")
def test_writeback_starts_stretch_by_stretch_while_receiving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advice: list[tuple[int, int, int]] = []
    real_fadvise = os.posix_fadvise

    def record(fd: int, offset: int, length: int, how: int) -> None:
        advice.append((offset, length, how))
        real_fadvise(fd, offset, length, how)

    monkeypatch.setattr(os, "posix_fadvise", record)
    data = video(100_000)
    with VideoWriter(tmp_path / "v.mp4") as writer:
        for piece in pieces(data):
            writer.write(piece)
        saved = writer.commit()
    # Contiguous stretches from byte 0, each at least WRITEBACK_STEP, none past the end.
    assert advice and all(how == os.POSIX_FADV_DONTNEED for _, _, how in advice)
    assert [offset for offset, _, _ in advice] == [0] + [
        sum(length for _, length, _ in advice[: i + 1]) for i in range(len(advice) - 1)
    ]
    assert all(length >= 8192 for _, length, _ in advice)
    assert sum(length for _, length, _ in advice) > len(data) - 8192 - 1024
    # Advice drops nothing that was not on disk: the file is whole and right.
    assert (tmp_path / "v.mp4").read_bytes() == data
    assert saved.sha256 == hashlib.sha256(data).hexdigest()


async def test_the_clients_hand_pieces_over_as_they_arrive() -> None:
    # No re-chunking copy by default; a size, when given, is kept.
    with VeniceClient("k" * 16, pacing=False) as client:
        assert client.chunk_size is None
    sized = AsyncVeniceClient("k" * 16, pacing=False, chunk_size=4096)
    assert sized.chunk_size == 4096
    await sized.aclose()


# Against the emulator, past the real INLINE_BYTES -----------------------------------------

LARGE = 24 * 1024 * 1024  # three times INLINE_BYTES: most of it goes through the thread


async def test_a_large_retrieve_cut_mid_body_leaves_no_file_then_saves_whole(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=LARGE)  # type: ignore[operator]
    venice = venice_factory(emu, retry={"max_attempts": 1})
    job = await venice.queue(public_request())
    emu.configure_faults(FaultConfig(drop_rate={"retrieve": 1.0}))
    destination = tmp_path / "v.mp4"

    with pytest.raises(NetworkError):
        while True:  # PROCESSING until done; then the body is cut at 12 MiB
            await venice.retrieve(job, destination)
            await asyncio.sleep(0.02)
    assert not destination.exists()
    assert leftovers(tmp_path) == []
    assert writer_threads() == []

    emu.configure_faults(FaultConfig())
    saved = await venice.retrieve(job, destination)
    assert saved.size_bytes == LARGE == destination.stat().st_size
    digest = hashlib.sha256()
    with destination.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    assert saved.sha256 == digest.hexdigest()
    assert writer_threads() == []


async def test_a_large_private_video_saved_through_the_thread_matches_the_retrieved_one(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(video_bytes=LARGE)  # type: ignore[operator]
    venice = venice_factory(emu, timeout=30.0)
    job = await venice.queue(private_request())
    # Cut twice, each time after more than INLINE_BYTES: resumed by range in the thread.
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 0.6}))

    saved = await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert saved.size_bytes == LARGE == saved.path.stat().st_size
    statuses = [
        e["status"]
        for e in emu.requests()
        if e["endpoint"] == "link_get" and e["queue_id"] == job.queue_id
    ]
    assert statuses == [200, 206, 206]
    digest = hashlib.sha256(saved.path.read_bytes()).hexdigest()
    assert saved.sha256 == digest
    assert leftovers(tmp_path) == []
