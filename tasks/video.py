"""Prefect tasks, one per step of a Venice video: validate, quote, queue, wait, download, clean up.

The tasks are synchronous on purpose. Prefect 3 runs a sync task called from an
async flow in place (and `.submit()` runs it on the task runner's threads), while
an async task called from a sync flow returns an un-awaited coroutine. Sync tasks
therefore work from both kinds of flow.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.client import VeniceClient
from prefect_venice.download import ensure_directory
from prefect_venice.errors import UnconfirmedQueueError, VeniceError, VideoLinkMissingError
from prefect_venice.generation import (
    STAGING_DIR_NAME,
    LocalDestination,
    check_storage_key,
    clean_up,
    queue_once,
    remove_partial_downloads,
    remove_stale_staging,
)
from prefect_venice.journal import JobJournal
from prefect_venice.models import (
    Processing,
    QueuedJob,
    QueueRequest,
    Quote,
    QuoteRequest,
    ReadyAtLink,
    VideoModel,
    VideoSaved,
)
from prefect_venice.polling import WaitClock
from prefect_venice.redaction import redact_url
from prefect_venice.tasks import spend
from prefect_venice.tasks.clients import shared_client, video_models
from prefect_venice.tasks.events import emit_video_event
from prefect_venice.tasks.pacing import pace
from prefect_venice.tasks.progress import ProgressReporter
from prefect_venice.tasks.records import CleanupResult, VideoReady, VideoResult
from prefect_venice.tasks.resume import job_journal, job_key_for
from prefect_venice.tasks.retries import retry_if_retryable
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.spend import Reservation
from prefect_venice.tasks.storage import load_writable_file_system, save_to_block
from prefect_venice.validation import find_model, validate_request

__all__ = [
    "STAGING_DIR_NAME",
    "complete_video",
    "download_video",
    "queue_video",
    "quote_video",
    "validate_video_request",
    "wait_for_video",
]

# Free calls may be retried by Prefect when the error says it can help; the client
# has already retried 429/500/503 and transport errors with backoff by then.
_FREE_CALL_RETRIES = 2
_FREE_CALL_RETRY_DELAYS = [1.0, 5.0]


@dataclass(frozen=True)
class Steps:
    """What the steps of one video share: settings, journal, logger, how much they say.

    Each task below reads the settings when it runs and builds its own; produce_video
    (one task run per video of a batch) builds one for all four steps, so a video reads
    the settings once, not six times. `detail` is the level of the lines beyond
    "queued" and "saved" (ready, link revoked, media deleted): DEBUG in a batch, where
    a line per step of hundreds of videos buried the log and cost the Prefect API a
    write each. `sweep`: look for leftovers of killed runs in the staging folder at
    each step (a batch sweeps once before and once after instead).
    `progress_log_every`: seconds between two INFO progress lines of one wait (0: every
    poll; the others go to DEBUG).
    """

    settings: VeniceSettings
    journal: JobJournal
    logger: logging.Logger | logging.LoggerAdapter[Any]
    detail: int = logging.INFO
    sweep: bool = True
    progress_log_every: float = 0.0

    @classmethod
    def for_task(cls) -> Steps:
        """Build the steps of a task run on its own: settings read now, every line at INFO."""
        settings = VeniceSettings()
        return cls(settings=settings, journal=job_journal(settings), logger=get_run_logger())


@task(
    task_run_name="validate-{request.model}",
    cache_policy=NO_CACHE,
    retries=_FREE_CALL_RETRIES,
    retry_delay_seconds=_FREE_CALL_RETRY_DELAYS,
    retry_condition_fn=retry_if_retryable,
)
def validate_video_request(
    credentials: VeniceCredentials, request: QueueRequest | QuoteRequest
) -> VideoModel:
    """Check a request against its model's constraints from the model catalog (free).

    Raises InvalidRequestError (naming the allowed values) before anything is paid.
    """
    logger = get_run_logger()
    client = shared_client(credentials)
    model = client.validate(request)
    logger.info("Request fits %s (%s).", model.id, model.privacy or "privacy not listed")
    return model


@task(
    task_run_name="quote-{request.model}",
    cache_policy=NO_CACHE,
    retries=_FREE_CALL_RETRIES,
    retry_delay_seconds=_FREE_CALL_RETRY_DELAYS,
    retry_condition_fn=retry_if_retryable,
)
def quote_video(credentials: VeniceCredentials, request: QueueRequest | QuoteRequest) -> Quote:
    """Ask Venice what the request would cost in USD (free; nothing is queued)."""
    logger = get_run_logger()
    client = shared_client(credentials)
    quote = client.quote(request, validate=False)
    logger.info("Venice quotes $%.4f for %s (%s).", quote.usd, request.model, request.duration)
    return quote


@task(
    task_run_name="queue-{request.model}",
    # Never a Prefect result: the answer may hold a private link, and the job journal,
    # not Prefect's result storage, is what makes a retry resume instead of paying.
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=0,
)
def queue_video(
    credentials: VeniceCredentials,
    request: QueueRequest,
    slot: int = 0,
    job_key: str | None = None,
    reservation: Reservation | None = None,
    quote_usd: float | None = None,
) -> QueuedJob:
    """Queue the video: the only paid call, made at most once per job key.

    Before the request is sent, the job key is recorded in the job journal
    (prefect_venice.journal, a user-only file on the worker, or the shared folder
    PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR names); the answer is recorded the moment
    it arrives. A later attempt with the same key (a task or flow retry, a UI Retry, a
    retried parent, a rerun with the same `job_key`) returns the recorded job instead
    of paying again, and one that finds a request sent but no answer recorded stops
    with UnconfirmedQueueError instead of paying blindly.

    The default key ties the job to this flow run, its `slot` (which tells identical
    requests of one run apart) and the request. No Prefect retries: the client
    already retries the 429 and 500 answers that mean no job was created.

    When the credentials block has a spend cap, the job's quote is reserved against
    the period's allowance on the Prefect server before the request is sent (unless
    the flow passes its own `reservation`): a quote that does not fit raises
    SpendLimitError and nothing is sent; a job that was not created gives the
    reservation back, one that was is counted as spent. A resumed job reserves nothing.

    When the PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT setting names a global
    rate limit, every /video/queue request (retries included) first takes a slot of
    it, so all workers together stay inside Venice's 40 queue calls a minute.
    """
    return queue_step(
        Steps.for_task(),
        credentials,
        request,
        slot=slot,
        job_key=job_key,
        reservation=reservation,
        quote_usd=quote_usd,
    )


def queue_step(
    steps: Steps,
    credentials: VeniceCredentials,
    request: QueueRequest,
    *,
    slot: int = 0,
    job_key: str | None = None,
    reservation: Reservation | None = None,
    quote_usd: float | None = None,
) -> QueuedJob:
    """Run queue_video's code inside the caller's task run (see queue_video)."""
    logger = steps.logger
    limit = steps.settings.queue_rate_limit
    key = job_key or job_key_for(request, slot)
    # One slot per /video/queue request: this one, and any the client retries after a
    # 429 or 500 (those retries go through the policy's sleep).
    client = shared_client(credentials, limit)
    # Checked here too (free, against the cached catalogue): the task is public, and
    # a flow that composes it may skip validate_video_request.
    try:
        # The catalogue of the process's unpaced client: one fetch per process, whichever
        # client (paced or not) asks first.
        validate_request(request, find_model(video_models(credentials), request.model))
    except VeniceError:
        spend.release(reservation)  # nothing will be sent
        raise
    journal = steps.journal
    if journal.get(key) is not None:
        spend.release(reservation)  # a recorded job is paid for already: nothing to reserve
        reservation = None
    elif reservation is None and credentials.spend_limit_usd is not None:
        quote_usd = client.quote(request, validate=False).usd
        reservation = spend.reserve(credentials, quote_usd, model=request.model)
    try:
        queued = queue_once(
            client,
            request,
            key=key,
            journal=journal,
            before_send=lambda: pace(limit),
            quote_usd=quote_usd if quote_usd is not None else getattr(reservation, "usd", None),
        )
    except UnconfirmedQueueError:
        raise  # may have been charged: the reservation stays
    except VeniceError:
        spend.release(reservation)  # Venice answered, and not with a job
        raise
    # Anything else (an interrupt mid-send) keeps the reservation: never undercount.
    if queued.resumed:
        spend.release(reservation)
    else:
        spend.settle(reservation)
    job = queued.job
    link = job.download_url.get_secret_value() if job.download_url else None
    if queued.resumed:
        logger.info(
            "Job key %s already holds video %s (%s, %s): resuming it; nothing was paid again.",
            key,
            job.queue_id,
            job.model,
            queued.entry.state,
        )
        return job
    logger.info(
        "Queued video %s on %s%s.",
        job.queue_id,
        job.model,
        f"; private link at {redact_url(link)}" if link else "",
    )
    emit_video_event(
        "venice.video.queued",
        model=job.model,
        queue_id=job.queue_id,
        payload={"private_link": link is not None},
    )
    return job


@task(
    task_run_name="wait-{job.queue_id}",
    cache_policy=NO_CACHE,
    retries=_FREE_CALL_RETRIES,
    retry_delay_seconds=_FREE_CALL_RETRY_DELAYS,
    retry_condition_fn=retry_if_retryable,
)
def wait_for_video(
    credentials: VeniceCredentials,
    job: QueuedJob,
    staging_dir: str | None = None,
    max_wait_seconds: float | None = None,
    progress_artifact: bool = True,
) -> VideoReady:
    """Poll /video/retrieve inside this one task run until the video is ready.

    Polls follow Venice's own estimate (see prefect_venice.polling) and, when the
    PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT setting names a global rate
    limit, take a slot of it before each call. A progress artifact and the log show
    the estimated progress and time left. After max_wait_seconds (default: the
    PREFECT_INTEGRATIONS_VENICE_MAX_WAIT_SECONDS setting) it fails with
    WaitTimeoutError; the job keeps running on Venice and can be waited on again.
    Transient trouble (500/503, 429, dropped connections that outlast the client's
    own retries) never ends the wait before that deadline: it backs off and polls on.

    For public models the final retrieve answer is the MP4 itself: it is streamed,
    checked and saved into staging_dir (default: a temporary folder), and the
    returned record says where. For private models it waits at the job's link.
    With `progress_artifact=False` (batches), progress goes to the log only.
    """
    return wait_step(
        Steps.for_task(),
        credentials,
        job,
        staging_dir=staging_dir,
        max_wait_seconds=max_wait_seconds,
        progress_artifact=progress_artifact,
    )


def wait_step(
    steps: Steps,
    credentials: VeniceCredentials,
    job: QueuedJob,
    *,
    staging_dir: str | None = None,
    max_wait_seconds: float | None = None,
    progress_artifact: bool = True,
) -> VideoReady:
    """Run wait_for_video's code inside the caller's task run (see wait_for_video)."""
    logger = steps.logger
    settings = steps.settings
    limit = max_wait_seconds if max_wait_seconds is not None else settings.max_wait_seconds
    staged = _staging_file(staging_dir, job.queue_id, sweep=steps.sweep)
    reporter = ProgressReporter(
        job.queue_id,
        job.model,
        artifact=progress_artifact,
        log_every=steps.progress_log_every,
        logger=logger,
    )
    clock = WaitClock(
        job.queue_id,
        max_wait_seconds=limit,
        policy=settings.poll_policy(),
        on_progress=reporter,
    )
    client = shared_client(credentials, settings.retrieve_rate_limit)
    # A job this process just queued cannot be done yet: the first poll waits until the
    # shape's history (or Venice's estimate) says it might be (0 when unknown).
    time.sleep(min(clock.first_delay(), limit))
    while True:
        pace(settings.retrieve_rate_limit)
        try:
            answer = client.retrieve(job, staged)
        except VeniceError as exc:
            if not exc.retryable:
                raise
            delay = clock.after_transient_error(exc)  # raises at the deadline
            logger.warning("Polling %s hit %s; trying again in %.1f s.", job.queue_id, exc, delay)
            time.sleep(delay)
            continue
        if not isinstance(answer, Processing):
            break
        time.sleep(clock.after_processing(answer))
    reporter.finish()
    polls = clock.polls + 1
    if isinstance(answer, VideoSaved):
        logger.log(
            steps.detail,
            "Video %s ready after %.1f s and %d polls; %d bytes received.",
            job.queue_id,
            clock.elapsed,
            polls,
            answer.size_bytes,
        )
        return VideoReady(
            queue_id=job.queue_id,
            model=job.model,
            inline_path=str(answer.path),
            size_bytes=answer.size_bytes,
            sha256=answer.sha256,
            polls=polls,
            wait_seconds=clock.elapsed,
        )
    logger.log(
        steps.detail,
        "Video %s ready at its private link after %.1f s and %d polls.",
        job.queue_id,
        clock.elapsed,
        polls,
    )
    return VideoReady(
        queue_id=job.queue_id, model=job.model, polls=polls, wait_seconds=clock.elapsed
    )


@task(
    task_run_name="download-{job.queue_id}",
    cache_policy=NO_CACHE,
    # No Prefect retries: the client already retries a dropped transfer a few times,
    # and a private link that is fetched again and again answers 429 or 410. A
    # retry of the whole flow run resumes here without queueing again.
    retries=0,
)
def download_video(
    credentials: VeniceCredentials,
    job: QueuedJob,
    ready: VideoReady | None = None,
    destination: str = ".",
    storage_block: str | None = None,
    filename: str | None = None,
    job_key: str | None = None,
    overwrite: bool = False,
) -> VideoResult:
    """Save the finished MP4 to a local folder or a Prefect file-system block.

    The MP4 comes from the retrieve answer (already staged by wait_for_video) or
    from the job's private link, fetched without the API key. Without `ready`, one
    retrieve call finds out which (and fails if the video is still processing).
    Every write is streamed to a temporary file and moved into place only when it
    checks out, so a failure never leaves half a file at the destination, and an
    existing file is never replaced unless `overwrite` (the video is then saved
    beside it, under a name that adds its queue id).

    Args:
        credentials: The Venice credentials block.
        job: The queue answer.
        ready: What wait_for_video returned, if it ran in this flow run.
        destination: Local folder for the MP4 (ignored with storage_block).
        storage_block: Name of a writable file-system block ("local-file-system/videos"):
            the MP4 is staged locally, then renamed or streamed in chunks into it
            (LocalFileSystem, RemoteFileSystem, SMB); other blocks get write_path(bytes),
            which holds the whole video in memory once (a warning says so).
        filename: A plain file name (local) or a relative storage key (block); default
            `<queue_id>.mp4`.
        job_key: The job's key in the job journal; when given, the save is recorded
            there, so a retried run skips this video.
        overwrite: Replace an existing file of that name.

    Returns:
        A VideoResult: where the file is, its size and SHA-256, never the bytes.

    """
    return download_step(
        Steps.for_task(),
        credentials,
        job,
        ready,
        destination=destination,
        storage_block=storage_block,
        filename=filename,
        job_key=job_key,
        overwrite=overwrite,
    )


def download_step(
    steps: Steps,
    credentials: VeniceCredentials,
    job: QueuedJob,
    ready: VideoReady | None = None,
    *,
    destination: str = ".",
    storage_block: str | None = None,
    filename: str | None = None,
    job_key: str | None = None,
    overwrite: bool = False,
) -> VideoResult:
    """Run download_video's code inside the caller's task run (see download_video)."""
    logger = steps.logger
    started = time.monotonic()
    local = (
        None
        if storage_block
        else LocalDestination(
            Path(destination).expanduser().resolve(), filename, overwrite, sweep=steps.sweep
        )
    )
    staging_dir = str(local.staging_dir) if local else None
    client = shared_client(credentials)
    staged = _staged_video(
        client_ready=ready, job=job, client=client, staging_dir=staging_dir, sweep=steps.sweep
    )
    waited = f" (ready after {ready.wait_seconds:.1f} s and {ready.polls} polls)" if ready else ""
    if storage_block is not None:
        key = check_storage_key(filename or f"{job.queue_id}.mp4")
        fs = load_writable_file_system(storage_block)
        try:
            location = save_to_block(fs, key, staged.path, logger=logger)
        finally:
            staged.path.unlink(missing_ok=True)
        logger.info(
            "Saved video %s to block %r at %s%s.", job.queue_id, storage_block, location, waited
        )
    else:
        assert local is not None
        final = local.place(staged.path, job.queue_id)
        if final != local.final_path(job.queue_id):
            logger.warning(
                "%s appeared while the video was made; video %s was saved beside it as %s.",
                local.final_path(job.queue_id),
                job.queue_id,
                final,
            )
        location = str(final)
        logger.info("Saved video %s to %s%s.", job.queue_id, location, waited)
    result = VideoResult(
        queue_id=job.queue_id,
        model=job.model,
        path=location,
        storage_block=storage_block,
        size_bytes=staged.size_bytes,
        sha256=staged.sha256,
        source=staged.source,
        wait_seconds=ready.wait_seconds if ready else None,
        download_seconds=time.monotonic() - started,
    )
    if job_key is not None:
        steps.journal.saved(job_key, result.model_dump(mode="json"))
    return result


@task(
    task_run_name="cleanup-{job.queue_id}",
    cache_policy=NO_CACHE,
    retries=_FREE_CALL_RETRIES,
    retry_delay_seconds=_FREE_CALL_RETRY_DELAYS,
    retry_condition_fn=retry_if_retryable,
)
def complete_video(
    credentials: VeniceCredentials,
    job: QueuedJob,
    revoke_link: bool = True,
    complete: bool = True,
    job_key: str | None = None,
) -> CleanupResult:
    """Clean up after a saved video: revoke the private link and delete the media on Venice.

    Run it only once the file is saved. A link or job that is already gone is not
    an error (the result says False for it). With `job_key`, the private link is then
    dropped from the job journal (even if the clean-up fails), so no secret stays at rest.
    """
    return cleanup_step(
        Steps.for_task(),
        credentials,
        job,
        revoke_link=revoke_link,
        complete=complete,
        job_key=job_key,
    )


def cleanup_step(
    steps: Steps,
    credentials: VeniceCredentials,
    job: QueuedJob,
    *,
    revoke_link: bool = True,
    complete: bool = True,
    job_key: str | None = None,
) -> CleanupResult:
    """Run complete_video's code inside the caller's task run (see complete_video)."""
    logger = steps.logger
    client = shared_client(credentials)
    try:
        outcome = clean_up(client, job, revoke_link=revoke_link, complete=complete)
    finally:
        if job_key is not None:
            # The video is saved: the link has no more use at rest, cleaned up or not.
            steps.journal.cleaned(job_key)
    if outcome.link_revoked is not None:
        state = "revoked" if outcome.link_revoked else "was already gone"
        logger.log(steps.detail, "Private link of %s %s.", job.queue_id, state)
    if outcome.media_deleted is not None:
        state = "deleted on Venice" if outcome.media_deleted else "was already gone"
        logger.log(steps.detail, "Media of %s %s.", job.queue_id, state)
    return CleanupResult(
        queue_id=job.queue_id,
        link_revoked=outcome.link_revoked,
        media_deleted=outcome.media_deleted,
    )


def _staging_file(staging_dir: str | None, queue_id: str, *, sweep: bool = True) -> Path:
    base = (
        Path(staging_dir).expanduser()
        if staging_dir
        else Path(tempfile.gettempdir()) / "prefect-venice"
    )
    if sweep:
        remove_stale_staging(base, remove_empty=False)  # leftovers of killed runs
    remove_partial_downloads(base, queue_id)  # a killed attempt at this very job
    ensure_directory(base)
    return base / f"{queue_id}.mp4"


def _staged_video(
    *,
    client_ready: VideoReady | None,
    job: QueuedJob,
    client: VeniceClient,
    staging_dir: str | None,
    sweep: bool = True,
) -> VideoSaved:
    """Return the MP4 on local disk: staged by wait_for_video, or fetched now."""
    if client_ready is not None and client_ready.inline_path is not None:
        inline = Path(client_ready.inline_path)
        if inline.is_file() and client_ready.sha256 and client_ready.size_bytes is not None:
            return VideoSaved(
                path=inline,
                size_bytes=client_ready.size_bytes,
                sha256=client_ready.sha256,
                queue_id=job.queue_id,
                source="retrieve",
            )
    staged_path = _staging_file(staging_dir, job.queue_id, sweep=sweep)
    if client_ready is None or client_ready.inline_path is not None:
        # No wait in this run, or its staged file is gone: ask Venice once more.
        answer = client.retrieve(job, staged_path)
        if isinstance(answer, VideoSaved):
            return answer
        if isinstance(answer, Processing):
            raise VeniceError(
                f"Video {job.queue_id} is still processing; run wait_for_video first.",
                queue_id=job.queue_id,
                retryable=False,
            )
        assert isinstance(answer, ReadyAtLink)
    if job.download_url is None:
        raise VideoLinkMissingError(
            f"Video {job.queue_id} waits at a private link, but the job carries no download_url.",
            queue_id=job.queue_id,
        )
    return client.download(job.download_url, staged_path, queue_id=job.queue_id)
