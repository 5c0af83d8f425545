"""The poll schedule learns from history, falls back on Venice's estimate, and ranks a batch."""

from __future__ import annotations

import itertools
import json
import random
import stat
import statistics
from pathlib import Path

import pytest
from core_support import FAST_POLL, VeniceFactory

from prefect_venice import PollPolicy, Processing, QueueRequest
from prefect_venice.emulator import Emulator
from prefect_venice.history import (
    CompletionHistory,
    JobShape,
    JobTracker,
    history_file,
    shared_history,
)
from prefect_venice.pacing import Budget, Frontier
from prefect_venice.polling import CompletionModel, WaitClock

API = "https://api.example.test/api/v1"
SHAPE = JobShape("wan-2.5-preview-text-to-video", "5s", "720p")


def policy(**overrides: object) -> PollPolicy:
    options: dict[str, object] = {"jitter": 0.0, "rng": random.Random(1)}
    options.update(overrides)
    return PollPolicy(**options)  # type: ignore[arg-type]


def processing(estimate_s: float, elapsed_s: float) -> Processing:
    return Processing(
        average_execution_time_ms=estimate_s * 1000, execution_duration_ms=elapsed_s * 1000
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PREFECT_VENICE_HOME, so each test starts with an empty history."""
    monkeypatch.setenv("PREFECT_VENICE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fill_history(shape: JobShape, samples: list[float]) -> None:
    history = shared_history()
    for x in samples:
        assert history.record(shape.key(API), x - 0.5, x + 0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


# Without history: Venice's estimate ---------------------------------------------------


def test_without_history_the_schedule_comes_from_venices_estimate(home: Path) -> None:
    tracker = JobTracker()
    tracker.queued(API, "job-cold", SHAPE)
    clock = WaitClock(
        "job-cold", max_wait_seconds=3600, policy=policy(), on_progress=None, tracker=tracker
    )

    delay = clock.after_processing(processing(estimate_s=100, elapsed_s=2))

    # The prior puts the first completions at half the estimate: sleep until just after.
    assert 50 - 2 <= delay <= 50 - 2 + 5


def test_a_shape_with_fewer_completions_than_min_history_still_uses_the_estimate(
    home: Path,
) -> None:
    fill_history(SHAPE, [200, 210, 220, 230])  # four: one short of min_history=5
    tracker = JobTracker()
    job = tracker.describe(API, "job-few", SHAPE.model, SHAPE)

    planned = policy().model_for(job, estimate_seconds=100)

    assert planned is not None
    assert (planned[0].lower, planned[0].upper) == (50, 150)


def test_the_earlier_schedule_stays_available_with_use_history_false(home: Path) -> None:
    fill_history(SHAPE, [90 + 3 * i for i in range(20)])
    tracker = JobTracker()
    tracker.queued(API, "job-old", SHAPE)
    old = policy(min_interval=1, max_interval=60, use_history=False)
    clock = WaitClock(
        "job-old", max_wait_seconds=3600, policy=old, on_progress=None, tracker=tracker
    )

    assert clock.first_delay() == 0  # polls at once, as before
    assert clock.after_processing(processing(100, 40)) == 30  # half the remaining estimate


# With history ----------------------------------------------------------------------------


def test_with_history_the_first_poll_comes_near_the_shapes_earliest_completions(
    home: Path,
) -> None:
    fill_history(SHAPE, [90 + 3 * i for i in range(24)])  # 90 ... 159 s
    tracker = JobTracker(clock=Clock())
    tracker.queued(API, "job-warm", SHAPE)
    clock = WaitClock(
        "job-warm", max_wait_seconds=3600, policy=policy(), on_progress=None, tracker=tracker
    )

    first = clock.first_delay()

    # Longer than max_interval (30 s): nothing of this shape ever finished before ~87 s.
    assert 84 <= first <= 92


def test_a_history_of_another_shape_is_not_used(home: Path) -> None:
    fill_history(JobShape(SHAPE.model, "10s", "1080p"), [200 + i for i in range(20)])
    tracker = JobTracker()
    job = tracker.describe(API, "job-other", SHAPE.model, SHAPE)

    planned = policy().model_for(job, estimate_seconds=100)

    assert planned is not None
    assert planned[0].upper == 150  # the estimate's prior, not the 10 s 1080p history


def test_polls_are_denser_where_most_jobs_finish_and_within_min_max() -> None:
    rng = random.Random(7)
    model = CompletionModel.from_samples([rng.uniform(90, 162) for _ in range(50)])
    p = policy(min_interval=3, max_interval=30)
    cost = model.lag_cost(p.target_lag, p.min_interval, p.max_interval)
    times = model.poll_times(cost, p.min_interval, p.max_interval)

    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(model.lower, abs=3)  # one sleep to the start
    assert all(3 - 1e-9 <= gap <= 30 + 1e-9 for gap in gaps)
    assert gaps[-1] < gaps[0]  # the last jobs are cheap to poll for: denser at the end
    assert times[-1] >= model.upper


def test_the_schedule_meets_its_median_lag_target_on_its_own_distribution() -> None:
    rng = random.Random(3)
    model = CompletionModel.from_samples([rng.uniform(120, 300) for _ in range(50)])
    for target in (1.5, 2.5, 5.0):
        cost = model.lag_cost(target, 0.5, 30)
        times = model.poll_times(cost, 0.5, 30)
        assert model.share_within(times, target) == pytest.approx(0.5, abs=0.06)


def test_the_lag_target_holds_for_new_jobs_not_only_for_the_history() -> None:
    # Histories of 12 jobs drawn from one distribution; the schedule each one gives is
    # judged on the distribution itself, i.e. on the next jobs of the shape.
    truth = CompletionModel([(75.0, 0.0), (135.0, 1.0)])
    rng = random.Random(11)
    histories = [[rng.uniform(75, 135) for _ in range(12)] for _ in range(40)]

    def share_on_new_jobs(model: CompletionModel) -> float:
        cost = model.lag_cost(2.5, 3.0, 30.0)
        return truth.share_within(model.poll_times(cost, 3.0, 30.0), 2.5)

    calibrated = [share_on_new_jobs(CompletionModel.from_samples(h)) for h in histories]
    # The same schedules calibrated on the history itself (no blur), as before.
    in_sample = [
        share_on_new_jobs(CompletionModel(list(zip(m.times, m.probs, strict=True))))
        for m in (CompletionModel.from_samples(h) for h in histories)
    ]

    assert statistics.mean(calibrated) == pytest.approx(0.5, abs=0.04)
    assert abs(statistics.mean(in_sample) - 0.5) > abs(statistics.mean(calibrated) - 0.5) + 0.02


def test_a_poll_is_timed_from_the_sending_of_the_last_one(home: Path) -> None:
    fill_history(SHAPE, [90 + 3 * i for i in range(24)])
    now = [0.0]
    tracker = JobTracker(clock=lambda: now[0])
    tracker.queued(API, "job-rtt", SHAPE)
    clock = WaitClock(
        "job-rtt",
        max_wait_seconds=600,
        policy=policy(jitter=0.0),
        on_progress=None,
        clock=lambda: now[0],
        tracker=tracker,
    )
    # A poll sent at 10.0 found the job 95 s into its run; its answer was read at 10.4.
    tracker.processing(API, "job-rtt", SHAPE.model, 10.0, 95.0, 100.0)
    now[0] = 10.4
    delay = clock.after_processing(processing(100, 95))

    planned = clock.policy.model_for(clock.job)
    assert planned is not None
    spacing = clock.policy.planned_delay(planned[0], planned[1], 95.0, 0)
    assert delay == pytest.approx(spacing - 0.4)


def test_polls_back_off_geometrically_past_the_history(home: Path) -> None:
    model = CompletionModel.from_samples([100, 110, 120, 130, 140])
    p = policy(min_interval=2, max_interval=30, overdue_factor=2)
    cost = model.lag_cost(p.target_lag, p.min_interval, p.max_interval)
    past = model.upper + 1

    delays = [p.planned_delay(model, cost, past, n) for n in range(6)]

    assert delays == [2, 4, 8, 16, 30, 30]


def test_running_jobs_past_every_completion_widen_the_distribution() -> None:
    fastest = [90.0, 92.0, 95.0, 97.0, 99.0]
    without = CompletionModel.from_samples(fastest)
    censored = CompletionModel.from_samples(fastest, running=[104.0, 110.0, 125.0])

    assert censored.upper > 125 > without.upper
    assert censored.cdf(without.upper) == pytest.approx(5 / 8, abs=0.01)


def test_a_wait_past_its_deadline_still_times_out_with_history(home: Path) -> None:
    fill_history(SHAPE, [90 + 3 * i for i in range(24)])
    now = [0.0]
    tracker = JobTracker()
    tracker.queued(API, "job-late", SHAPE)
    clock = WaitClock(
        "job-late",
        max_wait_seconds=10,
        policy=policy(),
        on_progress=None,
        clock=lambda: now[0],
        tracker=tracker,
    )
    assert clock.after_processing(processing(100, 1)) <= 10  # capped at the deadline


# The history file ----------------------------------------------------------------------


def test_the_history_file_is_user_only(home: Path) -> None:
    fill_history(SHAPE, [100])

    path = history_file()
    assert path.parent == home / "polling"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["shapes"][SHAPE.key(API)][0][:2] == [99.5, 100.5]


def test_other_processes_see_the_completions(home: Path) -> None:
    fill_history(SHAPE, [100, 120])

    other = CompletionHistory(history_file())  # what a fresh process reads

    assert other.samples(SHAPE.key(API)) == [100, 120]


def test_history_keeps_the_newest_completions_per_shape(tmp_path: Path) -> None:
    history = CompletionHistory(tmp_path / "h.json", per_shape=3)
    for x in (10, 20, 30, 40):
        history.record("k", x, x)

    assert CompletionHistory(tmp_path / "h.json", per_shape=3).samples("k") == [20, 30, 40]


def test_a_corrupt_history_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "polling" / "history.json"
    path.parent.mkdir()
    path.write_text('{"shapes": {"k": [[1, "x"]], "j": 3}, garbage')
    history = CompletionHistory(path)

    assert history.samples("k") == []
    assert history.record("k", 50, 52)
    assert CompletionHistory(path).samples("k") == [51]


def test_a_bracket_too_wide_to_say_anything_is_not_kept(tmp_path: Path) -> None:
    history = CompletionHistory(tmp_path / "h.json")

    assert not history.record("k", 10, 100)
    assert history.samples("k") == []


def test_an_unwritable_history_keeps_completions_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    history = CompletionHistory(blocker / "polling" / "history.json")

    assert history.record("k", 50, 52)  # no error
    assert history.samples("k") == [51]


def test_the_tracker_records_the_bracket_between_the_last_processing_and_done(
    home: Path,
) -> None:
    clock = Clock()
    tracker = JobTracker(clock=clock)
    tracker.queued(API, "job-t", SHAPE)
    tracker.processing(API, "job-t", SHAPE.model, sent=600.0, seconds=100.0, estimate=130.0)
    tracker.finished(API, "job-t", SHAPE.model, sent=603.0)
    tracker.finished(API, "job-t", SHAPE.model, sent=609.0)  # a second answer: recorded once

    assert shared_history().samples(SHAPE.key(API)) == [101.5]


async def test_a_wait_learns_its_shape_and_survives_an_unwritable_home(
    venice_factory: VeniceFactory,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PREFECT_VENICE_HOME", str(blocker))  # mkdir under it fails
    venice = venice_factory(emulator, poll=FAST_POLL, pacing=False)
    request = QueueRequest(
        model="wan-2.5-preview-text-to-video",
        prompt="a gondola",
        duration="5s",
        resolution="720p",
        aspect_ratio="16:9",
    )
    job = await venice.queue(request)

    saved = await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert saved.path.exists()
    samples = shared_history().samples(JobShape.of(request).key(emulator.base_url))
    assert len(samples) == 1 and samples[0] > 0
    assert not (blocker / "polling").exists()


# A batch's frontier --------------------------------------------------------------------


class FakePacer:
    """A pacer whose window has `remaining` calls left; counts the reservations."""

    def __init__(self, remaining: int, limit: int = 10) -> None:
        self.remaining = remaining
        self.limit = limit
        self.resets_in = 30.0
        self.reserved: list[str] = []
        self.caller = ""

    def reserve(self) -> float:
        if self.remaining <= 0:
            return 1.0
        self.remaining -= 1
        self.reserved.append(self.caller)
        return 0.0

    def budget(self) -> Budget | None:
        return Budget(self.limit, self.remaining, resets_in=self.resets_in, window=60.0)


class Front:
    """A frontier over a FakePacer, on a clock the test moves."""

    def __init__(self, pacer: FakePacer) -> None:
        self.pacer = pacer
        self.clock = Clock()
        self.frontier = Frontier(pacer, clock=self.clock)  # type: ignore[arg-type]

    def delay(self, ticket: str, priority: float) -> float:
        self.pacer.caller = ticket
        return self.frontier.delay(ticket, priority)

    def leave(self, ticket: str) -> None:
        self.frontier.leave(ticket)


def frontier(pacer: FakePacer) -> Front:
    return Front(pacer)


def test_a_short_allowance_goes_to_the_job_most_likely_done() -> None:
    pacer = FakePacer(remaining=0)
    front = frontier(pacer)
    assert front.delay("early", 0.5) > 0  # the window is spent: it waits, registered
    # 3 left, half the pro-rata share for the 30 s to go (2.5, so 2) kept: 1 may go now.
    pacer.remaining, front.clock.now = 3, front.clock.now + 1

    assert front.delay("unlikely", 0.1) > 0  # ranked below "early": held back
    assert front.delay("likely", 0.9) == 0  # ranked first: goes
    assert front.delay("early", 0.5) > 0  # the rest is kept for later in the window
    pacer.resets_in, front.clock.now = 15.0, front.clock.now + 1  # 1 kept, 1 free
    assert front.delay("unlikely", 0.1) > 0  # still ranked below "early"
    assert front.delay("early", 0.5) == 0
    assert front.delay("unlikely", 0.1) > 0  # the last one is kept
    pacer.resets_in, front.clock.now = 1.0, front.clock.now + 1  # the end of the window
    assert front.delay("unlikely", 0.1) == 0

    assert pacer.reserved == ["likely", "early", "unlikely"]


def test_calls_go_first_come_when_the_allowance_is_plenty() -> None:
    pacer = FakePacer(remaining=0, limit=100)
    front = frontier(pacer)
    assert front.delay("early", 0.5) > 0
    pacer.remaining, front.clock.now = 80, front.clock.now + 1

    assert front.delay("unlikely", 0.1) == 0  # enough for everyone waiting
    assert pacer.reserved == ["unlikely"]


def test_a_call_that_left_no_longer_holds_others_back() -> None:
    pacer = FakePacer(remaining=0)
    front = frontier(pacer)
    assert front.delay("gone", 0.9) > 0
    pacer.remaining, front.clock.now = 3, front.clock.now + 1
    assert front.delay("waiting", 0.1) > 0

    front.leave("gone")  # its task was cancelled

    assert front.delay("waiting", 0.1) == 0


def test_a_wait_gives_its_job_a_priority_that_grows_with_time(home: Path) -> None:
    fill_history(SHAPE, [90 + 3 * i for i in range(24)])
    clock = Clock()
    tracker = JobTracker(clock=clock)
    tracker.queued(API, "job-p", SHAPE)
    tracker.processing(API, "job-p", SHAPE.model, sent=clock.now, seconds=100.0, estimate=130.0)
    wait = WaitClock(
        "job-p", max_wait_seconds=3600, policy=policy(), on_progress=None, tracker=tracker
    )
    job = tracker.get("job-p")
    assert job is not None and job.prioritize and job.priority is not None

    soon, later = job.priority(clock.now + 2), job.priority(clock.now + 20)

    assert 0 < soon < later <= 1
    assert wait.chance_done_by(clock.now + 20) == later
