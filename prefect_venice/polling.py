"""The poll schedule for /video/retrieve, derived from Venice's own time estimate."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import VeniceError, WaitTimeoutError
from .models import Processing, Progress
from .retry import RetryPolicy

__all__ = ["PollPolicy", "WaitClock"]


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll a job.

    While Venice's estimate (`average_execution_time`, about its 80th percentile)
    is ahead of `execution_duration`, wait half the remaining estimate: polls
    thin out for long jobs and tighten near the end. Once the estimate is
    exceeded, start again at min_interval and back off geometrically. Every
    delay gets +/- jitter and is clamped to [min_interval, max_interval], which
    keeps a batch of jobs inside the 120 requests/minute retrieve limit.
    """

    min_interval: float = 3.0
    max_interval: float = 30.0
    first_interval: float = 5.0
    """Delay after a poll that carried no usable estimate."""
    overdue_factor: float = 1.5
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self, status: Processing | None, overdue_polls: int = 0) -> float:
        """Seconds to wait after seeing status; overdue_polls counts polls past the estimate."""
        if status is None or status.average_execution_time_ms <= 0:
            base = self.first_interval
        else:
            remaining = (status.average_execution_time_ms - status.execution_duration_ms) / 1000
            if remaining > 0:
                base = remaining / 2
            else:
                base = self.min_interval * self.overdue_factor ** max(0, overdue_polls)
        jittered = base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.max_interval, max(self.min_interval, jittered))


def progress_of(status: Processing, *, queue_id: str, polls: int, elapsed: float) -> Progress:
    """Turn a Processing answer into a Progress snapshot for on_progress callbacks."""
    average = status.average_execution_time_ms
    done = status.execution_duration_ms
    if average > 0:
        fraction: float | None = min(0.99, max(0.0, done / average))
        remaining: float | None = max(0.0, (average - done) / 1000)
    else:
        fraction, remaining = None, None
    return Progress(
        queue_id=queue_id,
        polls=polls,
        elapsed_seconds=elapsed,
        fraction=fraction,
        estimated_remaining_seconds=remaining,
    )


class WaitClock:
    """Book-keeping for one wait: poll count, elapsed time, deadline and the next delay.

    Shared by the sync and async clients (and the Prefect wait task) so they differ
    only in how they sleep. A poll loop calls `after_processing` for each
    PROCESSING answer and `after_transient_error` for each failed poll; both
    return the seconds to sleep and raise WaitTimeoutError once the wait is over.
    """

    def __init__(
        self,
        queue_id: str,
        *,
        max_wait_seconds: float,
        policy: PollPolicy,
        on_progress: Callable[[Progress], None] | None,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.queue_id = queue_id
        self.max_wait_seconds = max_wait_seconds
        self.policy = policy
        self.on_progress = on_progress
        self.clock = clock
        self.retry = retry or RetryPolicy()
        """Whose `backoff` spaces polls after transient errors (capped by policy.max_interval)."""
        self.started = clock()
        self.polls = 0
        self.overdue_polls = 0
        self.failed_polls = 0
        """Polls that ended in a transient error, over the whole wait."""
        self.failures_in_a_row = 0
        """Transient errors since the last PROCESSING answer."""
        self.last_error: VeniceError | None = None
        """The most recent transient error (kept for the timeout message)."""

    @property
    def elapsed(self) -> float:
        """Seconds since the wait began."""
        return self.clock() - self.started

    def after_processing(self, status: Processing) -> float:
        """Record a PROCESSING answer and return how long to sleep before the next poll.

        Raises WaitTimeoutError once max_wait_seconds has passed. The last sleep is
        shortened so the final poll happens at the deadline rather than after it.
        """
        self.polls += 1
        self.failures_in_a_row = 0
        elapsed = self.elapsed
        if self.on_progress is not None:
            self.on_progress(
                progress_of(status, queue_id=self.queue_id, polls=self.polls, elapsed=elapsed)
            )
        if status.execution_duration_ms >= status.average_execution_time_ms > 0:
            self.overdue_polls += 1
        remaining_budget = self.max_wait_seconds - elapsed
        if remaining_budget <= 0:
            raise WaitTimeoutError(
                f"Video {self.queue_id} was still processing after {elapsed:.1f} s "
                f"({self.polls} polls; max_wait_seconds={self.max_wait_seconds:g}).",
                queue_id=self.queue_id,
            )
        delay = self.policy.next_delay(status, self.overdue_polls)
        return min(delay, remaining_budget)

    def after_transient_error(self, error: VeniceError) -> float:
        """Record a failed poll and return how long to sleep before polling again.

        A retryable error (`error.retryable`: 500/503, 429, a dropped connection,
        each already retried by the client) does not end the wait: the next poll
        comes after the retry policy's backoff, which grows with each failure in a
        row and is capped at the poll policy's max_interval and at the deadline.
        Once max_wait_seconds has passed this raises WaitTimeoutError naming the
        error. A non-retryable error (404, 401, ...) is raised again unchanged.

        Typical use in a poll loop:

            try:
                answer = client.retrieve(job, path)
            except VeniceError as error:
                time.sleep(clock.after_transient_error(error))
                continue
        """
        if not error.retryable:
            raise error
        self.failed_polls += 1
        self.failures_in_a_row += 1
        self.last_error = error
        elapsed = self.elapsed
        remaining_budget = self.max_wait_seconds - elapsed
        if remaining_budget <= 0:
            raise WaitTimeoutError(
                f"Video {self.queue_id} was not ready after {elapsed:.1f} s "
                f"({self.polls} answered polls, {self.failed_polls} failed; "
                f"max_wait_seconds={self.max_wait_seconds:g}); the last poll failed: "
                f"{error.message}",
                queue_id=self.queue_id,
            ) from error
        # Continue the client's own backoff sequence rather than restarting it.
        attempt = self.retry.max_attempts - 1 + self.failures_in_a_row
        delay = max(self.policy.min_interval, self.retry.backoff(attempt))
        return min(delay, self.policy.max_interval, remaining_budget)
