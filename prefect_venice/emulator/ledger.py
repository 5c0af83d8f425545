"""The record of every call, status and charge, served at `GET /_emulator/ledger`."""

from __future__ import annotations

import collections
import copy
from typing import Any


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
        """Record a charge for a newly created job."""
        record = self.job(queue_id, model)
        record["charged_usd"] = round(record["charged_usd"] + usd, 6)
        self.charged_usd_total = round(self.charged_usd_total + usd, 6)

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
