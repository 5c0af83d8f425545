"""One video's use case, free of Prefect: check everything, quote, gate, queue once, save, clean up.

The CLI and the Prefect flows are adapters over these steps; none of them adds
logic of its own to what is checked before paying or to how the paid call is made.

1. :func:`check_money`, :func:`check_wait` and :func:`prepare_local_destination`
   (or :func:`check_storage_key`) refuse, before anything is paid, every input that
   would otherwise fail only after the paid call.
2. :func:`check_budget` stops a quote above the budget.
3. :func:`queue_once` sends the paid ``/video/queue`` at most once per job key,
   guarded by a record in the :class:`~prefect_venice.journal.JobJournal` written
   before the request leaves.
4. :meth:`LocalDestination.place` moves the checked MP4 into place without ever
   replacing a file it was not told to replace.
5. :func:`clean_up` revokes the private link and deletes the media on Venice.
6. :func:`resume_hint` and :func:`failure_after_queueing` say how to fetch a paid
   job after a failure, without a secret in the message.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ._base import DEFAULT_BASE_URL, without_userinfo
from ._redact import redact_url
from .client import VeniceClient
from .download import make_temp_file
from .errors import (
    BudgetExceededError,
    DestinationError,
    InvalidRequestError,
    JobFailedAfterQueueError,
    OutcomeUnknownError,
    UnconfirmedQueueError,
    VeniceError,
)
from .journal import JobJournal, JournalEntry
from .models import QueuedJob, QueueRequest

__all__ = [
    "DOWNLOAD_URL_ENV",
    "MIN_WAIT_SECONDS",
    "STAGING_DIR_NAME",
    "CleanupOutcome",
    "LocalDestination",
    "QueuedOnce",
    "check_budget",
    "check_file_name",
    "check_local_target",
    "check_money",
    "check_storage_key",
    "check_wait",
    "clean_up",
    "failure_after_queueing",
    "format_usd",
    "prepare_local_destination",
    "prepare_local_folder",
    "queue_once",
    "remove_partial_downloads",
    "remove_stale_staging",
    "request_fingerprint",
    "resume_hint",
    "wait_command",
]

#: Where `prefect-venice wait` reads a private model's download_url: a bearer secret
#: that must not sit in a command line (shell history, `ps`).
DOWNLOAD_URL_ENV = "VENICE_DOWNLOAD_URL"

STAGING_DIR_NAME = ".venice-staging"
"""Folder inside a local destination where MP4s wait before their final rename."""

MIN_WAIT_SECONDS = 1.0
"""The shortest wait accepted: Venice takes minutes, so less can only pay for nothing."""

#: A `.part` file untouched this long belongs to a download that was killed.
STALE_PART_SECONDS = 600.0
#: A staged MP4 left this long belongs to a run that was killed before moving it.
STALE_STAGED_SECONDS = 24 * 3600.0

_NOTHING_CHARGED = "nothing was queued or charged."


def format_usd(amount: float) -> str:
    """Format a price: cents where they are exact, else four decimals ($0.085 is not $0.09)."""
    return f"${amount:.2f}" if round(amount, 2) == amount else f"${amount:.4f}"


# Checks before paying -------------------------------------------------------------------


def check_money(value: float | None, name: str) -> None:
    """Refuse a budget that is not a finite amount of 0 or more (None: no budget)."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidRequestError(
            f"{name} must be a finite amount in USD, 0 or more (got {value!r})."
        )


def check_wait(value: float | None, name: str) -> None:
    """Refuse a wait that is not finite or shorter than MIN_WAIT_SECONDS (None: the default)."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < MIN_WAIT_SECONDS:
        raise InvalidRequestError(
            f"{name} must be a finite number of seconds, at least {MIN_WAIT_SECONDS:g} "
            f"(got {value!r}): a video takes minutes to make, so a shorter wait would pay for "
            "a video and give up on it."
        )


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def check_file_name(name: str, what: str = "filename") -> str:
    """Return `name` if it is a plain file name: no folder part, no `..`, no NUL, not absolute."""
    problem = None
    if not name:
        problem = "is empty"
    elif _has_control(name):
        problem = "contains a control character (NUL, newline, ...)"
    elif "/" in name or "\\" in name:
        problem = (
            "contains a path separator; give a plain file name and put the folder in output_dir"
        )
    elif name in (".", ".."):
        problem = "names a folder, not a file"
    elif len(name.encode("utf-8")) > 255:
        problem = "is longer than 255 bytes"
    if problem:
        raise DestinationError(f"{what} {name[:80]!r} {problem}; {_NOTHING_CHARGED}")
    return name


def check_storage_key(key: str, what: str = "filename") -> str:
    """Return `key` if it is a relative storage key that cannot leave the block's base path."""
    problem = None
    if not key:
        problem = "is empty"
    elif _has_control(key):
        problem = "contains a control character (NUL, newline, ...)"
    elif "\\" in key:
        problem = "contains a backslash; separate folders with '/'"
    elif key.startswith("/") or PurePosixPath(key).is_absolute() or "://" in key:
        problem = "is absolute; give a key relative to the storage block's base path"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        problem = "has an empty, '.' or '..' segment, which could leave the block's base path"
    if problem:
        raise DestinationError(f"{what} {key[:80]!r} {problem}; {_NOTHING_CHARGED}")
    return key


@dataclass(frozen=True)
class LocalDestination:
    """A checked local folder (and optional file name) that a video will be moved into."""

    directory: Path
    filename: str | None = None
    overwrite: bool = False
    #: Look for leftovers of killed runs in the staging folder after each placement.
    sweep: bool = True

    @property
    def staging_dir(self) -> Path:
        """Where the MP4 waits before its final rename (same file system as the folder)."""
        return self.directory / STAGING_DIR_NAME

    def final_path(self, queue_id: str) -> Path:
        """Return the file the video of `queue_id` is saved as."""
        return self.directory / (self.filename or f"{queue_id}.mp4")

    def place(self, staged: Path, queue_id: str) -> Path:
        """Move the checked MP4 at `staged` into place and return where it is.

        Never replaces an existing file unless `overwrite`: if one appeared since the
        check (another run, a user), the paid video is kept beside it under a name
        that adds its queue id, never lost and never written over the other file.
        With `sweep` (the default), leftovers of killed runs in the staging folder are
        then removed; a batch, which sweeps once before and once after, turns it off.
        """
        final = self.final_path(queue_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            if final.is_dir():
                raise DestinationError(f"{final} is a folder; the video is kept at {staged}.")
            os.replace(staged, final)
        else:
            final = _link_without_replacing(staged, final, queue_id)
            staged.unlink(missing_ok=True)
        _fsync_directory(final.parent)
        if self.sweep:
            # Other videos of a batch may be staging here: the folder itself stays.
            remove_stale_staging(self.staging_dir, remove_empty=False)
        return final


def _link_without_replacing(staged: Path, final: Path, queue_id: str) -> Path:
    def candidates() -> Iterator[Path]:
        # Made one at a time: the first is free nearly always, and fifty paths per video
        # cost a batch more CPU than its downloads.
        yield final
        yield final.with_name(f"{final.stem}-{queue_id}{final.suffix or '.mp4'}")
        for n in range(2, 50):
            yield final.with_name(f"{final.stem}-{queue_id}-{n}{final.suffix}")

    for candidate in candidates():
        try:
            # link() never replaces: it fails if the name exists, atomically.
            os.link(staged, candidate)
        except FileExistsError:
            continue
        return candidate
    raise DestinationError(f"No free file name next to {final}; the video is kept at {staged}.")


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_staging(staging_dir: Path, *, remove_empty: bool = True) -> None:
    """Delete leftovers of killed runs in a staging folder, then the folder if it is empty.

    A `.part` file untouched for STALE_PART_SECONDS, or a staged MP4 older than
    STALE_STAGED_SECONDS, belongs to a process that is gone (a live download keeps
    writing its `.part`). While other videos may still be staged there (inside a
    batch), pass `remove_empty=False`. Best effort: never raises.
    """
    now = time.time()
    with contextlib.suppress(OSError):
        for item in staging_dir.iterdir():
            with contextlib.suppress(OSError):
                age = now - item.stat().st_mtime
                stale = STALE_PART_SECONDS if item.name.endswith(".part") else STALE_STAGED_SECONDS
                if item.is_file() and age > stale:
                    item.unlink()
        if remove_empty:
            staging_dir.rmdir()  # only if empty; OSError otherwise


def remove_partial_downloads(staging_dir: Path, queue_id: str) -> None:
    """Delete the half-fetched files of one job before fetching it again (best effort).

    Only a killed attempt at the same job leaves them: whoever fetches a job now is
    the one attempt that resumes it.
    """
    with contextlib.suppress(OSError):
        for partial in staging_dir.glob(f".{queue_id}.mp4.*.part"):
            with contextlib.suppress(OSError):
                partial.unlink()


def prepare_local_destination(
    output_dir: str | os.PathLike[str],
    filename: str | None = None,
    *,
    overwrite: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> LocalDestination:
    """Check, before paying, that a video can be saved in `output_dir` (creating it).

    Refuses (DestinationError, nothing charged): a folder that is a file, cannot be
    created or written; a file name that is not a plain name; an existing file
    unless `overwrite`; a folder outside `root` when the operator set one (a relative
    `output_dir` is then taken inside `root`). Leftovers of killed runs in the
    staging folder are cleaned on the way.
    """
    path = prepare_local_folder(output_dir, root=root)
    return check_local_target(path, filename, overwrite=overwrite)


def prepare_local_folder(
    output_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> Path:
    """Check (creating) an output folder before paying and return it, resolved.

    The folder half of :func:`prepare_local_destination`: refuses a folder that is a
    file, cannot be created or written, or lies outside `root`; a probe file is written
    in its staging folder, whose leftovers of killed runs are removed. Requests of a
    batch that share a folder need this once.
    """
    text = os.fspath(output_dir)
    if not text or _has_control(text):
        raise DestinationError(f"output_dir {text[:80]!r} is empty or holds a control character.")
    path = Path(text).expanduser()
    if root is not None:
        base = Path(root).expanduser().resolve()
        path = (path if path.is_absolute() else base / path).resolve()
        if path != base and base not in path.parents:
            raise DestinationError(
                f"output_dir {text!r} is outside {base}, the only folder this worker saves "
                f"videos in (PREFECT_INTEGRATIONS_VENICE_OUTPUT_ROOT); {_NOTHING_CHARGED}"
            )
    else:
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise DestinationError(
            f"output_dir {text!r} exists and is not a folder; {_NOTHING_CHARGED}"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        staging = path / STAGING_DIR_NAME
        fd, probe = make_temp_file(staging, prefix=".probe-", suffix=".part")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DestinationError(
            f"output_dir {text!r} cannot be created or written ({exc.strerror or exc}); "
            f"{_NOTHING_CHARGED}"
        ) from None
    remove_stale_staging(staging)
    return path


def check_local_target(
    path: Path, filename: str | None = None, *, overwrite: bool = False
) -> LocalDestination:
    """Check a file name in a folder that prepare_local_folder checked; return the destination.

    The file half of :func:`prepare_local_destination`: refuses a file name that is not
    a plain name, names a folder, or names an existing file (unless `overwrite`).
    """
    destination = LocalDestination(path, filename, overwrite)
    if filename is not None:
        check_file_name(filename)
        final = path / filename
        if final.is_dir():
            raise DestinationError(
                f"filename {filename!r} names a folder in {path}; {_NOTHING_CHARGED}"
            )
        if final.exists() and not overwrite:
            raise DestinationError(
                f"{final} already exists; choose another filename or set overwrite to replace "
                f"it; {_NOTHING_CHARGED}"
            )
    return destination


def check_budget(quote_usd: float, max_usd: float | None, *, subject: str) -> None:
    """Raise BudgetExceededError, naming both amounts, when the quote is above the budget."""
    if max_usd is not None and quote_usd > max_usd:
        raise BudgetExceededError(
            f"The quote of {format_usd(quote_usd)} for {subject} is above the budget of "
            f"{format_usd(max_usd)}; {_NOTHING_CHARGED}"
        )


# Queueing once --------------------------------------------------------------------------


def request_fingerprint(request: QueueRequest) -> str:
    """Hash a queue request: under one job key, only the same request may resume a job."""
    payload = request.model_dump_json(exclude_none=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class QueuedOnce:
    """What queue_once did: the job, its journal record, and whether it was found, not sent."""

    job: QueuedJob
    entry: JournalEntry
    resumed: bool


def queue_once(
    client: VeniceClient,
    request: QueueRequest,
    *,
    key: str,
    journal: JobJournal,
    before_send: Callable[[], None] | None = None,
    quote_usd: float | None = None,
) -> QueuedOnce:
    """Send the paid queue request for `key` at most once, whatever happened before.

    - No record: claim the key (state ``sending``, written before the request
      leaves), call `before_send` (pacing), send, record the answer at once.
    - A ``queued`` or ``saved`` record: return its job; nothing is sent.
    - A ``sending`` record: an earlier attempt may have been charged and its answer
      was lost; raise UnconfirmedQueueError and send nothing.

    A refusal that surely created no job (any HTTP answer other than success, or a
    connection that never opened) releases the claim; an unknown outcome keeps it.
    The request must already be validated (this sends it with validate=False).
    `quote_usd`, when known, is kept in the record, so the charge Venice reports later
    can be compared with it (prefect_venice.billing).
    """
    fingerprint = request_fingerprint(request)
    existing = journal.get(key) or journal.claim(
        key,
        model=request.model,
        base_url=client.base_url,
        fingerprint=fingerprint,
        quote_usd=quote_usd,
    )
    if existing is not None:
        return QueuedOnce(_resume(existing, fingerprint), existing, resumed=True)
    try:
        if before_send is not None:
            before_send()
    except BaseException:
        journal.release(key)  # nothing was sent
        raise
    try:
        job = client.queue(request, validate=False)
    except OutcomeUnknownError as exc:
        sent = journal.get(key)
        when = sent.sent_at if sent is not None and sent.sent_at else "just now"
        raise UnconfirmedQueueError(
            f"{exc.message} It was sent at {when} (UTC); its record is kept under job key "
            f"{key!r} (journal {journal.directory}), so no later attempt with this key pays "
            "blindly."
        ) from None
    except VeniceError:
        journal.release(key)  # Venice answered, and not with a job
        raise
    return QueuedOnce(job, journal.answered(key, job), resumed=False)


def _resume(entry: JournalEntry, fingerprint: str) -> QueuedJob:
    recorded = entry.extra.get("fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise InvalidRequestError(
            f"Job key {entry.key!r} already belongs to a different request (model "
            f"{entry.model}); give this request its own job key. {_NOTHING_CHARGED.capitalize()}"
        )
    if entry.state == "sending":
        raise UnconfirmedQueueError(
            f"Job key {entry.key!r}: a queue request for {entry.model} was sent at "
            f"{entry.sent_at or entry.created_at} (UTC) by an attempt that recorded no answer "
            "(it was killed, or the answer was lost), so a video may have been created and "
            f"charged. No request was sent this time. The record is {entry.path}."
        )
    return entry.job()


# After a failure ------------------------------------------------------------------------


def wait_command(selector: list[str], output: str = "DIR", base_url: str | None = None) -> str:
    """Return a `prefect-venice wait` command line; `output` is quoted unless it is "DIR"."""
    parts = ["prefect-venice", "wait", *selector, "--output"]
    command = shlex.join(parts) + " " + (output if output == "DIR" else shlex.quote(output))
    if base_url is not None and base_url != DEFAULT_BASE_URL:
        # A base URL may carry user:password@; a message never does.
        command += f" --base-url {shlex.quote(without_userinfo(base_url))}"
    return command


def resume_hint(
    job: QueuedJob, *, output: str = "DIR", base_url: str | None = None, journaled: bool = True
) -> str:
    """Say how to fetch a paid job outside the failed run, with no secret in the text."""
    if job.download_url is None:
        command = wait_command(["--model", job.model, "--queue-id", job.queue_id], output, base_url)
        return (
            f"Outside Prefect, resume it from the shell (key in VENICE_API_KEY): {command}; or "
            "from Python: VeniceClient.wait_for_video("
            f"QueuedJob(model={job.model!r}, queue_id={job.queue_id!r}), destination)."
        )
    if journaled:
        command = wait_command(["--queue-id", job.queue_id], output, base_url)
        return (
            "This private model's one-time download link is kept only in the job journal "
            "(a user-only file) on the machine that queued it: retry there, or run "
            f"{command} there (elsewhere `prefect-venice wait` needs the link in "
            f"{DOWNLOAD_URL_ENV})."
        )
    return (
        "This private model's download link was sent only once and could not be recorded, "
        "so the video cannot be fetched again."
    )


def failure_after_queueing(
    job: QueuedJob, error: BaseException, *, base_url: str | None = None
) -> JobFailedAfterQueueError:
    """Name the paid job in the failure, with how to resume it; any link is redacted."""
    detail = str(error)
    if job.download_url is not None:
        link = job.download_url.get_secret_value()
        detail = detail.replace(link, redact_url(link))
    return JobFailedAfterQueueError(
        f"Video {job.queue_id} ({job.model}) was queued and paid for, then failed with "
        f"{type(error).__name__}: {detail.rstrip()} {resume_hint(job, base_url=base_url)}",
        queue_id=job.queue_id,
        retryable=isinstance(error, VeniceError) and error.retryable,
    )


# Clean-up -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanupOutcome:
    """What the clean-up did: True done, False already gone, None not asked (or no link)."""

    link_revoked: bool | None = None
    media_deleted: bool | None = None


def clean_up(
    client: VeniceClient, job: QueuedJob, *, revoke_link: bool = True, complete: bool = True
) -> CleanupOutcome:
    """Revoke a private link and delete the media on Venice, as asked (run after the save)."""
    revoked = client.revoke(job.download_url) if revoke_link and job.download_url else None
    completed = client.complete(job) if complete else None
    return CleanupOutcome(link_revoked=revoked, media_deleted=completed)
