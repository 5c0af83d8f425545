"""The generate_videos flow: several videos at once under one total budget, resumable."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar, cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from pydantic import Field

from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.errors import BudgetExceededError, CallerError
from prefect_venice.flows.naming import batch_run_name
from prefect_venice.flows.preflight import PlannedVideo, plan_videos
from prefect_venice.flows.request import VideoRequest
from prefect_venice.flows.video import best_effort, load_credentials, refused
from prefect_venice.generation import format_usd, remove_stale_staging
from prefect_venice.journal import JournalEntry
from prefect_venice.tasks import VideoResult, produce_video, quote_videos, spend
from prefect_venice.tasks.clients import shared_client
from prefect_venice.tasks.events import emit_video_event
from prefect_venice.tasks.resume import job_journal, job_key_for, saved_result
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.spend import Reservation

__all__ = [
    "BATCH_PROGRESS_ARTIFACT_KEY",
    "BATCH_SUMMARY_ARTIFACT_KEY",
    "DEFAULT_MAX_IN_FLIGHT",
    "generate_videos",
    "run_windowed",
]

BATCH_SUMMARY_ARTIFACT_KEY = "venice-batch-summary"
BATCH_PROGRESS_ARTIFACT_KEY = "venice-batch-progress"
DEFAULT_MAX_IN_FLIGHT = 100
"""Default bound on videos queued (paid) but not yet saved in one batch run.

Venice queues at most 40 videos a minute per key and a video takes two to three
minutes, so at that pace 80 to 120 are in flight: a window of 100 lets a batch use the
whole allowance without paying more than about two and a half minutes of queue calls
ahead of its deliveries (a window of 50 left a third of the allowance unused).
"""

R = TypeVar("R")


@flow(name="generate-videos", flow_run_name=batch_run_name)
def generate_videos(
    requests: list[VideoRequest],
    max_usd: float = 5.0,
    credentials_block: str = "venice",
    max_in_flight: Annotated[
        int,
        Field(ge=1, le=1000, description="Most videos queued (paid) but not yet saved at once."),
    ] = DEFAULT_MAX_IN_FLIGHT,
) -> list[VideoResult]:
    """Generate several videos concurrently, gated by one total budget before any is queued.

    Every request is checked, validated and quoted first (one catalogue fetch, one
    quote per distinct price shape); if the quotes add up to more than `max_usd` (or
    one is above its own `max_usd`), the run fails and nothing is queued. Then the
    videos run as one task run each, at most `max_in_flight` at a time, so the run
    never pays far ahead of what it can deliver. Each is queued at most once per job
    key; a retried run keeps the videos it already saved and resumes only the
    unfinished ones. Calls to Venice are paced to its per-key limits.

    Args:
        requests: The videos to make.
        max_usd: Budget in USD for all of them together.
        credentials_block: Name of the VeniceCredentials block.
        max_in_flight: Most videos queued but not yet saved at any moment.

    Returns:
        One VideoResult per request, in order.

    """
    logger = get_run_logger()
    first_model = requests[0].model if requests else "none"
    settings = VeniceSettings()  # read once for the run (the videos read their own once)
    journal = job_journal(settings)
    try:
        credentials = load_credentials(credentials_block)
        catalogue = shared_client(credentials).list_video_models
        plans = plan_videos(requests, max_usd=max_usd, catalogue=catalogue, settings=settings)
        queue_requests = [plan.queue_request for plan in plans]
        quotes = [quote.usd for quote in quote_videos(credentials, queue_requests)]
        _check_total(requests, quotes, max_usd)
        keys = [
            job_key_for(plan.queue_request, slot, plan.request.job_name)
            for slot, plan in enumerate(plans)
        ]
        # One look in the journal per video: saved ones are done, recorded ones paid for.
        entries = [journal.get(key) for key in keys]
        reservations = _reserve(credentials, entries, quotes, first_model)
    except CallerError as exc:
        return cast(list[VideoResult], refused(exc, model=first_model, videos=len(requests)))
    logger.info(
        "Quotes add up to %s, within the budget of %s; making %d videos, %d at a time.",
        format_usd(sum(quotes)),
        format_usd(max_usd),
        len(requests),
        max_in_flight,
    )
    results: dict[int, VideoResult] = {}
    failures: dict[int, BaseException] = {}
    for slot, entry in enumerate(entries):
        done = saved_result(entry)
        if done is not None:
            results[slot] = done  # saved by an earlier attempt of this run: nothing to do
    if results:
        logger.info("%d of %d videos were saved by an earlier attempt.", len(results), len(plans))

    def submit(slot: int) -> PrefectFuture[VideoResult]:
        return _submit(
            credentials, plans[slot], keys[slot], slot, reservations.get(slot), quotes[slot]
        )

    todo = [slot for slot in range(len(plans)) if slot not in results]
    progress = BatchProgress(len(plans))
    try:
        progress.update(len(results), 0)
        for slot, future in run_windowed(submit, todo, max_in_flight):
            state = future.state
            if state.is_completed():
                results[slot] = _result_of(future)
            else:
                failures[slot] = _error_of(future)
            progress.update(len(results), len(failures))
    finally:
        progress.close()
        # Only now, with no video of this run staging there any more.
        for staging in {plan.destination.staging_dir for plan in plans if plan.destination}:
            remove_stale_staging(staging)

    if failures:
        first = min(failures)
        logger.error(
            "%d of %d videos failed; the first (#%d) raises. Retry the run: it resumes "
            "only the unfinished videos, without paying again for any.",
            len(failures),
            len(plans),
            first + 1,
        )
        raise failures[first]
    ordered = [
        results[slot].model_copy(update={"cost_usd": quote}) for slot, quote in enumerate(quotes)
    ]
    best_effort(
        "batch summary artifact",
        lambda: create_markdown_artifact(
            key=BATCH_SUMMARY_ARTIFACT_KEY, markdown=_summary(ordered, sum(quotes))
        ),
    )
    for result in ordered:
        emit_video_event(
            "venice.video.completed",
            model=result.model,
            queue_id=result.queue_id,
            payload={"cost_usd": result.cost_usd, "size_bytes": result.size_bytes},
        )
    return ordered


def run_windowed(
    submit: Callable[[int], PrefectFuture[R]], slots: list[int], window: int
) -> Iterator[tuple[int, PrefectFuture[R]]]:
    """Submit `slots` with at most `window` unfinished at once; yield each as it finishes."""
    finished: queue.Queue[int] = queue.Queue()
    pending: dict[int, PrefectFuture[R]] = {}
    upcoming = iter(slots)
    exhausted = False
    while True:
        while not exhausted and len(pending) < window:
            slot = next(upcoming, None)
            if slot is None:
                exhausted = True
                break
            future = submit(slot)
            pending[slot] = future
            future.add_done_callback(_announce(finished, slot))
        if not pending:
            return
        slot = finished.get()
        future = pending.pop(slot)
        future.wait()
        yield slot, future


def _announce(finished: queue.Queue[int], slot: int) -> Callable[[PrefectFuture[R]], None]:
    def done(_future: PrefectFuture[R]) -> None:
        finished.put(slot)

    return done


class BatchProgress:
    """One progress artifact for the whole batch (saved / failed of N), best effort.

    Written by a thread of its own, at most once a second: each write is a call to
    the Prefect API, and made by the thread that submits the videos it held back the
    next submission (tens of milliseconds each on a busy server). `update` only
    records the latest figures; `close` writes the last ones and waits for the writer.
    """

    #: Seconds between two writes.
    MIN_INTERVAL = 1.0
    #: Longest `close` waits for the last write.
    CLOSE_TIMEOUT = 10.0

    def __init__(self, total: int) -> None:
        self.total = total
        self.artifact_id: UUID | None = None
        self._shown: tuple[int, int] | None = None
        self._latest: tuple[int, int] | None = None
        self._closing = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def update(self, saved: int, failed: int) -> None:
        """Record how many videos are saved (and failed) so far; written soon, not now."""
        with self._wake:
            self._latest = (saved, failed)
            if self._thread is None:
                # The writer needs this run's context (the artifact belongs to the run).
                context = contextvars.copy_context()
                self._thread = threading.Thread(
                    target=context.run, args=(self._run,), name="venice-batch-progress", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        """Write the latest figures if they are not shown yet, and stop the writer."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(self.CLOSE_TIMEOUT)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._latest == self._shown and not self._closing:
                    self._wake.wait()
                latest, closing = self._latest, self._closing
            if latest is not None and latest != self._shown:
                self._write(*latest)
                self._shown = latest
            if closing:
                with self._wake:
                    if self._latest == self._shown:
                        return
                continue  # figures arrived during the write: show them, then stop
            with self._wake:
                # At most one write a second; close() cuts the pause short.
                self._wake.wait_for(lambda: self._closing, timeout=self.MIN_INTERVAL)

    def _write(self, saved: int, failed: int) -> None:
        percent = 100.0 * (saved + failed) / self.total if self.total else 100.0
        description = f"{saved} of {self.total} videos saved" + (
            f", {failed} failed" if failed else ""
        )

        def write() -> None:
            if self.artifact_id is None:
                created = create_progress_artifact(
                    progress=percent, key=BATCH_PROGRESS_ARTIFACT_KEY, description=description
                )
                self.artifact_id = created if isinstance(created, UUID) else None
            else:
                update_progress_artifact(
                    self.artifact_id, progress=percent, description=description
                )

        best_effort("batch progress artifact", write)


def _reserve(
    credentials: VeniceCredentials,
    entries: list[JournalEntry | None],
    quotes: list[float],
    model: str,
) -> dict[int, Reservation]:
    """Reserve the videos not yet recorded against the block's cap, together: all or none."""
    if credentials.spend_limit_usd is None:
        return {}  # no cap: nothing to reserve
    fresh = [slot for slot, entry in enumerate(entries) if entry is None]
    total = spend.reserve(credentials, sum(quotes[slot] for slot in fresh), model=model)
    if total is None or not fresh:
        spend.release(total)
        return {}
    parts = spend.split(total, [quotes[slot] for slot in fresh])
    return dict(zip(fresh, parts, strict=True))


def _submit(
    credentials: VeniceCredentials,
    plan: PlannedVideo,
    key: str,
    slot: int,
    reservation: Reservation | None = None,
    quote_usd: float | None = None,
) -> PrefectFuture[VideoResult]:
    request = plan.request
    return produce_video.submit(
        credentials,
        plan.queue_request,
        key,
        slot,
        reservation=reservation,
        quote_usd=quote_usd,
        destination=str(plan.destination.directory) if plan.destination else ".",
        staging_dir=plan.staging_dir,
        storage_block=request.storage_block,
        filename=request.filename,
        overwrite=request.overwrite,
        max_wait_seconds=request.max_wait_seconds,
        revoke_link=request.revoke_link,
        delete_from_venice=request.delete_from_venice,
    )


def _result_of(future: PrefectFuture[VideoResult]) -> VideoResult:
    """Return a completed video's result, from its final state when that holds it in memory.

    PrefectFuture.result() runs a coroutine on Prefect's event-loop thread for every
    call; with a hundred videos' threads busy, each cost the submitting thread
    milliseconds. produce_video persists no result, so its final state carries the
    value itself (in a result record); anything else goes through result().
    """
    data = future.state.data
    value = getattr(data, "result", data)
    return value if isinstance(value, VideoResult) else future.result()


def _error_of(future: PrefectFuture[VideoResult]) -> BaseException:
    try:
        future.result()
    except BaseException as exc:
        return exc
    return RuntimeError(f"Task run {future.task_run_id} ended {future.state.name}.")


def _check_total(requests: list[VideoRequest], quotes: list[float], max_usd: float) -> None:
    total = sum(quotes)
    over_own = [
        f"#{index + 1} ({format_usd(quote)} > {format_usd(request.max_usd)})"
        for index, (request, quote) in enumerate(zip(requests, quotes, strict=True))
        if request.max_usd is not None and quote > request.max_usd
    ]
    if total <= max_usd and not over_own:
        return
    emit_video_event(
        "venice.video.budget-exceeded",
        model=requests[0].model if requests else "none",
        payload={"quote_usd": total, "max_usd": max_usd, "videos": len(requests)},
    )
    detail = f"; over their own budget: {', '.join(over_own)}" if over_own else ""
    raise BudgetExceededError(
        f"The quotes of {len(requests)} videos add up to {format_usd(total)}, against a "
        f"budget of {format_usd(max_usd)}{detail}; nothing was queued or charged."
    )


def _summary(results: list[VideoResult], total: float) -> str:
    rows = "\n".join(
        f"| `{r.queue_id}` | `{r.model}` | {format_usd(r.cost_usd or 0.0)} | `{r.path}` "
        f"| {r.size_bytes} |"
        for r in results
    )
    return (
        f"# {len(results)} Venice videos ready ({format_usd(total)})\n\n"
        "| queue id | model | cost | file | bytes |\n| --- | --- | --- | --- | --- |\n"
        f"{rows}\n"
    )
