"""Pacing of /video/queue and /video/retrieve to Venice's per-key limits, read from its headers.

Venice allows 40 queue and 120 retrieve requests a minute per API key and says so on
every answer: `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` and
`x-ratelimit-reset-requests` (when the window resets, Unix time). A :class:`Pacer`
keeps that account per key, API and endpoint, in a small state file that every
process on the machine shares under an exclusive lock, so a batch's threads and
several runs on one worker together spend the allowance without a 429:

- a call takes one request of the window's remaining allowance, or waits for the
  reset when none is left;
- every answer's headers correct the account (the server's count includes calls
  made by other machines with the same key);
- before the first answer (or after a reset, while the new window's size is known
  but its end is not) at most the window's limit is spent, one probe at a time
  until the limit is known.

No configuration is needed: the limits and windows are whatever the API reports, so
the same code paces the real API and a time-scaled emulator. The key itself is never
written: files are named by a hash of key, API and endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:  # POSIX: share the account between processes; elsewhere, between threads only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PACED_ENDPOINTS", "Budget", "Frontier", "Pacer", "pacing_dir"]

#: The endpoints Venice limits per key (requests a minute: 40 and 120).
PACED_ENDPOINTS = ("queue", "retrieve")

#: Longest single sleep while waiting for a window, so a wrong reset never stalls long.
_MAX_SLEEP = 5.0
#: The last part of a window (this fraction of its length) in which no call is started.
_CLOSING = 0.05
#: ... and at least this many seconds of it (at most a quarter of the window): a call
#: taken in time but sent late by a busy interpreter (a batch's hundred threads) is
#: counted in the next window. Venice's 60 s windows are guarded by their 3 s; a
#: time-scaled emulator's 0.6 s ones only by 30 ms.
_CLOSING_FLOOR = 0.1
#: Two answers whose reset times differ by less than this describe the same window.
_SAME_WINDOW = 0.05
#: A probe (first call before any header is known) that gives no answer this long is over
#: (its process may have been killed): headers arrive before any body, within seconds.
_PROBE_TIMEOUT = 5.0


def _closing_seconds(window: float) -> float:
    """Seconds before a window's end in which no call is started (see _CLOSING)."""
    return max(_CLOSING * window, min(_CLOSING_FLOOR, window / 4))


def pacing_dir() -> Path:
    """Return the folder of the shared accounts, $PREFECT_VENICE_HOME/pacing."""
    home = os.environ.get("PREFECT_VENICE_HOME") or str(Path.home() / ".prefect-venice")
    return Path(home).expanduser() / "pacing"


@dataclass
class _Account:
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    #: The end of the last window an answer described (kept after the window rolls over).
    last_reset: float | None = None
    #: The shortest window seen (seconds between two windows' ends), once two were seen.
    window: float | None = None
    probe_until: float = 0.0
    #: The API sent no rate-limit headers: calls are not held back until then.
    blind_until: float = 0.0

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> _Account:
        def number(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, (int, float)) else None

        limit, remaining = number("limit"), number("remaining")
        return cls(
            limit=None if limit is None else int(limit),
            remaining=None if remaining is None else int(remaining),
            reset=number("reset"),
            last_reset=number("last_reset"),
            window=number("window"),
            probe_until=number("probe_until") or 0.0,
            blind_until=number("blind_until") or 0.0,
        )


class Pacer:
    """Spends one endpoint's per-key allowance across the threads and processes of a machine."""

    def __init__(
        self,
        state_file: Path | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_file = state_file
        self.clock = clock
        self._thread_lock = threading.Lock()
        self._memory = _Account()
        self._handle: IO[str] | None = None
        self.frontier = Frontier(self)
        """Ranks this process's waiting calls when the allowance is short."""

    @classmethod
    def for_endpoint(cls, api_key: str, base_url: str, endpoint: str) -> Pacer:
        """Return the process's pacer for this key, API and endpoint (shared file on disk)."""
        digest = hashlib.sha256(f"{api_key}\n{base_url}\n{endpoint}".encode()).hexdigest()[:24]
        with _registry_lock:
            pacer = _registry.get(digest)
            if pacer is None:
                pacer = cls(_state_file(digest))
                _registry[digest] = pacer
            return pacer

    def reserve(self) -> float:
        """Take one request of the allowance and return 0, or return how long to wait first.

        Call again after waiting: the reservation is made only when 0 is returned.
        """
        with self._account() as account:
            now = self.clock()
            if account.reset is not None and now >= account.reset:
                # A new window: its size is known, its end is not (the next answer says).
                account.remaining, account.reset = account.limit, None
                # (last_reset keeps the old end, so its late answers are told apart)
            if account.limit is None or account.remaining is None:
                if account.blind_until > now:
                    return 0.0
                if account.probe_until > now:
                    return min(0.05, account.probe_until - now)
                account.probe_until = now + _PROBE_TIMEOUT
                return 0.0
            closing = (
                account.reset is not None
                and account.window is not None
                and now > account.reset - _closing_seconds(account.window)
            )
            if account.remaining > 0 and not closing:
                account.remaining -= 1
                return 0.0
            if closing and account.reset is not None:
                # Sent now, the call could reach the server after the window rolls over
                # and be counted in the next one, which this account would then overspend.
                return min(_MAX_SLEEP, max(0.001, account.reset - now))
            if account.reset is None:
                # Spent, and the window's end unknown until an answer arrives.
                return 0.05
            return min(_MAX_SLEEP, max(0.0, account.reset - now))

    def budget(self) -> Budget | None:
        """Return what is left of the current window, without taking any of it (None: not known)."""
        with self._account() as account:
            now = self.clock()
            if account.limit is None or account.remaining is None or account.reset is None:
                return None
            if now >= account.reset:
                return None  # a new window whose end is not known yet
            return Budget(
                limit=account.limit,
                remaining=account.remaining,
                resets_in=account.reset - now,
                window=account.window,
            )

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Correct the account from an answer's `x-ratelimit-*` headers (None: no answer came).

        An answer without the headers means the API does not report its limits: calls
        are then not held back for a minute (the client's 429 handling still applies).
        """
        if headers is None:
            with self._account() as account:
                account.probe_until = 0.0  # the probe is over, with nothing learned
            return
        limit = _int(headers.get("x-ratelimit-limit-requests"))
        remaining = _int(headers.get("x-ratelimit-remaining-requests"))
        reset = _reset_time(headers.get("x-ratelimit-reset-requests"))
        if limit is None or remaining is None or reset is None:
            with self._account() as account:
                if account.limit is None:
                    account.probe_until = 0.0
                    account.blind_until = self.clock() + 60.0
            return
        with self._account() as account:
            account.probe_until = 0.0
            known_end = account.reset if account.reset is not None else account.last_reset
            if known_end is not None and reset < known_end - _SAME_WINDOW:
                # A late answer from a window that has ended since. Taken for the current
                # one, it set the account's end back into the past, and the next call
                # opened a fresh allowance beside the one being spent (answers of 429).
                return
            if known_end is not None and reset <= known_end + _SAME_WINDOW:
                if account.reset is None:
                    return  # a late answer from a window that has ended since
                # The same window: the server has not seen the calls still under way,
                # which this account has already deducted.
                account.remaining = min(remaining, account.remaining or 0)
                reset = max(reset, known_end)
            else:
                # A newer window; calls started in it before this answer are deducted too.
                local = account.remaining if account.reset is None else None
                account.remaining = remaining if local is None else min(remaining, local)
                if account.last_reset is not None and reset > account.last_reset:
                    # Windows are at least this long: the gap between two windows' ends.
                    gap = reset - account.last_reset
                    account.window = gap if account.window is None else min(account.window, gap)
            account.limit, account.reset, account.last_reset = limit, reset, reset

    @contextlib.contextmanager
    def _account(self) -> Iterator[_Account]:
        with self._thread_lock:
            handle = self._open()
            if handle is None:
                yield self._memory
                return
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                handle.seek(0)
                before = handle.read()
                try:
                    account = _Account.load(json.loads(before or "{}"))
                except ValueError:
                    account = _Account()
                yield account
                after = json.dumps(account.__dict__)
                if after != before:
                    handle.seek(0)
                    handle.truncate()
                    handle.write(after)
                    handle.flush()
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _open(self) -> IO[str] | None:
        # Opened once and kept: every call takes the lock, none reopens the file.
        if self._handle is not None or self.state_file is None or fcntl is None:
            return self._handle
        try:
            self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.state_file, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self.state_file = None  # unwritable home: pace within this process only
            return None
        self._handle = os.fdopen(fd, "r+", encoding="utf-8")
        return self._handle


@dataclass(frozen=True)
class Budget:
    """The state of one window of an endpoint's allowance."""

    limit: int
    remaining: int
    resets_in: float
    """Seconds until the window ends."""
    window: float | None
    """The window's length, once two windows were seen."""


#: Share of the allowance still due pro rata for the rest of a window that the frontier keeps
#: back while several calls wait, so that later, likelier calls still find a slot.
_HOLD_BACK = 0.5
#: A waiting call not heard from for this long has gone (its task was cancelled).
_TICKET_TIMEOUT = 10.0
#: Longest pause of a call that the frontier holds back.
_MAX_HOLD = 0.25


@dataclass
class _Ticket:
    priority: float
    order: int
    seen: float


class Frontier:
    """Gives an endpoint's slots to this process's waiting calls, likeliest first.

    Every call of a wait (see polling.WaitClock) comes with its priority: how likely
    its job is to have finished since its last poll. While the window's allowance is
    plenty, or not known (no rate-limit headers, a new window), calls go straight to
    the pacer as before. Once it runs short, the frontier keeps back part of what is
    left for the rest of the window (`_HOLD_BACK` of its pro-rata share) and lets the
    rest through to the highest priorities first; the others pause briefly and ask
    again, their priority growing as time passes. The pacing file and its protocol
    are unchanged: other processes see only the calls made.
    """

    def __init__(self, pacer: Pacer, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacer = pacer
        self.clock = clock
        self._lock = threading.Lock()
        self._tickets: dict[object, _Ticket] = {}
        self._order = 0
        self._budget: Budget | None = None
        self._budget_at = -1e9
        self._longest_window = 0.0

    def delay(self, ticket: object, priority: float) -> float:
        """Take a slot for the call `ticket` (0) or return how long it should pause first.

        Call `leave(ticket)` once the call is made or abandoned.
        """
        now = self.clock()
        with self._lock:
            mine = self._tickets.get(ticket)
            if mine is None:
                self._order += 1
                mine = self._tickets[ticket] = _Ticket(priority, self._order, now)
            mine.priority, mine.seen = priority, now
            for key in [k for k, t in self._tickets.items() if now - t.seen > _TICKET_TIMEOUT]:
                del self._tickets[key]
            rank = sum(
                1
                for t in self._tickets.values()
                if (t.priority, -t.order) > (mine.priority, -mine.order)
            )
            budget = self._current_budget(now)
            if budget is not None:
                free, hold = self._free(budget)
                if rank >= free:
                    return min(_MAX_HOLD, hold * (1 + rank - max(free, 0)))
        delay = self.pacer.reserve()
        if delay <= 0:
            with self._lock:
                self._tickets.pop(ticket, None)
                if self._budget is not None:
                    self._budget = _spent(self._budget)
        return delay

    def leave(self, ticket: object) -> None:
        """Forget a call that no longer waits."""
        with self._lock:
            self._tickets.pop(ticket, None)

    def _current_budget(self, now: float) -> Budget | None:
        # Read the shared account at most every few milliseconds, not on every ask.
        if self._budget is None or now - self._budget_at > 0.01:
            self._budget, self._budget_at = self.pacer.budget(), now
            if self._budget is not None:
                self._longest_window = max(self._longest_window, self._budget.resets_in)
        return self._budget

    def _free(self, budget: Budget) -> tuple[int, float]:
        """Slots that may go now, and the pause after which one more is released."""
        window = budget.window or self._longest_window or budget.resets_in
        share = min(1.0, budget.resets_in / window) if window > 0 else 0.0
        kept = math.floor(_HOLD_BACK * budget.limit * share)
        release = window / max(1.0, _HOLD_BACK * budget.limit)
        return budget.remaining - kept, max(0.001, min(_MAX_HOLD, release))


def _spent(budget: Budget) -> Budget:
    return Budget(budget.limit, max(0, budget.remaining - 1), budget.resets_in, budget.window)


_registry_lock = threading.Lock()
_registry: dict[str, Pacer] = {}


def _state_file(digest: str) -> Path | None:
    try:
        return pacing_dir() / f"{digest}.json"
    except RuntimeError:  # no home directory
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _reset_time(value: str | None) -> float | None:
    try:
        reset = float(value) if value is not None else None
    except ValueError:
        return None
    if reset is not None and reset > 1e11:  # milliseconds since the epoch
        reset /= 1000.0
    return reset
