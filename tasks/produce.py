"""Tasks for batches: check and quote many requests in one task run, one task run per video.

A batch of N videos as 4N chained task runs makes Prefect's own bookkeeping the
bottleneck (thousands of threads, thousands of API writes); these tasks keep it at
N + 1 task runs, each video's steps running inside its own task run.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.errors import InvalidRequestError
from prefect_venice.generation import failure_after_queueing
from prefect_venice.models import QueueRequest, Quote, QuoteRequest
from prefect_venice.tasks.clients import shared_client
from prefect_venice.tasks.events import emit_video_event
from prefect_venice.tasks.records import VideoResult
from prefect_venice.tasks.resume import job_journal, recorded_result
from prefect_venice.tasks.retries import retry_if_retryable
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.spend import Reservation
from prefect_venice.tasks.video import (
    Steps,
    cleanup_step,
    download_step,
    queue_step,
    wait_step,
)

__all__ = ["produce_video", "quote_videos"]

#: Problems listed in one refusal; the rest are counted.
_MAX_LISTED = 10

#: In a batch, each video logs its progress at INFO at most this often (seconds); the
#: polls in between log at DEBUG. Venice's jobs take minutes, so a video still says
#: how it is doing every half minute, without a line per poll of every video.
BATCH_PROGRESS_LOG_SECONDS = 30.0


@task(
    task_run_name="quote-videos",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[1.0, 5.0],
    retry_condition_fn=retry_if_retryable,
)
def quote_videos(
    credentials: VeniceCredentials, requests: list[QueueRequest], max_parallel: int = 8
) -> list[Quote]:
    """Validate every request against one catalogue fetch, then quote each price shape once.

    Requests that differ only in prompt or image cost the same, so each distinct
    (model, duration, resolution, aspect ratio, audio, ...) is quoted once, up to
    `max_parallel` at a time. Free: nothing is queued. Raises InvalidRequestError
    listing every invalid request before any quote is asked for.
    """
    logger = get_run_logger()
    client = shared_client(credentials)
    problems: list[str] = []
    for index, request in enumerate(requests):
        try:
            client.validate(request)
        except InvalidRequestError as exc:
            problems.append(f"#{index + 1}: {exc.message}")
    if problems:
        more = len(problems) - _MAX_LISTED
        listed = " ".join(problems[:_MAX_LISTED]) + (f" (and {more} more)" if more > 0 else "")
        raise InvalidRequestError(
            f"{len(problems)} of {len(requests)} requests are not valid: {listed}"
        )
    shapes: list[QuoteRequest] = list(dict.fromkeys(request.to_quote() for request in requests))
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(shapes)))) as pool:
        prices = dict(
            zip(shapes, pool.map(lambda q: client.quote(q, validate=False), shapes), strict=True)
        )
    logger.info("Quoted %d requests with %d quote calls.", len(requests), len(shapes))
    return [prices[request.to_quote()] for request in requests]


@task(task_run_name="video-{slot}", cache_policy=NO_CACHE, persist_result=False, retries=0)
def produce_video(
    credentials: VeniceCredentials,
    request: QueueRequest,
    job_key: str,
    slot: int = 0,
    *,
    destination: str = ".",
    staging_dir: str | None = None,
    storage_block: str | None = None,
    filename: str | None = None,
    overwrite: bool = False,
    max_wait_seconds: float | None = None,
    revoke_link: bool = True,
    delete_from_venice: bool = True,
    reservation: Reservation | None = None,
    quote_usd: float | None = None,
) -> VideoResult:
    """Make one video in one task run: queue it once, wait, save, clean up.

    The steps are the tasks' own code (queue_video, wait_for_video, download_video,
    complete_video), run inside this task run, with the settings read once. A video
    the job journal records as saved (an earlier attempt of the run) is returned as it
    is, and a job recorded as queued is waited for, not paid again. A failure after the
    paid call is a JobFailedAfterQueueError naming the job; a failed clean-up only logs
    a warning. The log says when the video is queued and when it is saved (with its
    wait), and its progress at most every BATCH_PROGRESS_LOG_SECONDS; the other steps
    log at DEBUG. Leftovers of killed runs in the staging folder are left to the batch,
    which looks for them before and after its videos.
    """
    logger = get_run_logger()
    settings = VeniceSettings()
    steps = Steps(
        settings=settings,
        journal=job_journal(settings),
        logger=logger,
        detail=logging.DEBUG,
        sweep=False,
        progress_log_every=BATCH_PROGRESS_LOG_SECONDS,
    )
    job = queue_step(
        steps,
        credentials,
        request,
        slot=slot,
        job_key=job_key,
        reservation=reservation,
        quote_usd=quote_usd,
    )
    result = recorded_result(job_key, steps.journal)
    if result is None:
        try:
            ready = wait_step(
                steps,
                credentials,
                job,
                staging_dir=staging_dir,
                max_wait_seconds=max_wait_seconds,
                progress_artifact=False,
            )
            result = download_step(
                steps,
                credentials,
                job,
                ready,
                destination=destination,
                storage_block=storage_block,
                filename=filename,
                job_key=job_key,
                overwrite=overwrite,
            )
        except Exception as exc:
            emit_video_event(
                "venice.video.failed",
                model=job.model,
                queue_id=job.queue_id,
                payload={"error": type(exc).__name__},
            )
            raise failure_after_queueing(job, exc, base_url=credentials.base_url) from exc
    try:
        cleanup_step(
            steps,
            credentials,
            job,
            revoke_link=revoke_link,
            complete=delete_from_venice,
            job_key=job_key,
        )
    except Exception as exc:
        # The video is saved; a failed clean-up is worth a warning, not a failed video.
        logger.warning("Clean-up of %s failed: %s", job.queue_id, exc)
    return result
