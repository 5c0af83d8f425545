"""The job journal: one user-only record per paid job, written before the queue request is sent.

Each record lives under a *job key* (a flow run, a scheduled slot, a name a script
chose) and moves through three states:

- ``sending``: the queue request is about to be sent or was sent, and no answer has
  been recorded. Whoever finds it cannot know whether Venice created (and charged)
  a job, so it must never queue again blindly.
- ``queued``: Venice's answer is recorded (queue id, model, a private model's
  one-time download link). A later attempt waits for this job instead of paying.
- ``saved``: the MP4 is saved (path, size, SHA-256); once the clean-up has run the
  link is removed from the record, so nothing secret stays at rest.

Files are JSON, mode 0600, in a 0700 directory, written atomically (temporary file,
fsync, rename); a claim is an ``O_EXCL`` create, so two processes racing for one key
cannot both send. The directory is ``$PREFECT_VENICE_HOME/jobs`` (default
``~/.prefect-venice/jobs``) unless a caller names another (a folder every worker
shares, for instance).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from .models import QueuedJob

__all__ = [
    "HOME_ENV",
    "JOURNAL_DIR_ENV",
    "JobJournal",
    "JobState",
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

JobState = Literal["sending", "queued", "saved"]
_STATES: tuple[JobState, ...] = ("sending", "queued", "saved")

# A queue id is matched against these before it is trusted as anything.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
_MAX_KEY = 1000
_ORPHAN_SECONDS = 60.0


class JournalError(ValueError):
    """A journal entry cannot be written or read (bad key, unreadable file)."""


@dataclass(frozen=True)
class JournalEntry:
    """One job's record: its key, its state and what is known of it so far."""

    key: str
    state: JobState
    model: str
    base_url: str
    created_at: str
    path: Path
    queue_id: str | None = None
    download_url: SecretStr | None = None
    sent_at: str | None = None
    saved: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def job(self, model: str | None = None) -> QueuedJob:
        """Return the queued job (state queued or saved), optionally under another model id."""
        if self.queue_id is None:
            raise JournalError(f"job {self.key!r} has no recorded queue answer.")
        return QueuedJob(
            model=model or self.model, queue_id=self.queue_id, download_url=self.download_url
        )


#: The Prefect setting that names a journal folder (shared by workers); the CLI honours it too.
JOURNAL_DIR_ENV = "PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR"


def jobs_dir() -> Path:
    """Return the journal folder (the CLI's and, by default, the flows').

    $PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR if set, else $PREFECT_VENICE_HOME/jobs,
    else ~/.prefect-venice/jobs.
    """
    named = os.environ.get(JOURNAL_DIR_ENV)
    if named:
        return Path(named).expanduser()
    home = os.environ.get(HOME_ENV) or str(Path.home() / ".prefect-venice")
    return Path(home).expanduser() / "jobs"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class JobJournal:
    """The job records in one directory (see the module docstring for the states)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else jobs_dir()

    def __repr__(self) -> str:
        return f"JobJournal({str(self.directory)!r})"

    # Paths --------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """Return the file of `key`'s record (named by a hash: a key may hold any text)."""
        if not key or len(key) > _MAX_KEY or "\x00" in key:
            raise JournalError(
                f"a job key must be 1 to {_MAX_KEY} characters without NUL (got {key[:40]!r})."
            )
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        return self.directory / f"{digest}.json"

    def ensure_directory(self) -> Path:
        """Create the directory (0700, each missing level) and tighten an existing one."""
        with contextlib.suppress(OSError):
            info = os.stat(self.directory)
            if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700:
                return self.directory  # the usual case: one system call, not one per level
        for level in reversed([self.directory, *self.directory.parents]):
            if not level.exists():
                with contextlib.suppress(FileExistsError):  # made meanwhile by another process
                    level.mkdir(mode=0o700)
        os.chmod(self.directory, 0o700)
        return self.directory

    # Reading ------------------------------------------------------------------------

    def get(self, key: str) -> JournalEntry | None:
        """Return `key`'s record, or None if there is none."""
        return self._read(self.path_for(key))

    def find_queue_id(self, queue_id: str) -> JournalEntry | None:
        """Return the newest record whose queue answer has this queue id, or None."""
        found: JournalEntry | None = None
        for entry in self.entries():
            if entry.queue_id == queue_id and (
                found is None or entry.created_at > found.created_at
            ):
                found = entry
        return found

    def entries(self) -> Iterator[JournalEntry]:
        """Yield every readable record in the directory (unreadable ones are skipped)."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.json")):
            try:
                entry = self._read(path)
            except JournalError:
                continue
            if entry is not None:
                yield entry

    def _read(self, path: Path) -> JournalEntry | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise JournalError(f"cannot read the job journal entry {path}: {exc}") from None
        return _entry_from(data, path)

    # Writing ------------------------------------------------------------------------

    def claim(self, key: str, *, model: str, base_url: str, **extra: Any) -> JournalEntry | None:
        """Record that the queue request for `key` is about to be sent.

        Returns None when the claim is made, or the record that already holds the key
        (the caller decides what it means). Atomic across processes: the file is
        created with O_EXCL, so of two racing claims exactly one wins.
        """
        path = self.path_for(key)
        self.ensure_directory()
        # A write takes milliseconds: a temporary file this old belongs to a killed one.
        self._remove_orphans(key, older_than=_ORPHAN_SECONDS)
        body = {
            "key": key,
            "state": "sending",
            "model": model,
            "base_url": base_url,
            "created_at": _now(),
            "sent_at": _now(),
            "extra": extra,
        }
        temporary = self._write_temporary(body)
        try:
            # link() refuses an existing name: the claim and its content appear together.
            os.link(temporary, path)
        except FileExistsError:
            return self.get(key) or self._retry_claim(key, model=model, base_url=base_url, **extra)
        finally:
            temporary.unlink(missing_ok=True)
        return None

    def _retry_claim(self, key: str, **fields: Any) -> JournalEntry | None:
        # The record vanished between link() and read (forgotten meanwhile): try once more.
        time.sleep(0.01)
        return self.claim(key, **fields)

    def answered(self, key: str, job: QueuedJob) -> JournalEntry:
        """Record Venice's queue answer for `key` (state queued); the link is kept, 0600."""
        body = self._body(key) or {"key": key, "created_at": _now()}
        link = job.download_url
        body.update(
            state="queued",
            model=job.model,
            queue_id=job.queue_id,
            download_url=None if link is None else link.get_secret_value(),
            answered_at=_now(),
        )
        body.setdefault("base_url", "")
        return self._replace(key, body)

    def saved(self, key: str, result: dict[str, Any]) -> JournalEntry | None:
        """Record that the MP4 is saved (state saved); the link stays until `cleaned`."""
        body = self._body(key)
        if body is None:
            return None
        body.update(state="saved", saved=result, saved_at=_now())
        return self._replace(key, body)

    def cleaned(self, key: str) -> JournalEntry | None:
        """Drop the private link from a saved record: nothing secret stays at rest.

        A record that holds no link (a public model's) is left as it is: there is
        nothing to drop, so nothing is written.
        """
        body = self._body(key)
        if body is None:
            return None
        path = self.path_for(key)
        if body.get("download_url") is None:
            return _entry_from(body, path)
        body["download_url"] = None
        body["cleaned_at"] = _now()
        # Not fsynced: the record's state does not change. Should the rename be lost to a
        # power cut, the link stays in the user-only file, as it was before this call.
        return self._replace(key, body, durable=False)

    def release(self, key: str) -> None:
        """Delete a `sending` claim whose request surely created no job (a refusal, 429, 500)."""
        current = self.get(key)
        if current is not None and current.state == "sending":
            self.path_for(key).unlink(missing_ok=True)

    def forget(self, key: str) -> bool:
        """Delete `key`'s record, whatever its state, and any half-written copy of it.

        A process killed between writing a record's temporary file and renaming it
        leaves that file behind, possibly holding a private link: it goes too.
        Returns True if there was a record.
        """
        path = self.path_for(key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        self._remove_orphans(key, older_than=0.0)
        return existed

    def _remove_orphans(self, key: str, *, older_than: float) -> None:
        """Delete temporary files of `key`'s record left by a killed writer (best effort)."""
        cutoff = time.time() - older_than
        with contextlib.suppress(OSError), os.scandir(self.directory) as listing:
            # scandir, not glob: every write lists the folder, which holds every record.
            for item in listing:
                if not (item.name.startswith(".") and item.name.endswith(".tmp")):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    if item.stat().st_mtime > cutoff:
                        continue
                    temporary = Path(item.path)
                    if json.loads(temporary.read_text(encoding="utf-8")).get("key") == key:
                        temporary.unlink()

    def prune_saved(self, older_than_seconds: float) -> int:
        """Delete saved records (they hold no secret) older than the given age; return how many."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in list(self.entries()):
            if entry.state == "saved" and entry.path.stat().st_mtime < cutoff:
                entry.path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _body(self, key: str) -> dict[str, Any] | None:
        """Return `key`'s record as written (checked like `get`), or None; one read."""
        path = self.path_for(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise JournalError(f"cannot read the job journal entry {path}: {exc}") from None
        _entry_from(data, path)  # raises JournalError for anything that is no record
        body: dict[str, Any] = data
        return body

    def _replace(self, key: str, body: dict[str, Any], *, durable: bool = True) -> JournalEntry:
        path = self.path_for(key)
        self.ensure_directory()
        self._remove_orphans(key, older_than=_ORPHAN_SECONDS)
        temporary = self._write_temporary(body, durable=durable)
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        entry = _entry_from(body, path)
        assert entry is not None
        return entry

    def _write_temporary(self, body: dict[str, Any], *, durable: bool = True) -> Path:
        temporary = self.directory / f".{secrets.token_hex(8)}.tmp"
        # O_EXCL: never reuse (or follow a symlink at) an existing name; 0600 from the first byte.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, indent=2)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary


def _entry_from(data: Any, path: Path) -> JournalEntry | None:
    fields = ("key", "state", "model", "created_at")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in fields):
        raise JournalError(f"the job journal entry {path} is not a job record.")
    if data["state"] not in _STATES:
        raise JournalError(f"the job journal entry {path} has an unknown state {data['state']!r}.")
    link = data.get("download_url")
    queue_id = data.get("queue_id")
    if (link is not None and not isinstance(link, str)) or (
        queue_id is not None and not (isinstance(queue_id, str) and _SAFE_ID.fullmatch(queue_id))
    ):
        raise JournalError(f"the job journal entry {path} has an unreadable queue answer.")
    saved = data.get("saved")
    extra = data.get("extra")
    return JournalEntry(
        key=data["key"],
        state=data["state"],
        model=data["model"],
        base_url=str(data.get("base_url") or ""),
        created_at=data["created_at"],
        path=path,
        queue_id=queue_id,
        download_url=None if link is None else SecretStr(link),
        sent_at=data.get("sent_at"),
        saved=saved if isinstance(saved, dict) else None,
        extra=extra if isinstance(extra, dict) else {},
    )


# The CLI's original entry points, keyed by queue id: kept for callers of the first API.


def entry_path(queue_id: str, directory: Path | None = None) -> Path:
    """Return the file of the record keyed `queue:<queue_id>`; JournalError for a bad id."""
    if not _SAFE_ID.fullmatch(queue_id):
        raise JournalError(f"queue id {queue_id!r} cannot name a journal entry.")
    return JobJournal(directory).path_for(f"queue:{queue_id}")


def record(job: QueuedJob, base_url: str, directory: Path | None = None) -> Path:
    """Record an already-answered queue call under the key `queue:<queue_id>`; return the file."""
    entry_path(job.queue_id, directory)  # refuses an id that is no file name
    journal = JobJournal(directory)
    key = f"queue:{job.queue_id}"
    journal.claim(key, model=job.model, base_url=base_url)
    return journal.answered(key, job).path


def load(queue_id: str, directory: Path | None = None) -> JournalEntry | None:
    """Return the newest record holding this queue id's answer, or None."""
    if not _SAFE_ID.fullmatch(queue_id):
        return None  # such an id was never recorded
    return JobJournal(directory).find_queue_id(queue_id)


def forget(queue_id: str, directory: Path | None = None) -> None:
    """Delete every record holding this queue id's answer."""
    journal = JobJournal(directory)
    for entry in list(journal.entries()):
        if entry.queue_id == queue_id:
            entry.path.unlink(missing_ok=True)
