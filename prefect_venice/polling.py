"""The poll schedule for /video/retrieve: from what earlier jobs of the same shape took.

Two schedules live in :class:`PollPolicy`:

- **From history** (the default, `use_history=True`). A job's completion time is
  modelled as a distribution over its execution time: the empirical distribution of
  earlier jobs of the same shape (prefect_venice.history) once there are
  `min_history` of them, otherwise a prior built from Venice's estimate. After each
  answer the next poll comes when the job has had just enough chance to finish: at
  execution time t the next poll is s seconds later, where

      s * P(done within s | running at t) = 2c

  (each poll "buys" the same expected detection lag, c seconds). Where nothing can
  have finished yet this is one long sleep to the start of the distribution; where
  many jobs finish the polls are dense; in the tail, where few jobs remain, sparser.
  The constant c is chosen per distribution so that the median detection lag over
  the distribution, blurred a little for the jobs to come, is `target_lag` (2.5 s,
  the median lag of the guide's fixed 5 s loop; twice that on the prior from
  Venice's estimate). Each delay counts from the sending of the last poll. Past
  the distribution's end the polls back off geometrically. This is the
  hazard-weighted rule that minimises polls plus c-weighted lag: a poll at time t
  costs only for the jobs still running then.
- **From Venice's estimate** (`use_history=False`, the earlier schedule): half the
  remaining `average_execution_time`, then geometric back-off once it is exceeded.

Every delay is kept within [min_interval, max_interval], except the sleep before the
distribution's start: while no job of the shape has ever finished that early, the
wait may sleep longer than max_interval.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import VeniceError, WaitTimeoutError
from .history import TRACKER, JobShape, JobTracker, TrackedJob, shared_history
from .models import Processing, Progress
from .retry import RetryPolicy

__all__ = ["CompletionModel", "PollPolicy", "WaitClock"]

#: Venice calls its estimate "about the 80th percentile" of the model's recent jobs; with
#: no history of the shape, completions are assumed to spread over 0.5x-1.5x of it.
_PRIOR = ((0.5, 0.0), (1.0, 0.8), (1.5, 1.0))
#: The prior from Venice's estimate aims at this multiple of the target lag.
_PRIOR_LAG_FACTOR = 2.0
#: Points of the distribution at which the lag target is checked (equal probability).
_CALIBRATION_POINTS = 32
#: The lag target is checked on the history blurred by this share of Silverman's
#: bandwidth: new jobs fall between the earlier ones, not on them (see `lag_cost`).
_BLUR_FACTOR = 0.5
#: Gauss-Hermite nodes and weights (probabilists', 7 points): E[F(t + h Z)], Z ~ N(0, 1).
_HERMITE = (
    (-3.750439717725742, 0.000548268855972),
    (-2.366759410734541, 0.030757123967586),
    (-1.154405394739968, 0.240123178605013),
    (0.0, 0.457142857142857),
    (1.154405394739968, 0.240123178605013),
    (2.366759410734541, 0.030757123967586),
    (3.750439717725742, 0.000548268855972),
)
#: Knots of a blurred model.
_BLUR_KNOTS = 64


class CompletionModel:
    """When a job of some shape finishes, in seconds of execution: a piecewise-linear CDF."""

    def __init__(self, knots: Sequence[tuple[float, float]], *, blur: float = 0.0) -> None:
        times = [float(t) for t, _ in knots]
        probs = [float(p) for _, p in knots]
        if len(times) < 2 or any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("knots need at least two strictly increasing times")
        if probs[0] != 0.0 or probs[-1] != 1.0 or any(b < a for a, b in itertools.pairwise(probs)):
            raise ValueError("knot probabilities must rise from 0 to 1")
        self.times = times
        self.probs = probs
        self.blur = max(0.0, float(blur))
        """How uncertain each knot's time is, in seconds (0: exactly known); see `lag_cost`."""
        self._blurred: CompletionModel | None = None

    @classmethod
    def from_samples(
        cls, samples: Sequence[float], running: Sequence[float] = ()
    ) -> CompletionModel:
        """Build the empirical distribution of observed completion times, smoothed a little.

        The CDF runs through every k-th sorted sample x_i at probability (i + 0.5)/n
        (k about sqrt(n)/2, so that the density between knots averages over a few
        samples rather than following each gap), and starts and ends one average gap
        beyond the smallest and the largest sample: a sample of n rarely holds the
        true extremes.

        `running` are the execution times of jobs of the shape still running past the
        largest sample (right-censored: a batch's fastest jobs finish first, and a
        history of only those would end too early). Each takes 1/(n + m) of the
        probability (the product-limit estimate), spread past the largest sample up
        to beyond the longest of them.
        """
        xs = sorted(float(x) for x in samples if x > 0)
        if not xs:
            raise ValueError("no positive samples")
        n = len(xs)
        late = sorted(float(e) for e in running if e > xs[-1])
        scale = n / (n + len(late))
        gap = (xs[-1] - xs[0]) / (n - 1) if n > 1 else 0.0
        gap = max(gap, 0.02 * xs[-1], 1e-3)
        step = max(1, round(math.sqrt(n) / 2))
        knots: list[tuple[float, float]] = [(max(0.0, xs[0] - gap), 0.0)]
        for i in range(step // 2, n, step):
            x, p = xs[i], scale * (i + 0.5) / n
            if x <= knots[-1][0]:
                knots[-1] = (knots[-1][0], max(knots[-1][1], p) if len(knots) > 1 else 0.0)
            else:
                knots.append((x, p))
        if late:
            spread = max(gap, 0.25 * (xs[-1] - xs[0]))
            knots.append((xs[-1] + gap, scale))
            if late[-1] + spread > knots[-1][0]:
                knots.append((late[-1] + spread, 1.0))
            else:
                knots[-1] = (knots[-1][0], 1.0)
        else:
            knots.append((xs[-1] + gap, 1.0))
        return cls(knots, blur=_BLUR_FACTOR * _silverman(xs))

    @classmethod
    def from_estimate(cls, estimate_seconds: float) -> CompletionModel:
        """Build a prior from Venice's estimate alone (about the 80th percentile of the model)."""
        return cls([(estimate_seconds * t, p) for t, p in _PRIOR])

    @property
    def lower(self) -> float:
        """No job finishes before this."""
        return self.times[0]

    @property
    def upper(self) -> float:
        """Every job has finished by this (as far as the model knows)."""
        return self.times[-1]

    def cdf(self, t: float) -> float:
        """P(the job has finished by execution time t)."""
        if t <= self.times[0]:
            return 0.0
        if t >= self.times[-1]:
            return 1.0
        i = bisect.bisect_right(self.times, t)
        t0, t1, p0, p1 = self.times[i - 1], self.times[i], self.probs[i - 1], self.probs[i]
        return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    def density(self, t: float) -> float:
        """Return the density at t (the slope of the CDF's segment)."""
        if t < self.times[0] or t >= self.times[-1]:
            return 0.0
        i = bisect.bisect_right(self.times, t)
        return (self.probs[i] - self.probs[i - 1]) / (self.times[i] - self.times[i - 1])

    def quantile(self, u: float) -> float:
        """Return the execution time by which a fraction u of jobs have finished."""
        u = min(1.0, max(0.0, u))
        i = bisect.bisect_left(self.probs, u)
        if i == 0:
            return self.times[0]
        p0, p1 = self.probs[i - 1], self.probs[i]
        t0, t1 = self.times[i - 1], self.times[i]
        return t1 if p1 == p0 else t0 + (t1 - t0) * (u - p0) / (p1 - p0)

    def chance_done(self, since: float, until: float) -> float:
        """P(finished by `until` | still running at `since`)."""
        alive = 1.0 - self.cdf(since)
        if alive <= 0.0:
            return 1.0
        return max(0.0, self.cdf(until) - self.cdf(since)) / alive

    def spacing(self, t: float, cost: float, min_interval: float, max_interval: float) -> float:
        """Seconds from execution time t to the next poll, for lag cost `cost` per poll.

        Solves s * P(done within s | running at t) = 2 * cost for s, capped at the
        distribution's end. max_interval applies only where a job may finish within
        it: before the distribution's start the sleep reaches straight to it.
        """
        end = self.upper - t
        if end <= 0:
            return min_interval
        target = 2.0 * cost
        if end * self.chance_done(t, self.upper) <= target:
            s = end
        else:
            lo, hi = 0.0, end
            for _ in range(24):
                mid = (lo + hi) / 2
                if mid * self.chance_done(t, t + mid) < target:
                    lo = mid
                else:
                    hi = mid
            s = hi
        s = max(s, min_interval)
        if self.cdf(t + max_interval) > self.cdf(t):
            s = min(s, max_interval)
        return s

    def blurred(self) -> CompletionModel:
        """Return this distribution smoothed by a normal kernel of width `blur` (or itself).

        What the next job of the shape may take: a history of a few dozen jobs places
        its knots where those jobs ended, and the next one ends in between.
        """
        if self.blur <= 0.0:
            return self
        if self._blurred is None:
            h = self.blur
            lower, upper = max(0.0, self.lower - 3 * h), self.upper + 3 * h

            def smooth(t: float) -> float:
                return sum(w * self.cdf(t + h * z) for z, w in _HERMITE)

            grid = [lower + (upper - lower) * i / (_BLUR_KNOTS - 1) for i in range(_BLUR_KNOTS)]
            first, last = smooth(lower), smooth(upper)
            probs = [(smooth(t) - first) / (last - first) for t in grid]
            knots = [(grid[0], 0.0)]
            for t, p in zip(grid[1:-1], probs[1:-1], strict=True):
                knots.append((t, min(1.0, max(knots[-1][1], p))))
            knots.append((grid[-1], 1.0))
            self._blurred = CompletionModel(knots)
        return self._blurred

    def lag_cost(self, target_lag: float, min_interval: float, max_interval: float) -> float:
        """Return the cost c whose schedule gives a median detection lag of target_lag.

        First an approximation: with the small-step spacing s(x) = sqrt(2c (1 - F(x)) /
        f(x)), a job ending at x waits a lag spread evenly over [0, s(x)], so P(lag <=
        target) = min(1, target / s(x)); c makes the average of that one half. Then
        the schedule itself (polls from execution time 0, as `spacing` places them) is
        computed and c refined by bisection until the median lag it gives is target_lag
        over the distribution `blurred()`, not this one: a schedule calibrated on the
        very jobs it was built from puts polls just after them and meets its target
        only on them (on new jobs of the shape its lag ran 0.15-0.25 s above the
        target: benchmarks/poll_simulation.py, histories of 12 jobs).
        """
        ratios = []
        for k in range(_CALIBRATION_POINTS):
            u = (k + 0.5) / _CALIBRATION_POINTS
            ratios.append((1.0 - u) / max(self.density(self.quantile(u)), 1e-12))

        def approximate_share(cost: float) -> float:
            total = 0.0
            for ratio in ratios:
                s = min(max_interval, max(min_interval, math.sqrt(2 * cost * ratio)))
                total += min(1.0, target_lag / s) if s > 0 else 1.0
            return total / len(ratios)

        judge = self.blurred()

        def exact_share(cost: float) -> float:
            return judge.share_within(self.poll_times(cost, min_interval, max_interval), target_lag)

        guess = _bisect_log(approximate_share, 1e-9, max(1.0, self.upper) * 1e3, 32)
        return _bisect_log(exact_share, guess / 4, guess * 4, 8)

    def poll_times(self, cost: float, min_interval: float, max_interval: float) -> list[float]:
        """Return the execution times of the polls, from 0 to the distribution's end."""
        times: list[float] = []
        t = 0.0
        while t < self.upper and len(times) < 10_000:
            t += self.spacing(t, cost, min_interval, max_interval)
            times.append(t)
        return times

    def share_within(self, polls: Sequence[float], lag: float) -> float:
        """Return P(the first poll after the job's end comes within `lag` seconds)."""
        total, previous = 0.0, 0.0
        for t in polls:
            total += self.cdf(t) - self.cdf(max(previous, t - lag))
            previous = t
        return total


def _silverman(xs: Sequence[float]) -> float:
    """Silverman's rule-of-thumb kernel width for sorted samples xs (0 for fewer than 2)."""
    n = len(xs)
    if n < 2:
        return 0.0
    spread = statistics.stdev(xs)
    quartiles = statistics.quantiles(xs, n=4)
    iqr = (quartiles[2] - quartiles[0]) / 1.34
    if iqr > 0:
        spread = min(spread, iqr)
    return float(0.9 * spread * n**-0.2)


def _bisect_log(share: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
    """Return the largest cost in [lo, hi] (on a log scale) whose share is at least one half."""
    if share(hi) >= 0.5:
        return hi
    if share(lo) < 0.5:
        return lo
    a, b = math.log(lo), math.log(hi)
    for _ in range(steps):
        mid = (a + b) / 2
        if share(math.exp(mid)) >= 0.5:
            a = mid
        else:
            b = mid
    return math.exp(a)


_cache_lock = threading.Lock()
_cache: dict[tuple[object, ...], tuple[CompletionModel, float]] = {}
_CACHE_SIZE = 512


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll a job.

    By default (`use_history=True`) polls follow what earlier jobs of the same shape
    (model, duration, resolution, audio) took, or a prior from Venice's estimate
    until `min_history` of them have finished; see the module's docstring. With
    `use_history=False`, the earlier schedule: while Venice's estimate
    (`average_execution_time`, about its 80th percentile) is ahead of
    `execution_duration`, wait half the remaining estimate; once it is exceeded,
    start again at min_interval and back off geometrically.

    Every delay gets jitter and is clamped to [min_interval, max_interval] (the
    history schedule may sleep longer before any job of the shape could have
    finished). With `prioritize`, a batch's waits that share a client spend a short
    retrieve allowance on the jobs most likely to be done (see pacing.Frontier).
    """

    min_interval: float = 3.0
    max_interval: float = 30.0
    first_interval: float = 5.0
    """Delay after a poll that carried no usable estimate."""
    overdue_factor: float = 1.5
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    use_history: bool = True
    """Schedule from the completion times of earlier jobs of the same shape."""
    target_lag: float = 2.5
    """Median seconds from a job's end to the poll that sees it, on the shape's history.

    2.5 s is the median lag of the guide's fixed 5 s loop. The schedule is calibrated
    for the next jobs of the shape, not the recorded ones (see CompletionModel.lag_cost);
    a history of a dozen jobs describes them only roughly, so single batches land a
    little above or below.
    """
    min_history: int = 5
    """Completions of a shape needed before its history replaces Venice's estimate."""
    prioritize: bool = True
    """Rank this wait's polls by how likely the job is done when the allowance is short."""

    def next_delay(self, status: Processing | None, overdue_polls: int = 0) -> float:
        """Seconds to wait after seeing status by Venice's estimate alone (the earlier schedule).

        overdue_polls counts polls past the estimate.
        """
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

    def model_for(
        self, job: TrackedJob | None, estimate_seconds: float | None = None
    ) -> tuple[CompletionModel, float] | None:
        """Return the completion model of a job and its lag cost: history, else Venice's estimate.

        None when neither is known (no history and no estimate seen yet).
        """
        key = job.history_key() if job is not None else None
        limits = (self.target_lag, self.min_interval, self.max_interval)
        if key is not None:
            history = shared_history()
            samples = history.samples(key)
            if len(samples) >= max(1, self.min_history):
                # Jobs of the shape this process sees running past every completion so
                # far (their times rounded, so the model is rebuilt only now and then).
                step = max(self.min_interval, 0.05 * max(samples))
                late = tuple(
                    math.ceil(e / step) * step
                    for e in TRACKER.running(key, TRACKER.clock())
                    if e > max(samples)
                )
                base = _cached(
                    ("history", key, hash(tuple(samples)), *limits),
                    lambda: CompletionModel.from_samples(samples),
                    limits,
                )
                if not late:
                    return base
                # The censored tail moves with every poll: keep the base's lag cost
                # rather than calibrating again each time.
                return _cached(
                    ("history", key, hash(tuple(samples)), late, *limits),
                    lambda: CompletionModel.from_samples(samples, late),
                    limits,
                    cost=base[1],
                )
        estimate = estimate_seconds
        if estimate is None and job is not None:
            estimate = job.estimate or TRACKER.last_estimate(job.api, job.model)
        if estimate is None or estimate <= 0:
            return None
        rounded = round(estimate, 3)
        # The prior spans a factor of three: aim at twice the lag rather than poll densely
        # across all of it (the shape's own history soon takes over).
        loose = (_PRIOR_LAG_FACTOR * self.target_lag, self.min_interval, self.max_interval)
        return _cached(
            ("estimate", rounded, *loose), lambda: CompletionModel.from_estimate(rounded), loose
        )

    def planned_delay(
        self, model: CompletionModel, cost: float, execution_seconds: float, overdue_polls: int
    ) -> float:
        """Seconds to wait at `execution_seconds` of a job whose completion follows `model`.

        overdue_polls counts polls made past the model's end (geometric back-off).
        """
        if execution_seconds >= model.upper:
            base = self.min_interval * self.overdue_factor ** max(0, overdue_polls)
            jittered = base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
            return min(self.max_interval, max(self.min_interval, jittered))
        spacing = model.spacing(execution_seconds, cost, self.min_interval, self.max_interval)
        # Jitter only ever brings a poll earlier: a later one would add lag.
        return max(self.min_interval, spacing * self.rng.uniform(1 - self.jitter / 2, 1.0))


def _cached(
    key: tuple[object, ...],
    build: Callable[[], CompletionModel],
    limits: tuple[float, float, float],
    cost: float | None = None,
) -> tuple[CompletionModel, float]:
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        return found
    model = build()
    result = (model, cost if cost is not None else model.lag_cost(*limits))
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = result
    return result


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
        shape: JobShape | None = None,
        api: str | None = None,
        tracker: JobTracker | None = None,
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
        self.tracker = tracker or TRACKER
        # What the clients recorded of this job (its shape when this process queued it);
        # a shape the caller gives is added for a job queued elsewhere.
        self.job = self.tracker.get(queue_id)
        if self.job is None and shape is not None:
            self.job = self.tracker.describe(api or "", queue_id, shape.model, shape)
        elif self.job is not None and shape is not None:
            self.tracker.describe(self.job.api, queue_id, self.job.model, shape)
        if self.job is not None and policy.use_history and policy.prioritize:
            self.job.prioritize = True
            self.job.priority = self.chance_done_by

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
        remaining_budget = self.max_wait_seconds - elapsed
        if remaining_budget <= 0:
            raise WaitTimeoutError(
                f"Video {self.queue_id} was still processing after {elapsed:.1f} s "
                f"({self.polls} polls; max_wait_seconds={self.max_wait_seconds:g}).",
                queue_id=self.queue_id,
            )
        return min(self._delay_after(status), remaining_budget)

    def _delay_after(self, status: Processing) -> float:
        estimate = status.average_execution_time_ms / 1000
        planned = (
            self.policy.model_for(self.job, estimate if estimate > 0 else None)
            if self.policy.use_history
            else None
        )
        if planned is None:
            if status.execution_duration_ms >= status.average_execution_time_ms > 0:
                self.overdue_polls += 1
            return self.policy.next_delay(status, self.overdue_polls)
        model, cost = planned
        seconds = status.execution_duration_ms / 1000
        if seconds >= model.upper:
            self.overdue_polls += 1
        delay = self.policy.planned_delay(model, cost, seconds, self.overdue_polls - 1)
        return max(0.0, delay - self._since_sent(seconds))

    def _since_sent(self, seconds: float) -> float:
        """Seconds since the poll that found the job `seconds` into its run was sent.

        The schedule spaces polls in the job's execution time, which Venice measured
        while that poll was in flight: sleeping the whole spacing after the answer
        would put every poll late by the round trip and the time spent reading the
        answer (tens of ms on loopback, more over the internet, and more again on a
        busy machine). The next poll is therefore timed from the last one's sending.
        0 when the tracker holds no such poll (another wait polled the job since).
        """
        job = self.job
        if job is None or job.anchor is None:
            return 0.0
        sent, seen = job.anchor
        if abs(seen - max(0.0, seconds)) > 1e-9:
            return 0.0
        return max(0.0, self.tracker.clock() - sent)

    def first_delay(self) -> float:
        """Seconds to sleep before the first poll (0: poll at once).

        Non-zero only for a job this process queued (so its age is known) whose shape
        history, or an estimate Venice gave for its model, says it cannot have finished
        yet: the first poll then comes when it might have.
        """
        job = self.job
        if job is None or job.anchor is not None or job.queued_at is None:
            return 0.0
        if not self.policy.use_history:
            return 0.0
        planned = self.policy.model_for(job)
        seconds = job.execution_seconds(self.tracker.clock())
        if planned is None or seconds is None:
            return 0.0
        model, cost = planned
        if model.cdf(seconds) > 0:
            return 0.0
        delay = self.policy.planned_delay(model, cost, seconds, 0)
        return max(0.0, min(delay, self.max_wait_seconds - self.elapsed))

    def chance_done_by(self, now: float) -> float:
        """How likely the job is to have finished by monotonic `now` since its last poll."""
        job = self.job
        if job is None:
            return 0.5
        seconds = job.execution_seconds(now)
        planned = self.policy.model_for(job)
        if planned is None or seconds is None:
            return 0.5
        model = planned[0]
        since = job.anchor[1] if job.anchor is not None else 0.0
        if since >= model.upper:
            # Overdue: the model says nothing; the longer since the last poll, the likelier.
            half_life = max(self.policy.min_interval, (model.upper - model.lower) / 4)
            return 1.0 - math.pow(0.5, max(0.0, seconds - since) / half_life)
        return model.chance_done(since, seconds)

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
