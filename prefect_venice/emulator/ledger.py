"""The record of every call, status and charge, served at `GET /_emulator/ledger`.

Alongside it, a bounded log of single requests with wall-clock times, served at
`GET /_emulator/requests`, from which `peak_per_window` reads peak request rates,
and the account's usage history (one entry per charge), served at
`GET /api/v1/billing/usage-history`.
"""

from __future__ import annotations

import bisect
import collections
import copy
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .billing import UsageRecord, video_sku

#: The request log keeps this many of the most recent requests.
REQUEST_LOG_SIZE = 100_000


class RequestRecord(NamedTuple):
    """One answered request: never an API key, a link token or a body."""

    endpoint: str
    method: str
    #: The status code sent, or "dropped" when the connection closed without an answer.
    status: int | str
    #: Wall-clock Unix time (`time.time()`) when the emulator decided the answer.
    time: float
    #: The job the request concerned, when it names (or created) one the emulator knows.
    queue_id: str | None

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict."""
        return self._asdict()


def peak_per_window(
    entries: Iterable[Mapping[str, Any]], endpoint: str, window: float = 60.0
) -> int:
    """Return the most calls of `endpoint` within any `window` seconds of the request log.

    `entries` are request-log records (`GET /_emulator/requests` or
    `Emulator.requests()`). A window is half-open: calls exactly `window` seconds
    apart never share one, so 40 calls a minute at a steady pace peak at 40.
    """
    times = sorted(float(entry["time"]) for entry in entries if entry["endpoint"] == endpoint)
    peak = 0
    for last, end in enumerate(times):
        first = bisect.bisect_right(times, end - window, 0, last + 1)
        peak = max(peak, last - first + 1)
    return peak


def new_job_record(model: str) -> dict[str, Any]:
    """Return the ledger entry of one queue id, before anything happened to it."""
    return {
        "model": model,
        "charged_usd": 0.0,
        "queue_calls": 0,
        "retrieve_calls": 0,
        "complete_calls": 0,
        "status": "PROCESSING",
        "media_deleted": False,
        "private": False,
        "link_gets": 0,
        "link_deleted": False,
        "link_auth_seen": False,
    }


class Ledger:
    """Counts calls and statuses per endpoint and keeps one record per queue id.

    Not thread-safe by itself: the service calls it under its own lock.
    """

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.statuses: dict[str, collections.Counter[str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.queue_calls_total = 0
        self.charged_usd_total = 0.0
        self.link_auth_seen = False
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        #: The usage history, oldest first; only ever appended to (cursors index into it).
        self.usage: list[UsageRecord] = []
        #: Names this ledger in usage-history cursors: a reset makes older cursors invalid.
        self.epoch = secrets.token_hex(8)

    def call(self, endpoint: str) -> None:
        """Count one call of `endpoint`, whatever its outcome."""
        self.calls[endpoint] += 1
        if endpoint == "queue":
            self.queue_calls_total += 1

    def status(self, endpoint: str, status: int | str) -> None:
        """Count one answer of `endpoint` (a status code, or "dropped")."""
        self.statuses.setdefault(endpoint, collections.Counter())[str(status)] += 1

    def job(self, queue_id: str, model: str) -> dict[str, Any]:
        """Return the record of `queue_id`, created when first needed."""
        return self.jobs.setdefault(queue_id, new_job_record(model))

    def charge(self, queue_id: str, model: str, usd: float) -> None:
        """Record a charge for a newly created job, and its entry in the usage history."""
        record = self.job(queue_id, model)
        record["charged_usd"] = round(record["charged_usd"] + usd, 6)
        self.charged_usd_total = round(self.charged_usd_total + usd, 6)
        # Timestamps never go backwards, so the history stays in ascending time order.
        now_ms = int(time.time() * 1000)
        if self.usage:
            now_ms = max(now_ms, self.usage[-1].time_ms)
        self.usage.append(
            UsageRecord(
                time_ms=now_ms,
                amount=-round(usd, 6),
                currency="USD",
                sku=video_sku(model),
                units=1,
                price_per_unit_usd=round(usd, 6),
                notes="API Inference",
                request_id=queue_id,
            )
        )

    def request(self, record: RequestRecord) -> None:
        """Append one answered request to the request log (the oldest fall off the end)."""
        self.requests.append(record)

    def requests_snapshot(self) -> list[dict[str, Any]]:
        """Return the request log, oldest first, as JSON-ready data."""
        return [record.to_json() for record in self.requests]

    def snapshot(self, balance_usd: float) -> dict[str, Any]:
        """Return the ledger as JSON-ready data (see docs/internals.md)."""
        return {
            "calls": dict(self.calls),
            "statuses": {name: dict(counts) for name, counts in self.statuses.items()},
            "jobs": copy.deepcopy(self.jobs),
            "queue_calls_total": self.queue_calls_total,
            "charged_usd_total": self.charged_usd_total,
            "balance_usd": round(balance_usd, 6),
            "link_auth_seen": self.link_auth_seen,
        }
