"""RetryPolicy: which answers and failures are retried per endpoint, and how long to wait."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

__all__ = ["NOT_SENT", "Endpoint", "RetryPolicy"]

Endpoint = Literal["models", "quote", "queue", "retrieve", "complete", "link_get", "link_delete"]
"""The calls the client makes; each has its own retry rules."""

# Venice's guide: 429, 500 and 503 are retried with backoff on every endpoint but
# queue, which is paid: a queue answer of 429 or 500 says no job was created, but
# 503 there is undocumented, so it is not assumed safe.
_RETRY_STATUSES: dict[Endpoint, frozenset[int]] = {
    "models": frozenset({429, 500, 502, 503, 504}),
    "quote": frozenset({429, 500, 502, 503, 504}),
    "retrieve": frozenset({429, 500, 502, 503, 504}),
    "complete": frozenset({429, 500, 502, 503, 504}),
    "link_get": frozenset({429, 500, 502, 503, 504}),
    "link_delete": frozenset({429, 500, 502, 503, 504}),
    "queue": frozenset({429, 500}),
}

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures where httpx never wrote the request to the wire: safe even for queue."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and full jitter, honouring rate-limit headers.

    Attempt n (0-based) waits a uniform random time in [0, min(max_delay,
    base_delay * 2**n)]. A 429 waits until `x-ratelimit-reset-requests` (Unix
    time) or `Retry-After`, capped at max_rate_limit_wait. `sleep`/`async_sleep`
    and `clock` are injectable so tests run without waiting.
    """

    max_attempts: int = 5
    """Total attempts per call, first included."""
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_rate_limit_wait: float = 90.0
    link_attempts: int = 3
    """GETs per private-link download; the guide allows only a few. A cut transfer
    resumes with a byte range, so each GET continues where the last one stopped."""
    max_link_rate_limit_wait: float = 5.0
    """Longest wait after a 429 from a private link on this client's first GET of it.
    Repeated fetches of one link show up as 429, so a 429 after earlier GETs is
    final (LinkExhaustedError) and never waited on."""
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    def attempts_for(self, endpoint: Endpoint) -> int:
        """How many attempts a call to endpoint may make in total."""
        return self.link_attempts if endpoint == "link_get" else self.max_attempts

    def retries_status(self, endpoint: Endpoint, status: int) -> bool:
        """Whether an answer with this status may be retried on endpoint."""
        return status in _RETRY_STATUSES[endpoint]

    def retries_transport_error(self, endpoint: Endpoint, error: httpx.TransportError) -> bool:
        """Whether a failed exchange may be retried.

        For queue only a failure before the request was sent qualifies: after
        that, the job may exist and resending could charge twice.
        """
        if endpoint == "queue":
            return isinstance(error, NOT_SENT)
        return True

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for retry number attempt (0-based)."""
        # The exponent is capped: a wait that sees errors for hours must not overflow a float.
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 64)))
        return self.rng.uniform(0.0, ceiling)

    def delay_after_status(self, status: int, headers: Mapping[str, str], attempt: int) -> float:
        """How long to wait before retrying an answer with this status and headers."""
        if status == 429:
            wait = self.rate_limit_wait(headers)
            if wait is not None:
                # A little jitter so many clients do not all return at the reset instant.
                return min(self.max_rate_limit_wait, wait + self.rng.uniform(0.0, 0.25))
        return self.backoff(attempt)

    def rate_limit_wait(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until the rate limit resets, from Venice's or the standard header."""
        reset = headers.get("x-ratelimit-reset-requests")
        if reset:
            try:
                value = float(reset)
            except ValueError:
                value = None
            if value is not None:
                if value > 1e11:  # milliseconds since the epoch
                    value /= 1000.0
                return max(0.0, value - self.clock())
        retry_after = headers.get("retry-after")
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(retry_after)
                if parsed is not None:
                    return max(0.0, parsed.timestamp() - self.clock())
        return None


def no_retries() -> RetryPolicy:
    """Return a policy that tries each call once (for tests and interactive use)."""
    return RetryPolicy(max_attempts=1, link_attempts=1)
