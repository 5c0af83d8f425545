"""Saving to Prefect file-system blocks: streamed in chunks, atomic where the block is local."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]
import pytest
from fsspec.implementations.local import (  # type: ignore[import-untyped]
    LocalFileSystem as LocalDiskFileSystem,
)
from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.download import CHUNK_SIZE
from prefect_venice.flows import VideoRequest, generate_video
from prefect_venice.tasks import VideoResult
from prefect_venice.tasks import storage as storage_module

LARGE_VIDEO_BYTES = 48 * 1024 * 1024  # 768 chunks of 64 KiB
MEMORY_CEILING = 12 * 1024 * 1024  # a quarter of the video: reading it whole breaks this


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as video:
        for block in iter(lambda: video.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_into_block(credentials_block: str, storage_block: str, filename: str) -> VideoResult:
    request = VideoRequest(
        prompt="Waves on a pier",
        aspect_ratio="16:9",
        storage_block=storage_block,
        filename=filename,
    )
    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, VideoResult)
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class BytesOnlyFileSystem(WritableFileSystem):
    """A writable block that knows nothing but write_path(bytes), like many third-party ones."""

    _block_type_name = "Venice Test Bytes Only File System"

    folder: str

    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        return (Path(self.folder) / path).read_bytes()

    def write_path(self, path: str, content: bytes) -> str:  # type: ignore[override]
        target = Path(self.folder) / path
        target.write_bytes(content)
        return str(target)


def test_local_block_gets_the_file_by_rename_with_no_leftovers(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory()
    credentials = unique("store")
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(credentials)
    store = tmp_path / "store"
    name = unique("local")
    LocalFileSystem(basepath=str(store)).save(name)

    result = run_into_block(credentials, f"local-file-system/{name}", "day/one.mp4")

    target = store / "day" / "one.mp4"
    assert Path(result.path) == target.resolve()
    assert file_sha256(target) == result.sha256
    assert [p.name for p in target.parent.iterdir()] == ["one.mp4"]


def test_local_block_on_another_file_system_is_copied_in_chunks_with_bounded_memory(
    emulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(video_bytes=LARGE_VIDEO_BYTES)
    credentials = unique("large")
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=60).save(
        credentials
    )
    store = tmp_path / "store"
    name = unique("local")
    LocalFileSystem(basepath=str(store)).save(name)
    # The staging folder and the basepath share tmp_path's file system here; pretend they
    # do not, so the copy (the path that could hold the video) is what runs.
    copies: list[Path] = []

    def never_same(path: Path, directory: Path) -> bool:
        copies.append(directory)
        return False

    monkeypatch.setattr(storage_module, "_same_file_system", never_same)

    tracemalloc.start()
    try:
        result = run_into_block(credentials, f"local-file-system/{name}", "big.mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert copies, "the chunked copy never ran; the test proves nothing"
    target = store / "big.mp4"
    assert result.size_bytes == LARGE_VIDEO_BYTES == target.stat().st_size
    assert file_sha256(target) == result.sha256
    assert [p.name for p in store.iterdir()] == ["big.mp4"], "a temp file was left beside it"
    assert peak < MEMORY_CEILING, f"peak traced memory {peak} bytes"
    assert LARGE_VIDEO_BYTES > 500 * CHUNK_SIZE


class DiskFileSystem(LocalDiskFileSystem):  # type: ignore[misc]
    """fsspec's local file system under its own URL scheme, `venice-disk://tmp/a/b` = /tmp/a/b.

    RemoteFileSystem refuses `file://` basepaths, and `memory://` keeps every written
    byte in memory by design, so neither can show that the copy itself stays small.
    """

    protocol = ("venice-disk",)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        text = str(path)
        if text.startswith("venice-disk://"):
            text = "/" + text.removeprefix("venice-disk://")
        return super()._strip_protocol(text)


fsspec.register_implementation("venice-disk", DiskFileSystem, clobber=True)


def test_remote_block_streams_a_large_video_with_bounded_memory(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(video_bytes=LARGE_VIDEO_BYTES)
    credentials = unique("large")
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=60).save(
        credentials
    )
    store = tmp_path / "remote"
    basepath = "venice-disk://" + str(store).lstrip("/")
    name = unique("remote")
    RemoteFileSystem(basepath=basepath).save(name)

    tracemalloc.start()
    try:
        result = run_into_block(credentials, f"remote-file-system/{name}", "clips/big.mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    target = store / "clips" / "big.mp4"
    assert result.path == f"{basepath}/clips/big.mp4"
    assert result.size_bytes == LARGE_VIDEO_BYTES == target.stat().st_size
    assert file_sha256(target) == result.sha256
    assert peak < MEMORY_CEILING, f"peak traced memory {peak} bytes"


def test_remote_block_on_memory_url_holds_the_whole_video(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory()
    credentials = unique("mem")
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(credentials)
    name = unique("memory")
    basepath = f"memory://venice-{name}"
    RemoteFileSystem(basepath=basepath).save(name)

    result = run_into_block(credentials, f"remote-file-system/{name}", "v.mp4")

    assert result.path == f"{basepath}/v.mp4"
    block = RemoteFileSystem.load(name)
    assert isinstance(block, RemoteFileSystem)
    stored = block.read_path("v.mp4")
    assert isinstance(stored, bytes)
    assert len(stored) == result.size_bytes
    assert hashlib.sha256(stored).hexdigest() == result.sha256


def test_a_failed_remote_copy_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "remote"
    block = RemoteFileSystem(basepath="venice-disk://" + str(store).lstrip("/"))
    staged = tmp_path / "staged.mp4"
    staged.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x01" * (4 * CHUNK_SIZE))

    def copy_then_fail(source: Any, out: Any, length: int = 0) -> None:
        out.write(source.read(CHUNK_SIZE))
        raise OSError("connection to the store dropped (injected)")

    monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)

    with pytest.raises(OSError, match="injected"):
        storage_module.save_to_block(block, "v.mp4", staged, logger=logging.getLogger("test"))

    assert not (store / "v.mp4").exists()
    assert staged.is_file(), "the staged file is the caller's to remove"


def test_other_writable_blocks_fall_back_to_write_path_and_say_it_buffers(
    emulator: Any, credentials_block: str, tmp_path: Path, prefect_api: Any
) -> None:
    folder = tmp_path / "bytes-only"
    folder.mkdir()
    name = unique("bytes")
    BytesOnlyFileSystem(folder=str(folder)).save(name)
    slug = BytesOnlyFileSystem.get_block_type_slug()
    request = VideoRequest(
        prompt="Waves on a pier", aspect_ratio="16:9", storage_block=f"{slug}/{name}"
    )

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    saved = folder / f"{result.queue_id}.mp4"
    assert file_sha256(saved) == result.sha256
    messages = [log.message for log in prefect_api.logs(state.state_details.flow_run_id)]
    assert any(
        "BytesOnlyFileSystem offers only write_path(bytes)" in m and "into memory" in m
        for m in messages
    ), messages
