"""Copies a staged MP4 into a Prefect file-system block in chunks, never whole in memory."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from prefect.filesystems import SMB, LocalFileSystem, RemoteFileSystem, WritableFileSystem

from prefect_venice.download import CHUNK_SIZE, VideoWriter
from prefect_venice.errors import DestinationError, InvalidRequestError
from prefect_venice.generation import check_storage_key

__all__ = ["check_block_target", "load_writable_file_system", "save_to_block"]


def load_writable_file_system(name: str) -> WritableFileSystem:
    """Load a file-system block by "<block-type-slug>/<block-name>" and check it can write."""
    if name.count("/") != 1 or not all(name.split("/")):
        raise InvalidRequestError(
            f"storage_block {name!r} must be '<block-type-slug>/<block-name>', "
            "e.g. 'local-file-system/videos'."
        )
    block = Block.load(name)
    if not isinstance(block, WritableFileSystem):
        raise InvalidRequestError(
            f"storage_block {name!r} is a {type(block).__name__}, not a writable file system "
            "(e.g. LocalFileSystem or RemoteFileSystem)."
        )
    return block


def check_block_target(block: WritableFileSystem, key: str, *, overwrite: bool = False) -> None:
    """Refuse, before paying, a key that leaves the block's base path or names an existing file.

    Only LocalFileSystem and fsspec-backed blocks can be asked whether a file exists;
    for other blocks only the key itself is checked.
    """
    check_storage_key(key)
    try:
        if isinstance(block, LocalFileSystem):
            # Prefect's own resolution: raises ValueError for a path outside the basepath.
            target = Path(block._resolve_path(key))
            exists = target.exists()
        elif isinstance(block, (RemoteFileSystem, SMB)):
            remote = block.filesystem if isinstance(block, SMB) else block
            exists = bool(remote.filesystem.exists(remote._resolve_path(key)))
        else:
            return
    except ValueError as exc:
        raise DestinationError(f"storage key {key!r} is not allowed by the block: {exc}") from None
    if exists and not overwrite:
        raise DestinationError(
            f"storage key {key!r} already exists in the block; choose another filename or set "
            "overwrite to replace it; nothing was queued or charged."
        )


def save_to_block(
    block: WritableFileSystem,
    key: str,
    staged: Path,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    chunk_size: int = CHUNK_SIZE,
) -> str:
    """Put the checked MP4 at `staged` under `key` in the block; return where it now is.

    - LocalFileSystem: renamed (or, across file systems, copied in chunks to a temp
      file beside the target, fsynced, then renamed) into the block's basepath, so
      readers see no file or the whole file.
    - RemoteFileSystem (any fsspec URL) and SMB: the target is opened through the
      block's fsspec file system and written chunk by chunk; a failed copy removes
      what was written.
    - Any other WritableFileSystem only offers `write_path(bytes)`: the whole video
      is read into memory once, and a warning says so.

    The staged file is the caller's: it is moved or left in place, never deleted here.
    """
    # Prefect's own path resolution (_resolve_path) keeps keys inside the basepath and
    # places files exactly where the block's write_path would.
    if isinstance(block, LocalFileSystem):
        return str(_save_local(block._resolve_path(key), staged, chunk_size))
    if isinstance(block, SMB):
        block = block.filesystem
    if isinstance(block, RemoteFileSystem):
        return _save_remote(block, key, staged, chunk_size)
    size = staged.stat().st_size
    logger.warning(
        "%s offers only write_path(bytes): the whole video (%d bytes) is read into memory "
        "once to save it. LocalFileSystem and RemoteFileSystem blocks stream it instead.",
        type(block).__name__,
        size,
    )
    return str(block.write_path(key, staged.read_bytes()))


def _save_local(target: Path, staged: Path, chunk_size: int) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_file():
        raise ValueError(f"Path {target} already exists and is not a file.")
    if _same_file_system(staged, target.parent):
        # Same file system: one atomic rename, no copy at all.
        os.replace(staged, target)
        return target
    # Across file systems: VideoWriter streams to a temp file beside the target,
    # fsyncs, checks and renames, as it did for the download itself.
    with VideoWriter(target, expected_length=staged.stat().st_size) as writer:
        with staged.open("rb") as source:
            for chunk in iter(lambda: source.read(chunk_size), b""):
                writer.write(chunk)
        writer.commit()
    return target


def _save_remote(block: RemoteFileSystem, key: str, staged: Path, chunk_size: int) -> str:
    path = block._resolve_path(key)
    directory = path[: path.rindex("/")]
    if block.basepath.startswith("smb://"):
        # As RemoteFileSystem.write_path does: smbprotocol makes directories by path only.
        directory = urllib.parse.urlparse(directory).path
    filesystem = block.filesystem
    filesystem.makedirs(directory, exist_ok=True)
    try:
        with filesystem.open(path, "wb") as out, staged.open("rb") as source:
            shutil.copyfileobj(source, out, chunk_size)
    except BaseException:
        # Object stores commit on close even after an error: take the partial file away.
        with contextlib.suppress(Exception):
            filesystem.rm(path)
        raise
    return path


def _same_file_system(path: Path, directory: Path) -> bool:
    return path.stat().st_dev == directory.stat().st_dev
