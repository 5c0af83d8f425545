"""The generate_videos flow: several videos at once under one total budget."""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger

from prefect_venice.errors import BudgetExceededError
from prefect_venice.flows.request import VideoRequest
from prefect_venice.flows.video import (
    check_before_queueing,
    failure_after_queueing,
    format_usd,
    load_credentials,
    staging_dir_for,
)
from prefect_venice.models import QueuedJob
from prefect_venice.tasks import (
    VideoResult,
    complete_video,
    download_video,
    queue_video,
    quote_video,
    validate_video_request,
    wait_for_video,
)
from prefect_venice.tasks._support import emit_video_event

__all__ = ["BATCH_SUMMARY_ARTIFACT_KEY", "generate_videos"]

BATCH_SUMMARY_ARTIFACT_KEY = "venice-batch-summary"


@flow(name="generate-videos", flow_run_name="video-batch")
def generate_videos(
    requests: list[VideoRequest], max_usd: float = 5.0, credentials_block: str = "venice"
) -> list[VideoResult]:
    """Generate several videos concurrently, gated by one total budget before any is queued.

    Every request is validated and quoted first; if the quotes add up to more than
    `max_usd` (or one is above its own `max_usd`), the run fails and nothing is
    queued. Then each video is queued, waited on and saved concurrently on the
    task runner's threads. To keep many pollers inside Venice's 120 retrieves a
    minute, set PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT to a Prefect
    global concurrency limit with slot decay.

    Args:
        requests: The videos to make.
        max_usd: Budget in USD for all of them together.
        credentials_block: Name of the VeniceCredentials block.

    Returns:
        One VideoResult per request, in order.

    """
    logger = get_run_logger()
    credentials = load_credentials(credentials_block)
    queue_requests = [request.to_queue_request() for request in requests]
    for queue_request in queue_requests:
        validate_video_request(credentials, queue_request)
    check_before_queueing(requests)
    quotes = [quote_video(credentials, queue_request).usd for queue_request in queue_requests]
    total = sum(quotes)
    over_own = [
        f"#{index + 1} ({format_usd(quote)} > {format_usd(request.max_usd)})"
        for index, (request, quote) in enumerate(zip(requests, quotes, strict=True))
        if request.max_usd is not None and quote > request.max_usd
    ]
    if total > max_usd or over_own:
        emit_video_event(
            "venice.video.budget-exceeded",
            model=requests[0].model if requests else "none",
            payload={"quote_usd": total, "max_usd": max_usd, "videos": len(requests)},
        )
        detail = f"; over their own budget: {', '.join(over_own)}" if over_own else ""
        raise BudgetExceededError(
            f"The quotes of {len(requests)} videos add up to {format_usd(total)}, against a "
            f"budget of {format_usd(max_usd)}{detail}; nothing was queued."
        )
    logger.info(
        "Quotes add up to %s, within the budget of %s; queueing %d videos.",
        format_usd(total),
        format_usd(max_usd),
        len(requests),
    )

    chains: list[tuple[PrefectFuture[QueuedJob], PrefectFuture[Any], PrefectFuture[VideoResult]]]
    chains = []
    for slot, (request, queue_request) in enumerate(zip(requests, queue_requests, strict=True)):
        job = queue_video.submit(credentials, queue_request, slot=slot)
        # Prefect resolves futures passed as arguments; its ParamSpec typing cannot say so.
        job_arg = cast(Any, job)
        ready = wait_for_video.submit(
            credentials,
            job_arg,
            staging_dir=staging_dir_for(request),
            max_wait_seconds=request.max_wait_seconds,
        )
        saved = download_video.submit(
            credentials,
            job_arg,
            cast(Any, ready),
            destination=request.output_dir,
            storage_block=request.storage_block,
            filename=request.filename,
        )
        complete_video.submit(
            credentials,
            job_arg,
            revoke_link=request.revoke_link,
            complete=request.delete_from_venice,
            wait_for=[saved],
            return_state=False,
        )
        chains.append((job, ready, saved))

    _raise_first_failure(chains, requests)
    results = [
        saved.result().model_copy(update={"cost_usd": quote})
        for (_, _, saved), quote in zip(chains, quotes, strict=True)
    ]
    rows = "\n".join(
        f"| `{r.queue_id}` | `{r.model}` | {format_usd(r.cost_usd or 0.0)} | `{r.path}` "
        f"| {r.size_bytes} |"
        for r in results
    )
    create_markdown_artifact(
        key=BATCH_SUMMARY_ARTIFACT_KEY,
        markdown=(
            f"# {len(results)} Venice videos ready ({format_usd(total)})\n\n"
            "| queue id | model | cost | file | bytes |\n| --- | --- | --- | --- | --- |\n"
            f"{rows}\n"
        ),
    )
    for result in results:
        emit_video_event(
            "venice.video.completed",
            model=result.model,
            queue_id=result.queue_id,
            payload={"cost_usd": result.cost_usd, "size_bytes": result.size_bytes},
        )
    return results


def _raise_first_failure(
    chains: list[tuple[PrefectFuture[QueuedJob], PrefectFuture[Any], PrefectFuture[VideoResult]]],
    requests: list[VideoRequest],
) -> None:
    """Wait for every video; if any failed, emit its event and raise the first failure.

    A task whose upstream failed never runs, so its future holds no useful error;
    the first failed step of each chain does. A failure after its job was queued
    is raised as JobFailedAfterQueueError naming the paid queue_id.
    """
    first: tuple[PrefectFuture[Any], QueuedJob | None] | None = None
    for (job, ready, saved), request in zip(chains, requests, strict=True):
        for step in (job, ready, saved):
            step.wait()
            if step.state.is_completed():
                continue
            queued = job.result() if job.state.is_completed() else None
            emit_video_event(
                "venice.video.failed",
                model=request.model,
                queue_id=queued.queue_id if queued else None,
                payload={"error": step.state.message or step.state.name},
            )
            first = first or (step, queued)
            break
    if first is None:
        return
    step, queued = first
    try:
        step.result()  # raises the failed task's exception, with its message
    except Exception as exc:
        if queued is None:
            raise
        raise failure_after_queueing(queued, exc) from exc
