"""What earlier jobs of the same shape took: per-shape completion history and the jobs in flight.

A job's *shape* is what its run time depends on that the client can know before
queueing it: model, duration, resolution and audio. Venice's own estimate
(`average_execution_time`) is per model, so a 10 s 1080p job and a 5 s 480p job of
one model get the same estimate; the history here is per shape.

Venice never says when a job finished: a PROCESSING answer carries how long the job
has run (`execution_duration`), and a finished job answers with its video. A job's
completion is therefore known to lie between the execution time of its last
PROCESSING answer and that time plus the seconds until the first answer that found
it done; the history keeps that bracket and its midpoint is used. With dense polls
near the end (the schedule of prefect_venice.polling) the bracket is tight.

Completions are kept per shape (the last :data:`HISTORY_PER_SHAPE`) in
`$PREFECT_VENICE_HOME/polling/history.json`, shared by every process on the machine
under a lock like the pacing accounts, plus an in-process copy. Writing the file is
best effort: it never fails or delays a wait by more than a few milliseconds.

The :class:`JobTracker` (one per process, :data:`TRACKER`) remembers, per queue id,
the shape and queue time of jobs this process queued and the last PROCESSING answer
of each job it polled. The clients feed it from `queue` and `retrieve`, so every wait
(client, CLI, Prefect task) learns without passing anything along.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .pacing import pacing_dir

try:  # POSIX: share the history between processes; elsewhere, within this process only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "HISTORY_PER_SHAPE",
    "TRACKER",
    "CompletionHistory",
    "JobShape",
    "JobTracker",
    "TrackedJob",
    "history_file",
]

#: Completions kept per shape (the newest).
HISTORY_PER_SHAPE = 50
#: Shapes kept in the file (the most recently updated).
_MAX_SHAPES = 300
#: Jobs the tracker remembers (the most recently seen).
_MAX_TRACKED = 10_000
#: A bracket wider than this fraction of its upper end says too little to be kept.
_MAX_BRACKET = 0.5
#: Attempts (and the pause between them) to take the file's lock before giving up.
_LOCK_ATTEMPTS = 10
_LOCK_PAUSE = 0.002
#: A job not polled for this long is no longer waited on (for `JobTracker.running`).
_STALE = 300.0
#: Seconds between two looks at the file for other processes' completions.
_RECHECK = 0.5


def history_file() -> Path:
    """Return the shared history file, $PREFECT_VENICE_HOME/polling/history.json."""
    # The same home as the pacing accounts (and its resolution rules).
    return pacing_dir().parent / "polling" / "history.json"


@dataclass(frozen=True)
class JobShape:
    """What a job's run time depends on: model, duration, resolution and audio."""

    model: str
    duration: str | None = None
    resolution: str | None = None
    audio: bool | None = None

    @classmethod
    def of(cls, request: Any) -> JobShape:
        """Return the shape of a QueueRequest or QuoteRequest (anything with these attributes)."""
        return cls(
            model=str(request.model),
            duration=getattr(request, "duration", None),
            resolution=getattr(request, "resolution", None),
            audio=getattr(request, "audio", None),
        )

    def key(self, api: str) -> str:
        """Return the history key of this shape on the API at base URL `api`.

        The API is part of the key (as a short digest) so that an emulator's
        time-scaled jobs never teach the schedule of the real service.
        """
        digest = hashlib.sha256(api.encode()).hexdigest()[:12]
        audio = "" if self.audio is None else str(self.audio).lower()
        return f"{digest}|{self.model}|{self.duration or ''}|{self.resolution or ''}|{audio}"


class CompletionHistory:
    """Per-shape completion times (seconds of execution), in a shared file and in memory."""

    def __init__(self, path: Path | None, *, per_shape: int = HISTORY_PER_SHAPE) -> None:
        self.path = path
        self.per_shape = per_shape
        self._lock = threading.Lock()
        self._shapes: dict[str, list[list[float]]] = {}
        self._loaded_stamp: tuple[int, int] | None = None
        self._checked = -1e9
        self._version = 0

    @property
    def version(self) -> int:
        """A number that changes whenever the samples of some shape may have changed."""
        return self._version

    def samples(self, key: str) -> list[float]:
        """Return the completion times of a shape (bracket midpoints), oldest first."""
        with self._lock:
            self._refresh()
            return [(lo + hi) / 2 for lo, hi, *_ in self._shapes.get(key, [])]

    def record(self, key: str, lower: float, upper: float) -> bool:
        """Add one completion, known to lie in [lower, upper] seconds of execution.

        Returns False (and keeps nothing) when the bracket is too wide to say much.
        The in-process copy is updated at once; the file is written if its lock can
        be had within a few milliseconds, and any failure to write is ignored.
        """
        if not 0 <= lower <= upper or upper <= 0 or upper - lower > _MAX_BRACKET * upper:
            return False
        entry = [round(lower, 3), round(upper, 3), round(time.time(), 1)]
        with self._lock:
            self._add(self._shapes, key, entry)
            self._version += 1
            with contextlib.suppress(OSError, ValueError, TypeError):
                self._write(key, entry)
        return True

    def _add(self, shapes: dict[str, list[list[float]]], key: str, entry: list[float]) -> None:
        kept = shapes.setdefault(key, [])
        kept.append(entry)
        del kept[: max(0, len(kept) - self.per_shape)]

    def _stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _refresh(self) -> None:
        """Reload the file when another process (or this one) changed it."""
        now = time.monotonic()
        if self._loaded_stamp is not None and now - self._checked < _RECHECK:
            return
        self._checked = now
        stamp = self._stamp()
        if stamp is None or stamp == self._loaded_stamp:
            return
        with self._locked(exclusive=False) as handle:
            if handle is None:
                return
            handle.seek(0)
            loaded = _parse(handle.read(), self.per_shape)
        # Keep what this process recorded but could not write.
        for key, entries in self._shapes.items():
            on_disk = {tuple(e) for e in loaded.get(key, [])}
            for entry in entries:
                if tuple(entry) not in on_disk:
                    self._add(loaded, key, entry)
        for entries in loaded.values():
            entries.sort(key=lambda e: e[2] if len(e) > 2 else 0.0)
        self._shapes = loaded
        self._loaded_stamp = stamp
        self._version += 1

    def _write(self, key: str, entry: list[float]) -> None:
        with self._locked(exclusive=True) as handle:
            if handle is None:
                return
            handle.seek(0)
            data = _parse(handle.read(), self.per_shape)
            self._add(data, key, entry)
            if len(data) > _MAX_SHAPES:  # drop the shapes updated longest ago
                newest = sorted(data, key=lambda k: max(e[2] for e in data[k]), reverse=True)
                data = {k: data[k] for k in newest[:_MAX_SHAPES]}
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"version": 1, "shapes": data}, separators=(",", ":")))
            handle.flush()
        self._loaded_stamp = None  # reload (and merge) on the next read

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[IO[str] | None]:
        """Open and lock the file; yield None when it cannot be had quickly."""
        if self.path is None or fcntl is None:
            yield None
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield None
            return
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            for attempt in range(_LOCK_ATTEMPTS):
                try:
                    fcntl.flock(fd, mode)
                    break
                except OSError:
                    if attempt == _LOCK_ATTEMPTS - 1:
                        yield None  # another process holds it: never wait long
                        return
                    time.sleep(_LOCK_PAUSE)
            try:
                yield handle
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


def _parse(text: str, per_shape: int) -> dict[str, list[list[float]]]:
    """Read the shapes of a history file; anything unreadable is skipped (a corrupt file: none)."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    shapes = data.get("shapes") if isinstance(data, dict) else None
    if not isinstance(shapes, dict):
        return {}
    result: dict[str, list[list[float]]] = {}
    for key, entries in shapes.items():
        if not isinstance(key, str) or not isinstance(entries, list):
            continue
        kept = [
            [float(v) for v in e[:3]]
            for e in entries
            if isinstance(e, list)
            and len(e) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in e[:3])
            and 0 <= e[0] <= e[1]
        ]
        if kept:
            result[key] = [e if len(e) == 3 else [*e, 0.0] for e in kept[-per_shape:]]
    return result


_histories_lock = threading.Lock()
_histories: dict[Path | None, CompletionHistory] = {}


def shared_history() -> CompletionHistory:
    """Return the process's history for the current $PREFECT_VENICE_HOME (one per file)."""
    try:
        path: Path | None = history_file()
    except RuntimeError:  # no home directory: keep it in memory only
        path = None
    with _histories_lock:
        history = _histories.get(path)
        if history is None:
            history = _histories[path] = CompletionHistory(path)
        return history


@dataclass
class TrackedJob:
    """What this process knows of one job: its shape, when it was queued, its last answer."""

    api: str
    model: str
    shape: JobShape | None = None
    queued_at: float | None = None
    """Monotonic time the queue answer arrived, when this process queued the job."""
    anchor: tuple[float, float] | None = None
    """(monotonic time the last PROCESSING poll was sent, its execution seconds)."""
    estimate: float | None = None
    """Venice's last `average_execution_time` for the job's model, in seconds."""
    prioritize: bool = False
    """A wait on this job asked for its polls to be ranked (see pacing.Frontier)."""
    priority: Callable[[float], float] | None = None
    """Given a monotonic time, how likely the job is to have finished since its last poll."""
    done: bool = False
    _key: tuple[JobShape, str] | None = field(default=None, repr=False)

    def execution_seconds(self, now: float) -> float | None:
        """Return the job's execution time at monotonic `now`, as best known."""
        if self.anchor is not None:
            sent, seconds = self.anchor
            return seconds + max(0.0, now - sent)
        if self.queued_at is not None:
            return max(0.0, now - self.queued_at)
        return None

    def history_key(self) -> str | None:
        """Return the key of the job's shape in the history, if its shape is known."""
        if self.shape is None:
            return None
        if self._key is None or self._key[0] != self.shape:
            self._key = (self.shape, self.shape.key(self.api))
        return self._key[1]


class JobTracker:
    """Per-process record of jobs queued and polled, fed by the clients (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, TrackedJob] = OrderedDict()
        self._estimates: dict[tuple[str, str], float] = {}
        #: Polled, unfinished jobs per shape key (for `running`, without a scan of all).
        self._polled: dict[str, set[str]] = {}

    def get(self, queue_id: str) -> TrackedJob | None:
        """Return the job's record, if this process has seen it."""
        with self._lock:
            return self._jobs.get(queue_id)

    def _entry(self, queue_id: str, api: str, model: str) -> TrackedJob:
        job = self._jobs.get(queue_id)
        if job is None:
            job = self._jobs[queue_id] = TrackedJob(api=api, model=model)
            while len(self._jobs) > _MAX_TRACKED:
                self._jobs.popitem(last=False)
        self._jobs.move_to_end(queue_id)
        return job

    def queued(self, api: str, queue_id: str, shape: JobShape) -> None:
        """Remember that a job of this shape was just queued on the API at `api`."""
        with self._lock:
            job = self._entry(queue_id, api, shape.model)
            job.shape, job.queued_at = shape, self.clock()

    def describe(self, api: str, queue_id: str, model: str, shape: JobShape | None) -> TrackedJob:
        """Make sure the job is tracked (a resumed job), with its shape when the caller knows it."""
        with self._lock:
            job = self._entry(queue_id, api, model)
            if shape is not None and job.shape is None:
                job.shape = shape
            return job

    def processing(
        self, api: str, queue_id: str, model: str, sent: float, seconds: float, estimate: float
    ) -> None:
        """Remember that a poll sent at monotonic `sent` found the job running `seconds`."""
        with self._lock:
            job = self._entry(queue_id, api, model)
            job.anchor = (sent, max(0.0, seconds))
            key = job.history_key()
            if key is not None and not job.done:
                self._polled.setdefault(key, set()).add(queue_id)
            if estimate > 0:
                job.estimate = estimate
                self._estimates[api, model] = estimate

    def finished(self, api: str, queue_id: str, model: str, sent: float) -> None:
        """Record the completion bracket of a job a poll sent at monotonic `sent` found done."""
        with self._lock:
            job = self._entry(queue_id, api, model)
            if job.done:
                return
            job.done = True
            key, anchor = job.history_key(), job.anchor
            if key is not None:
                self._polled.get(key, set()).discard(queue_id)
        if key is not None and anchor is not None:
            last_sent, lower = anchor
            shared_history().record(key, lower, lower + max(0.0, sent - last_sent))

    def running(self, key: str, now: float) -> list[float]:
        """Return the execution times at `now` of polled jobs of this shape key still running."""
        times = []
        with self._lock:
            polled = self._polled.get(key, set())
            for queue_id in list(polled):
                job = self._jobs.get(queue_id)
                if job is None or job.done or job.anchor is None:
                    polled.discard(queue_id)
                elif now - job.anchor[0] > _STALE:
                    polled.discard(queue_id)  # its wait ended unseen (a timeout, an error)
                else:
                    times.append(job.anchor[1] + max(0.0, now - job.anchor[0]))
        return times

    def last_estimate(self, api: str, model: str) -> float | None:
        """Venice's last estimate for this model seen by this process, in seconds."""
        with self._lock:
            return self._estimates.get((api, model))


#: The process's tracker, fed by VeniceClient and AsyncVeniceClient.
TRACKER = JobTracker()
