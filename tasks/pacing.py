"""Pacing of Venice calls through Prefect global concurrency limits, shared by every worker.

Two kinds of limit are understood, told apart by the limit itself:

- **Window limits** (no slot decay, what `prefect-venice limits` creates): each call
  leases one slot for `WINDOW_LEASE_SECONDS` (Venice's 60 s window plus a second) and
  never gives it back early; the Prefect server's lease repossessor frees it. At most
  `limit` calls therefore start in any window of that length, across every worker,
  and a burst of the whole allowance goes at once (40 queue calls, then the next
  when the first call's minute is over), which is the most Venice's limits allow.
- **Rate limits** (slot decay, `prefect gcl create NAME --slot-decay-per-second R`):
  Prefect's `rate_limit`, a token bucket. Kept for limits created that way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Literal

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL

from prefect_venice.errors import InvalidRequestError
from prefect_venice.pacing import pacing_dir
from prefect_venice.retry import RetryPolicy

try:  # POSIX: one waiter per machine asks the server; elsewhere every waiter asks.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_QUEUE_LIMIT",
    "DEFAULT_RETRIEVE_LIMIT",
    "WINDOW_LEASE_SECONDS",
    "RateLimitSpec",
    "check_rate_limit",
    "ensure_rate_limits",
    "pace",
    "paced_retry_policy",
    "rate_limit_specs",
]

DEFAULT_QUEUE_LIMIT = "venice-queue"
DEFAULT_RETRIEVE_LIMIT = "venice-retrieve"

#: How long a call holds its slot of a window limit: Venice's 60 s window, plus two
#: seconds for the time between taking the slot and Venice counting the request (a
#: busy machine can deschedule a process between the two).
#: (Prefect's lease API accepts 60 s at least.)
WINDOW_LEASE_SECONDS = 62.0

LimitKind = Literal["window", "rate"]

#: Answers of an overloaded Prefect server on which taking a slot is simply retried.
_SERVER_BUSY = frozenset({500, 502, 503, 504})

logger = logging.getLogger("prefect_venice.pacing")


@dataclass(frozen=True)
class RateLimitSpec:
    """A Prefect global concurrency limit that paces one Venice endpoint across workers.

    `kind="window"` (the default): `slots` is the whole per-minute allowance and each
    call leases a slot for a minute (see the module's docstring). `kind="rate"`: the
    token bucket of earlier versions, a tenth of the allowance as burst, refilled at
    97% of it.
    """

    name: str
    per_minute: float
    setting: str
    kind: LimitKind = "window"

    @property
    def slots(self) -> int:
        """Slots: the minute's allowance (window), or a small burst of a tenth of it (rate)."""
        if self.kind == "window":
            return max(1, int(self.per_minute))
        return max(1, int(self.per_minute // 10))

    @property
    def decay_per_second(self) -> float:
        """Slots freed per second: 0 for a window limit (leases free them), else 97% of the rate."""
        if self.kind == "window":
            return 0.0
        return round(self.per_minute / 60.0 * 0.97, 4)


def rate_limit_specs(
    queue_per_minute: float = 40,
    retrieve_per_minute: float = 120,
    queue_name: str = DEFAULT_QUEUE_LIMIT,
    retrieve_name: str = DEFAULT_RETRIEVE_LIMIT,
    kind: LimitKind = "window",
) -> list[RateLimitSpec]:
    """Return the two limits for Venice's per-key allowances (40 queue, 120 retrieve a minute)."""
    return [
        RateLimitSpec(
            queue_name, queue_per_minute, "PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT", kind
        ),
        RateLimitSpec(
            retrieve_name,
            retrieve_per_minute,
            "PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT",
            kind,
        ),
    ]


def ensure_rate_limits(specs: list[RateLimitSpec], reset: bool = False) -> None:
    """Create each global limit on the Prefect server, or update it to these numbers.

    `reset` frees every taken slot: after a server restart with in-memory lease storage
    (the default), the leases are gone but their slots stay taken for good. A limit
    whose kind changes is reset too.

    Workers still pace themselves from Venice's headers; these limits make workers on
    several machines share the allowance. Turning a rate limit into a window limit (or
    back) takes effect in each worker process within `_KIND_TTL_SECONDS`.
    """
    with get_client(sync_client=True) as client:
        for spec in specs:
            try:
                before = client.read_global_concurrency_limit_by_name(spec.name)
            except ObjectNotFound:
                before = None
            client.upsert_global_concurrency_limit_by_name(
                spec.name, spec.slots, slot_decay_per_second=spec.decay_per_second
            )
            switched = before is not None and bool(before.slot_decay_per_second) != bool(
                spec.decay_per_second
            )
            if switched or (reset and before is not None):
                # Slots taken under the other kind would never come back (a rate slot has
                # no lease) or come back twice (a leased slot that also decays).
                client.update_global_concurrency_limit(
                    spec.name, GlobalConcurrencyLimitUpdate(active_slots=0)
                )


_client_lock = threading.Lock()
_clients: dict[str, SyncPrefectClient] = {}


def _prefect_client() -> SyncPrefectClient:
    """Return the process's Prefect API client for pacing, kept open (one per API URL).

    Every Venice call may take a slot: a new client each time would load the CA
    bundle and open a connection each time (tens of ms of CPU per poll).
    """
    url = str(PREFECT_API_URL.value() or "")
    with _client_lock:
        client = _clients.get(url)
        if client is None:
            # Distinct httpx settings: a client of our own, never the flow run's client
            # context (which get_client would hand back, and which closes with the run).
            client = get_client(sync_client=True, httpx_settings={"timeout": 30.0})
            client.__enter__()
            _clients[url] = client
        return client


def _forget_clients() -> None:
    """Start a forked child with no client: the parent's connections are not its own."""
    global _client_lock
    _client_lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_clients)


#: How long a process trusts what it read of a limit's kind before reading it again.
_KIND_TTL_SECONDS = 60.0
_kinds: dict[str, tuple[LimitKind, float]] = {}
_kinds_lock = threading.Lock()


def limit_kind(limit_name: str) -> LimitKind:
    """Return whether the named limit is a window limit (no decay) or a rate limit.

    Read from the server once a minute per process. A missing limit raises
    InvalidRequestError (the flows check before paying, see `check_rate_limit`).
    """
    now = time.monotonic()
    with _kinds_lock:
        known = _kinds.get(limit_name)
    if known is not None and now - known[1] < _KIND_TTL_SECONDS:
        return known[0]
    client = _prefect_client()
    try:
        limit = client.read_global_concurrency_limit_by_name(limit_name)
    except ObjectNotFound:
        raise InvalidRequestError(
            f"The global concurrency limit {limit_name!r} does not exist; create it with "
            "`prefect-venice limits` or unset the setting that names it."
        ) from None
    if not limit.active:
        # The server grants slots of an inactive limit without counting them: unpaced.
        raise InvalidRequestError(
            f"The global concurrency limit {limit_name!r} is inactive; activate it, recreate "
            "it with `prefect-venice limits`, or unset the setting that names it."
        )
    kind: LimitKind = "rate" if limit.slot_decay_per_second else "window"
    with _kinds_lock:
        _kinds[limit_name] = (kind, now)
    return kind


def take_window_slot(limit_name: str, lease_seconds: float = WINDOW_LEASE_SECONDS) -> None:
    """Lease one slot of a window limit for `lease_seconds`, waiting while none is free.

    The lease is never released: the server's repossessor frees the slot when it
    expires, so the slot stands for one call in the window. While the limit is full
    the server answers 423. Then one waiting call per machine and limit asks again
    every 0.3-0.6 s while the others on the machine wait on a local lock
    (`$PREFECT_VENICE_HOME/pacing`): each refusal costs the Prefect server a request
    and a database write, so the asking grows with the machines, not with the calls
    waiting on them. A freed slot is taken within about half a second.
    """
    client = _prefect_client()
    if _lease(client, limit_name, lease_seconds):
        return
    started = warned = time.monotonic()
    turn = _WaiterTurn(limit_name)
    try:
        while True:
            now = time.monotonic()
            if now - warned >= 60:
                warned = now
                logger.warning(
                    "Waited %.0f s for a slot of the global limit %r (Venice's allowance "
                    "is used up). If no calls are being made, its slots may be stuck: "
                    "`prefect-venice limits --reset` frees them.",
                    now - started,
                    limit_name,
                )
            if not turn.take():
                time.sleep(random.uniform(0.05, 0.15))  # noqa: S311 - jitter, not secret
                continue
            if _lease(client, limit_name, lease_seconds):
                return
            time.sleep(random.uniform(0.3, 0.6))  # noqa: S311 - jitter, not secret
    finally:
        turn.give_back()


def _lease(client: SyncPrefectClient, limit_name: str, lease_seconds: float) -> bool:
    """Ask the server for one slot once: True if leased, False if full or busy."""
    try:
        answer = client.increment_concurrency_slots_with_lease(
            names=[limit_name],
            slots=1,
            mode="concurrency",
            lease_duration=lease_seconds,
        )
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        if status != 423 and status not in _SERVER_BUSY:
            raise
        # 423: the limit is full. 5xx: the server is overloaded (SQLite answers 503 when
        # locked); nothing was sent to Venice, so waiting and asking again is safe.
        return False
    if not answer.json().get("limits"):
        # The server skips missing and inactive limits and grants the call: that would
        # run unpaced. Refuse instead (before the call, nothing is paid).
        raise InvalidRequestError(
            f"The global concurrency limit {limit_name!r} does not exist or is "
            "inactive; recreate it with `prefect-venice limits` or unset the setting."
        )
    return True


class _WaiterTurn:
    """A machine's turn to ask the server for a slot of one limit: a file lock.

    Where the lock file cannot be made (an unwritable home, no fcntl), every waiting
    call has its turn at once, as if each were alone on its machine.
    """

    def __init__(self, limit_name: str) -> None:
        self._fd: int | None = None
        self._held = False
        if fcntl is None:
            return
        # Per Prefect server and limit: two servers' limits of one name are not one.
        server = str(PREFECT_API_URL.value() or "")
        digest = hashlib.sha256(f"{server}\n{limit_name}".encode()).hexdigest()[:16]
        path = pacing_dir() / f"gcl-{digest}.turn"
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self._fd = None

    def take(self) -> bool:
        """Hold the turn (True), or learn that another call on this machine has it."""
        if self._fd is None or self._held:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another call on this machine is asking
        except OSError:
            # A file system without locks (ENOLCK on some network mounts): every waiting
            # call asks for itself rather than none ever asking.
            self.give_back()
            return True
        self._held = True
        return True

    def give_back(self) -> None:
        """Let the next waiting call on this machine ask; the lock file stays."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if self._held:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd, self._held = None, False


def pace(limit_name: str | None) -> None:
    """Take one slot of the named global limit before a Venice call, if one is set.

    A window limit (no decay) leases a slot for a minute (`take_window_slot`); a rate
    limit (slot decay) goes through Prefect's `rate_limit` with strict=True, so a
    misspelt or missing limit fails loudly instead of letting every caller run unpaced
    (Prefect's limits otherwise fail open).
    """
    if not limit_name:
        return
    if limit_kind(limit_name) == "window":
        take_window_slot(limit_name)
    else:
        rate_limit(limit_name, occupy=1, strict=True)


def check_rate_limit(limit_name: str | None, setting: str) -> None:
    """Fail unless the named global limit exists and is active (takes no slot).

    Flows call it before the paid call, so a misspelt limit costs nothing.
    """
    if not limit_name:
        return
    try:
        limit = _prefect_client().read_global_concurrency_limit_by_name(limit_name)
    except ObjectNotFound:
        limit = None
    if limit is None or not limit.active or limit.limit < 1:
        problem = "does not exist" if limit is None else "is inactive or has no slots"
        raise InvalidRequestError(
            f"{setting} names the global concurrency limit {limit_name!r}, which {problem}. "
            "Create it with `prefect-venice limits` (a window limit: Venice's allowance "
            "a minute) or unset the setting."
        )
    kind: LimitKind = "rate" if limit.slot_decay_per_second else "window"
    with _kinds_lock:
        _kinds[limit_name] = (kind, time.monotonic())


def paced_retry_policy(limit_name: str | None) -> RetryPolicy:
    """Return the client's default RetryPolicy, whose retries also take a slot of the limit.

    The client retries some answers (429/500 on queue; 429/500/503 on retrieve) by
    itself; each retry is another request that counts against Venice's per-key limit,
    so it waits for a slot too. Give it to a client that makes only the paced call.
    """
    if not limit_name:
        return RetryPolicy()

    def sleep_then_pace(seconds: float) -> None:
        time.sleep(seconds)
        pace(limit_name)

    return RetryPolicy(sleep=sleep_then_pace)
