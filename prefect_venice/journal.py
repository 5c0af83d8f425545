"""The CLI's job journal: each paid queue answer, kept in a user-only file until the job is done."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import SecretStr

from .models import QueuedJob

__all__ = [
    "HOME_ENV",
    "JournalEntry",
    "JournalError",
    "entry_path",
    "forget",
    "jobs_dir",
    "load",
    "record",
]

#: Overrides the prefect-venice home (default ~/.prefect-venice); entries live in its `jobs/`.
HOME_ENV = "PREFECT_VENICE_HOME"

# A queue id becomes a file name, so it must not be able to name anything outside jobs/.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


class JournalError(ValueError):
    """A journal entry cannot be written or read (bad queue id, unreadable file)."""


@dataclass(frozen=True)
class JournalEntry:
    """One recorded queue answer: what `prefect-venice wait` needs to fetch the paid video."""

    model: str
    queue_id: str
    download_url: SecretStr | None
    base_url: str
    created_at: str
    path: Path

    def job(self, model: str | None = None) -> QueuedJob:
        """Return the queued job, optionally under another model id."""
        return QueuedJob(
            model=model or self.model, queue_id=self.queue_id, download_url=self.download_url
        )


def jobs_dir() -> Path:
    """Return the journal directory: `$PREFECT_VENICE_HOME/jobs` or `~/.prefect-venice/jobs`."""
    home = os.environ.get(HOME_ENV) or str(Path.home() / ".prefect-venice")
    return Path(home).expanduser() / "jobs"


def entry_path(queue_id: str, directory: Path | None = None) -> Path:
    """Return the file that holds `queue_id`'s entry; JournalError if the id is no file name."""
    if not _SAFE_ID.fullmatch(queue_id):
        raise JournalError(f"queue id {queue_id!r} cannot be used as a journal file name.")
    return (directory or jobs_dir()) / f"{queue_id}.json"


def _private_dir(directory: Path) -> Path:
    # mkdir(parents=True) would give the parents the umask's mode, so each level is made here.
    for level in reversed([directory, *directory.parents]):
        if not level.exists():
            level.mkdir(mode=0o700)
    os.chmod(directory, 0o700)  # an existing jobs/ may have been made looser
    return directory


def record(job: QueuedJob, base_url: str, directory: Path | None = None) -> Path:
    """Write `job`'s queue answer to its journal file (mode 0600, atomic) and return the path.

    The private download_url is written in plain text: keeping it is the point, and
    the file and its directory are readable only by the user.
    """
    target = entry_path(job.queue_id, directory)
    folder = _private_dir(target.parent)
    link = job.download_url
    body = {
        "model": job.model,
        "queue_id": job.queue_id,
        "download_url": None if link is None else link.get_secret_value(),
        "base_url": base_url,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    temporary = folder / f".{job.queue_id}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never reuse (or follow a symlink at) an existing name; 0600 from the first byte.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def load(queue_id: str, directory: Path | None = None) -> JournalEntry | None:
    """Return the entry recorded for `queue_id`, or None if there is none."""
    try:
        path = entry_path(queue_id, directory)
    except JournalError:
        return None  # such an id was never recorded
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise JournalError(f"cannot read the job journal entry {path}: {exc}") from None
    fields = ("model", "queue_id", "base_url", "created_at")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in fields):
        raise JournalError(f"the job journal entry {path} is not a recorded queue answer.")
    link = data.get("download_url")
    if link is not None and not isinstance(link, str):
        raise JournalError(f"the job journal entry {path} has an unreadable download_url.")
    return JournalEntry(
        model=data["model"],
        queue_id=data["queue_id"],
        download_url=None if link is None else SecretStr(link),
        base_url=data["base_url"],
        created_at=data["created_at"],
        path=path,
    )


def forget(queue_id: str, directory: Path | None = None) -> None:
    """Delete `queue_id`'s entry, if any."""
    try:
        entry_path(queue_id, directory).unlink(missing_ok=True)
    except JournalError:
        return
