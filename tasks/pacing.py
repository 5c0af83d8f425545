"""Pacing of Venice calls through Prefect global rate limits, shared by every worker."""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

from prefect_venice.errors import InvalidRequestError
from prefect_venice.retry import RetryPolicy

__all__ = ["check_rate_limit", "pace", "paced_retry_policy"]


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
