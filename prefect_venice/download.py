"""Streamed, checked, atomic MP4 writes: a temp file beside the target, fsync, then rename."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import mmap
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal

from .errors import InvalidVideoError
from .models import VideoSaved

__all__ = [
    "BATCH_BYTES",
    "CHUNK_SIZE",
    "INLINE_BYTES",
    "IN_FLIGHT_BYTES",
    "WRITEBACK_STEP",
    "VideoWriter",
    "ensure_directory",
    "make_temp_file",
    "resolve_destination",
]

CHUNK_SIZE = 1 << 16
"""Bytes per read where a fixed size is wanted (64 KiB: file copies in tasks.storage).

The clients' `chunk_size` defaults to None instead: pieces as they arrive from the
socket, with no re-chunking copy in between."""

BATCH_BYTES = 1 << 20
"""Past INLINE_BYTES, pieces are gathered up to this size (1 MiB), then written and
hashed with one call each by the writer's own thread."""

IN_FLIGHT_BYTES = 4 << 20
"""Most bytes handed to the writer's thread and not yet written (4 MiB). With the batch
being gathered and the thread's copy buffer, a writer holds about 6 MiB at most,
whatever the video's size."""

INLINE_BYTES = 8 << 20
"""A download's first 8 MiB are written and hashed inline, piece by piece; only a larger
video starts a thread of its own (most videos are a few MB: no thread at all)."""

WRITEBACK_STEP = 8 << 20
"""On Linux, the kernel is asked to start writing each 8 MiB to disk as soon as it is in
the file, so the final fsync finds little left to do (see VideoWriter)."""

_HINT_WRITEBACK = sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")
_PAGE = mmap.PAGESIZE


def resolve_destination(destination: str | os.PathLike[str], queue_id: str) -> Path:
    """Return the file to write: destination itself, or <queue_id>.mp4 inside a directory."""
    path = Path(destination).expanduser()
    if path.is_dir():
        return path / f"{queue_id}.mp4"
    return path


class VideoWriter:
    """Receives an MP4 chunk by chunk and puts it at destination only if it checks out.

    Chunks go to a temporary file in the destination's own directory (so the
    final os.replace is an atomic rename on the same file system), the sha256 is
    computed while streaming, and on commit() the file is fsynced and checked:
    non-empty, as long as `expected_length` says, and starting with an MP4 `ftyp`
    box. Leaving the `with` block without commit() (any error, including a
    dropped connection) deletes the temp file, so no half file is ever left at
    the destination.

    How the bytes reach the disk, fast and in bounded memory:

    - The first INLINE_BYTES are written (os.write, unbuffered) and hashed inline,
      piece by piece: a typical video of a few MB costs no thread.
    - Past that, pieces are gathered into batches of about BATCH_BYTES that a thread
      of this writer writes and hashes, one call each (both release the GIL), while
      the caller goes on reading the network. At most IN_FLIGHT_BYTES wait for the
      thread; a caller that gets ahead waits (`awrite` waits off the event loop).
    - On Linux, each WRITEBACK_STEP written is handed to the disk at once
      (posix_fadvise DONTNEED: it starts writeback of dirty pages and evicts only
      pages already on disk), so the disk works during the transfer rather than
      all at once in commit's fsync.

    A failed write in the thread (a full disk) is raised by the next write,
    truncate_to or commit. One writer serves one whole download, however many
    requests it takes: the temp file is kept across attempts, `received` says how
    much of it holds (bytes accepted: written, or about to be), and `truncate_to`
    drops a tail that cannot be continued (0 starts over). The temp file is
    created on the first write, so an answer that fails before any byte arrives
    leaves nothing behind, not even a new directory.
    """

    def __init__(
        self,
        destination: Path,
        *,
        expected_length: int | None = None,
        queue_id: str | None = None,
        source: Literal["retrieve", "link"] = "retrieve",
    ) -> None:
        self.destination = destination
        self.expected_length = expected_length
        """The size the whole file must have (None: unknown); settable while receiving."""
        self.queue_id = queue_id
        self.source: Literal["retrieve", "link"] = source
        self._hash = hashlib.sha256()
        self._head = b""
        self._size = 0
        self._fd: int | None = None
        self._temp_path: Path | None = None
        # Pieces gathered for the thread's next batch, and that thread once started.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._thread: _WriterThread | None = None
        # What _write_batch put in the file, its copy buffer and how far writeback was
        # started: the thread's alone while it runs, the caller's once it is idle.
        self._written = 0
        self._buffer: bytearray | None = None
        self._hinted = 0
        self._hints = _HINT_WRITEBACK

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()

    @property
    def received(self) -> int:
        """Bytes accepted by write() so far (after any truncate_to): what the file will hold."""
        return self._size

    def _open(self) -> int:
        if self._fd is None:
            fd, name = make_temp_file(
                self.destination.parent, prefix=f".{self.destination.name}.", suffix=".part"
            )
            self._fd, self._temp_path = fd, Path(name)
        return self._fd

    def write(self, chunk: bytes) -> None:
        """Append one chunk to the temp file and the running checksum."""
        for batch, size in self._accept(chunk):
            thread = self._thread
            assert thread is not None
            thread.wait_for_room(size)
            thread.put(batch, size)

    async def awrite(self, chunk: bytes) -> None:
        """write() for an event loop: any wait for the writer's thread happens off the loop."""
        for batch, size in self._accept(chunk):
            thread = self._thread
            assert thread is not None
            if not thread.has_room(size):
                await asyncio.to_thread(thread.wait_for_room, size)
            thread.put(batch, size)

    def _accept(self, chunk: bytes) -> list[tuple[list[bytes], int]]:
        """Take a chunk: write it inline, or return the batches now ready for the thread."""
        if not chunk:
            return []
        self._open()
        inline = self._thread is None and self._size + len(chunk) <= INLINE_BYTES
        if inline:
            self._write_batch([chunk])
        elif self._thread is None:
            self._thread = _WriterThread(self._write_batch, IN_FLIGHT_BYTES)
        else:
            self._thread.raise_failure()
        if len(self._head) < 8:
            self._head += chunk[: 8 - len(self._head)]
        self._size += len(chunk)
        if inline:
            return []
        ready: list[tuple[list[bytes], int]] = []
        if self._pending and self._pending_size + len(chunk) > BATCH_BYTES:
            ready.append(self._take_pending())
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= BATCH_BYTES:
            ready.append(self._take_pending())
        return ready

    def _take_pending(self) -> tuple[list[bytes], int]:
        batch, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        return batch, size

    def _write_batch(self, batch: list[bytes]) -> None:
        """Write pieces to the file and the checksum, one call each (the thread's work)."""
        fd = self._fd
        assert fd is not None
        data: bytes | memoryview
        if len(batch) == 1:
            data = batch[0]
        else:
            # One copy into a reused buffer buys one write and one GIL-free hash update
            # per batch, and no fresh allocation per batch.
            total = sum(len(piece) for piece in batch)
            if self._buffer is None or len(self._buffer) < total:
                self._buffer = bytearray(max(total, BATCH_BYTES))
            buffer, at = self._buffer, 0
            for piece in batch:
                buffer[at : at + len(piece)] = piece
                at += len(piece)
            data = memoryview(buffer)[:at]
        _write_all(fd, data)
        self._hash.update(data)
        self._written += len(data)
        if self._hints and self._written - self._hinted >= WRITEBACK_STEP:
            self._start_writeback(fd)

    def _start_writeback(self, fd: int) -> None:
        # DONTNEED on dirty pages starts their writeback (WB_SYNC_NONE, no waiting) and
        # evicts only pages already clean: the data is safe either way, and commit's
        # fsync still waits for all of it. The stretch ends on a page boundary, so the
        # next write never lands in a page that is being written back.
        end = self._written - self._written % _PAGE
        if end <= self._hinted:
            return
        try:
            os.posix_fadvise(fd, self._hinted, end - self._hinted, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover - a file system that refuses the advice
            self._hints = False
        self._hinted = end

    def _drain(self) -> None:
        """Hand over the last gathered pieces and wait until the thread wrote everything."""
        thread = self._thread
        if thread is None:
            return
        if self._pending:
            batch, size = self._take_pending()
            thread.wait_for_room(size)
            thread.put(batch, size)
        thread.wait_idle()

    def truncate_to(self, size: int) -> None:
        """Keep only the first `size` bytes received (0: start over); the checksum follows.

        Used when a resumed download cannot continue where it stopped. Cutting to
        anything but 0 or the current size re-reads the kept part once to rebuild
        the checksum, in chunks, so memory stays flat.
        """
        if not 0 <= size <= self._size:
            raise ValueError(f"cannot truncate {self._size} received bytes to {size}")
        if size == self._size:
            return
        self._drain()
        fd = self._open()
        os.ftruncate(fd, size)
        self._hash = hashlib.sha256()
        self._head = b""
        offset = 0
        while offset < size:
            block = os.pread(fd, min(size - offset, 1 << 20), offset)
            if not block:  # pragma: no cover - the file shrank under us
                raise InvalidVideoError("The partly downloaded video changed on disk.")
            if len(self._head) < 8:
                self._head += block[: 8 - len(self._head)]
            self._hash.update(block)
            offset += len(block)
        os.lseek(fd, size, os.SEEK_SET)
        self._size = self._written = size
        self._hinted = min(self._hinted, size)

    def commit(self) -> VideoSaved:
        """Check the file, make it durable and rename it into place; return what was saved."""
        self._drain()
        where = f"for job {self.queue_id}" if self.queue_id else "download"
        if self._size == 0:
            raise InvalidVideoError(f"The video {where} arrived empty; nothing was saved.")
        assert self._fd is not None and self._temp_path is not None
        assert self._written == self._size, (self._written, self._size)
        if self.expected_length is not None and self._size < self.expected_length:
            raise InvalidVideoError(
                f"The video {where} is truncated: {self._size} of {self.expected_length} bytes "
                "arrived; nothing was saved."
            )
        if self.expected_length is not None and self._size > self.expected_length:
            raise InvalidVideoError(
                f"The video {where} is {self._size} bytes, more than the {self.expected_length} "
                "announced; nothing was saved."
            )
        if self._head[4:8] != b"ftyp":
            raise InvalidVideoError(
                f"The file {where} is not an MP4 (no 'ftyp' box at the start); nothing was saved."
            )
        self._stop_thread(discard=False)
        os.fsync(self._fd)
        self._close()
        # mkstemp creates the file 0600; give the video the mode a plain open() would.
        os.chmod(self._temp_path, 0o666 & ~_umask())
        os.replace(self._temp_path, self.destination)
        self._temp_path = None
        _fsync_directory(self.destination.parent)
        return VideoSaved(
            path=self.destination,
            size_bytes=self._size,
            sha256=self._hash.hexdigest(),
            queue_id=self.queue_id,
            source=self.source,
        )

    def _stop_thread(self, *, discard: bool) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(discard=discard)
        self._pending, self._pending_size = [], 0
        self._buffer = None

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abort(self) -> None:
        """Stop the thread, close and delete the temp file if still there (safe to call twice)."""
        self._stop_thread(discard=True)
        self._close()
        if self._temp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp_path.unlink()
            self._temp_path = None


class _WriterThread:
    """A thread that runs `work` on each batch handed to it, with at most `limit` bytes queued.

    The first exception `work` raises is kept (later batches are skipped) and raised
    in the caller's thread by raise_failure, put and wait_idle.
    """

    def __init__(self, work: Callable[[list[bytes]], None], limit: int) -> None:
        self._work = work
        self._limit = limit
        self._queue: queue.SimpleQueue[tuple[list[bytes], int] | None] = queue.SimpleQueue()
        self._state = threading.Condition()
        self._in_flight = 0
        self._failure: BaseException | None = None
        self._discard = False
        self._thread = threading.Thread(target=self._run, name="prefect-venice-writer", daemon=True)
        self._thread.start()

    def _room_for(self, size: int) -> bool:
        return (
            self._in_flight == 0
            or self._in_flight + size <= self._limit
            or self._failure is not None
            or self._discard
        )

    def has_room(self, size: int) -> bool:
        """Whether a batch of `size` bytes fits within the limit now."""
        with self._state:
            return self._room_for(size)

    def wait_for_room(self, size: int) -> None:
        """Block until a batch of `size` bytes fits (or the thread failed or is stopping)."""
        with self._state:
            self._state.wait_for(lambda: self._room_for(size))

    def put(self, batch: list[bytes], size: int) -> None:
        """Queue a batch (after wait_for_room); raise the thread's failure instead, if any."""
        self.raise_failure()
        with self._state:
            self._in_flight += size
        self._queue.put((batch, size))

    def wait_idle(self) -> None:
        """Block until every batch queued so far is done; raise the thread's failure if any."""
        with self._state:
            self._state.wait_for(lambda: self._in_flight == 0)
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise what the thread's work raised, if it did."""
        if self._failure is not None:
            raise self._failure

    def stop(self, *, discard: bool) -> None:
        """End the thread once it is through the queue (discard: skip the batches left)."""
        with self._state:
            self._discard = self._discard or discard
            self._state.notify_all()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            batch, size = item
            try:
                if self._failure is None and not self._discard:
                    self._work(batch)
            except BaseException as exc:  # handed to the caller's thread
                self._failure = exc
            finally:
                del batch, item
                with self._state:
                    self._in_flight -= size
                    self._state.notify_all()


def _write_all(fd: int, chunk: bytes | memoryview) -> None:
    """Write the whole chunk at the file's offset (os.write may write less)."""
    written = os.write(fd, chunk)
    if written < len(chunk):  # pragma: no cover - rare on regular files
        view = memoryview(chunk)[written:]
        while view:
            view = view[os.write(fd, view) :]


def ensure_directory(directory: Path) -> Path:
    """Make `directory` (and its parents) if missing, surviving a concurrent removal.

    Another run may remove an empty staging folder at any moment; `mkdir` then fails
    with FileExistsError (it saw the folder, which then vanished) or a later step with
    FileNotFoundError. Such a race is retried rather than failing a paid download.
    """
    for attempt in range(5):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        except FileExistsError:
            if attempt == 4 or (directory.exists() and not directory.is_dir()):
                raise
    return directory


def make_temp_file(directory: Path, *, prefix: str, suffix: str) -> tuple[int, str]:
    """Create a private temp file in `directory` (made if missing); return (fd, path)."""
    for attempt in range(5):
        ensure_directory(directory)
        try:
            return tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
        except FileNotFoundError:  # the folder was removed meanwhile: make it again
            if attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # The umask can only be read by setting it; do it once, not around every write.
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
