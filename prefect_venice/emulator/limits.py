"""Per-key request-rate windows and the lockout after too many failed requests."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass


@dataclass
class WindowState:
    """The outcome of one request against a fixed window."""

    allowed: bool
    limit: int
    remaining: int
    #: Real seconds until the window resets.
    reset_in: float

    def headers(self) -> dict[str, str]:
        """Return the `x-ratelimit-*` headers; reset is a (fractional) Unix time."""
        reset_at = time.time() + self.reset_in
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{reset_at:.3f}",
        }


class FixedWindow:
    """Allow `limit` requests per `period` real seconds; the first request opens the window."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._start = 0.0
        self._count = 0

    def hit(self, now: float) -> WindowState:
        """Count one request at monotonic time `now`; refused requests are not counted."""
        if self._count == 0 or now >= self._start + self.period:
            self._start = now
            self._count = 0
        reset_in = self._start + self.period - now
        if self._count >= self.limit:
            return WindowState(False, self.limit, 0, reset_in)
        self._count += 1
        return WindowState(True, self.limit, self.limit - self._count, reset_in)


class FailureLockout:
    """Blocks a key for `block` seconds once more than `threshold` failures fall within `window`."""

    def __init__(self, threshold: int, window: float, block: float) -> None:
        self.threshold = threshold
        self.window = window
        self.block = block
        self._failures: collections.deque[float] = collections.deque()
        self._blocked_until = 0.0

    def blocked_for(self, now: float) -> float:
        """Real seconds the key stays blocked (0 when it is not)."""
        return max(self._blocked_until - now, 0.0)

    def record_failure(self, now: float) -> None:
        """Note a failed request; failures while blocked neither count nor extend the block."""
        if self.blocked_for(now) > 0:
            return
        self._failures.append(now)
        while self._failures and self._failures[0] <= now - self.window:
            self._failures.popleft()
        if len(self._failures) > self.threshold:
            self._blocked_until = now + self.block
            self._failures.clear()
