"""The generate_videos flow: several videos at once under one total budget, resumable."""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger

from prefect_venice.errors import BudgetExceededError
from prefect_venice.flows.preflight import PlannedVideo, plan_videos
from prefect_venice.flows.request import VideoRequest
from prefect_venice.flows.video import best_effort, load_credentials
from prefect_venice.generation import failure_after_queueing, format_usd
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
from prefect_venice.tasks.events import emit_video_event
from prefect_venice.tasks.resume import job_key_for, recorded_result

__all__ = ["BATCH_SUMMARY_ARTIFACT_KEY", "generate_videos"]

BATCH_SUMMARY_ARTIFACT_KEY = "venice-batch-summary"

_Chain = tuple[PrefectFuture[QueuedJob], PrefectFuture[Any], PrefectFuture[VideoResult]]


@flow(name="generate-videos", flow_run_name="video-batch")
def generate_videos(
    requests: list[VideoRequest], max_usd: float = 5.0, credentials_block: str = "venice"
) -> list[VideoResult]:
    """Generate several videos concurrently, gated by one total budget before any is queued.

    Every request is checked, validated and quoted first; if the quotes add up to
    more than `max_usd` (or one is above its own `max_usd`), the run fails and nothing
    is queued. Then each video is queued (at most once per job key), waited on and
    saved concurrently on the task runner's threads. A retried run keeps the videos
    it already saved and resumes only the unfinished ones. To keep many pollers
    inside Venice's 120 retrieves a minute, set
    PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT to a Prefect global concurrency
    limit with slot decay.

    Args:
        requests: The videos to make.
        max_usd: Budget in USD for all of them together.
        credentials_block: Name of the VeniceCredentials block.

    Returns:
        One VideoResult per request, in order.

    """
    logger = get_run_logger()
    credentials = load_credentials(credentials_block)
    plans = plan_videos(requests, max_usd=max_usd)
    for plan in plans:
        validate_video_request(credentials, plan.queue_request)
    quotes = [quote_video(credentials, plan.queue_request).usd for plan in plans]
    _check_total(requests, quotes, max_usd)
    logger.info(
        "Quotes add up to %s, within the budget of %s; queueing %d videos.",
        format_usd(sum(quotes)),
        format_usd(max_usd),
        len(requests),
    )

    keys = [
        job_key_for(plan.queue_request, slot, plan.request.job_name)
        for slot, plan in enumerate(plans)
    ]
    saved: dict[int, VideoResult] = {}
    chains: dict[int, _Chain] = {}
    for slot, (plan, key) in enumerate(zip(plans, keys, strict=True)):
        done = recorded_result(key)
        if done is not None:
            saved[slot] = done  # saved by an earlier attempt of this run: nothing to do
            continue
        chains[slot] = _submit_chain(credentials, plan, key)
    if saved:
        logger.info("%d of %d videos were saved by an earlier attempt.", len(saved), len(plans))

    _raise_first_failure(chains, requests, credentials.base_url)
    for slot, (_, _, future) in chains.items():
        saved[slot] = future.result()
    results = [
        saved[slot].model_copy(update={"cost_usd": quote}) for slot, quote in enumerate(quotes)
    ]
    best_effort(
        "batch summary artifact",
        lambda: create_markdown_artifact(
            key=BATCH_SUMMARY_ARTIFACT_KEY, markdown=_summary(results, sum(quotes))
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


def _submit_chain(credentials: Any, plan: PlannedVideo, key: str) -> _Chain:
    request = plan.request
    job = queue_video.submit(credentials, plan.queue_request, job_key=key)
    # Prefect resolves futures passed as arguments; its ParamSpec typing cannot say so.
    job_arg = cast(Any, job)
    ready = wait_for_video.submit(
        credentials,
        job_arg,
        staging_dir=plan.staging_dir,
        max_wait_seconds=request.max_wait_seconds,
    )
    saved = download_video.submit(
        credentials,
        job_arg,
        cast(Any, ready),
        destination=str(plan.destination.directory) if plan.destination else ".",
        storage_block=request.storage_block,
        filename=request.filename,
        job_key=key,
        overwrite=request.overwrite,
    )
    complete_video.submit(
        credentials,
        job_arg,
        revoke_link=request.revoke_link,
        complete=request.delete_from_venice,
        job_key=key,
        wait_for=[saved],
        return_state=False,
    )
    return job, ready, saved


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


def _raise_first_failure(
    chains: dict[int, _Chain], requests: list[VideoRequest], base_url: str
) -> None:
    """Wait for every video; if any failed, emit its event and raise the first failure.

    A task whose upstream failed never runs, so its future holds no useful error;
    the first failed step of each chain does. A failure after its job was queued
    is raised as JobFailedAfterQueueError naming the paid queue_id.
    """
    first: tuple[PrefectFuture[Any], QueuedJob | None] | None = None
    for slot, (job, ready, saved) in chains.items():
        for step in (job, ready, saved):
            step.wait()
            if step.state.is_completed():
                continue
            queued = job.result() if job.state.is_completed() else None
            emit_video_event(
                "venice.video.failed",
                model=requests[slot].model,
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
        raise failure_after_queueing(queued, exc, base_url=base_url) from exc
