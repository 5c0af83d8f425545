"""Pacing of Venice calls through Prefect global rate limits, shared by every worker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

from prefect_venice.errors import InvalidRequestError
from prefect_venice.retry import RetryPolicy

__all__ = [
    "DEFAULT_QUEUE_LIMIT",
    "DEFAULT_RETRIEVE_LIMIT",
    "RateLimitSpec",
    "check_rate_limit",
    "ensure_rate_limits",
    "pace",
    "paced_retry_policy",
    "rate_limit_specs",
]

DEFAULT_QUEUE_LIMIT = "venice-queue"
DEFAULT_RETRIEVE_LIMIT = "venice-retrieve"


@dataclass(frozen=True)
class RateLimitSpec:
    """A Prefect global concurrency limit that paces one Venice endpoint across workers."""

    name: str
    per_minute: float
    setting: str

    @property
    def slots(self) -> int:
        """Slots: a small burst (a tenth of a minute's allowance), so no caller waits on another."""
        return max(1, int(self.per_minute // 10))

    @property
    def decay_per_second(self) -> float:
        """Slots freed per second: 97% of the per-minute allowance, a margin for clock skew."""
        return round(self.per_minute / 60.0 * 0.97, 4)


def rate_limit_specs(
    queue_per_minute: float = 40,
    retrieve_per_minute: float = 120,
    queue_name: str = DEFAULT_QUEUE_LIMIT,
    retrieve_name: str = DEFAULT_RETRIEVE_LIMIT,
) -> list[RateLimitSpec]:
    """Return the two limits for Venice's per-key allowances (40 queue, 120 retrieve a minute)."""
    return [
        RateLimitSpec(queue_name, queue_per_minute, "PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT"),
        RateLimitSpec(
            retrieve_name, retrieve_per_minute, "PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT"
        ),
    ]


def ensure_rate_limits(specs: list[RateLimitSpec]) -> None:
    """Create each global rate limit on the Prefect server, or update it to these numbers.

    Workers still pace themselves from Venice's headers; these limits make workers on
    several machines share the allowance. The small burst keeps callers from queueing
    behind one another (a one-slot limit serialises every request and reaches only about
    two thirds of the allowance).
    """
    with get_client(sync_client=True) as client:
        for spec in specs:
            client.upsert_global_concurrency_limit_by_name(
                spec.name, spec.slots, slot_decay_per_second=spec.decay_per_second
            )


def pace(limit_name: str | None) -> None:
    """Take one slot of the named global rate limit before a Venice call, if one is set.

    strict=True: a misspelt or missing limit fails loudly instead of letting every
    caller run unpaced (Prefect's limits otherwise fail open).
    """
    if limit_name:
        rate_limit(limit_name, occupy=1, strict=True)


def check_rate_limit(limit_name: str | None, setting: str) -> None:
    """Fail unless the named global rate limit exists and decays (takes no slot).

    Flows call it before the paid call, so a misspelt limit costs nothing.
    """
    if not limit_name:
        return
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(limit_name)
        except ObjectNotFound:
            limit = None
    if limit is None or not limit.slot_decay_per_second:
        problem = "does not exist" if limit is None else "has no slot decay, so it is no rate limit"
        raise InvalidRequestError(
            f"{setting} names the global concurrency limit {limit_name!r}, which {problem}. "
            f"Create it (prefect gcl create {limit_name} --limit 2 --slot-decay-per-second 2) "
            "or unset the setting."
        )


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
