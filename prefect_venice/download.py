"""Streamed, checked, atomic MP4 writes: a temp file beside the target, fsync, then rename."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Literal

from .errors import InvalidVideoError
from .models import VideoSaved

__all__ = [
    "CHUNK_SIZE",
    "VideoWriter",
    "ensure_directory",
    "make_temp_file",
    "resolve_destination",
]

CHUNK_SIZE = 1 << 16
"""Bytes read per chunk from the network (httpx reads a socket 64 KiB at a time)."""


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

    Each chunk is written to the file at once (unbuffered: one system call, no
    copy in Python) and fed to the checksum while it is still in the CPU's cache.
    Both calls release the GIL, so other threads (an event loop's, an emulator's)
    run meanwhile. Memory use is one network chunk, whatever the video's size.

    One writer serves one whole download, however many requests it takes: the
    temp file is kept across attempts, `received` says how much of it holds, and
    `truncate_to` drops a tail that cannot be continued (0 starts over). The temp
    file is created on the first write, so an answer that fails before any byte
    arrives leaves nothing behind, not even a new directory.
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
        """Bytes written to the temp file so far (after any truncate_to)."""
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
        if not chunk:
            return
        _write_all(self._open(), chunk)
        self._hash.update(chunk)
        if len(self._head) < 8:
            self._head += chunk[: 8 - len(self._head)]
        self._size += len(chunk)

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
        self._size = size

    def commit(self) -> VideoSaved:
        """Check the file, make it durable and rename it into place; return what was saved."""
        where = f"for job {self.queue_id}" if self.queue_id else "download"
        if self._size == 0:
            raise InvalidVideoError(f"The video {where} arrived empty; nothing was saved.")
        assert self._fd is not None and self._temp_path is not None
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

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abort(self) -> None:
        """Close and delete the temp file if it is still there (safe to call twice)."""
        self._close()
        if self._temp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp_path.unlink()
            self._temp_path = None


def _write_all(fd: int, chunk: bytes) -> None:
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
