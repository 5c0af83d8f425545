"""The generate_video flow: check, quote, budget gate, queue once, wait, save, clean up."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from prefect.states import Failed

from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.errors import BudgetExceededError, CallerError, InvalidRequestError
from prefect_venice.flows.naming import video_run_name
from prefect_venice.flows.preflight import PlannedVideo, check_before_queueing, plan_videos
from prefect_venice.flows.request import VideoRequest
from prefect_venice.generation import (
    check_budget,
    failure_after_queueing,
    format_usd,
    remove_stale_staging,
)
from prefect_venice.models import QueuedJob
from prefect_venice.redaction import redact_url
from prefect_venice.tasks import (
    CleanupResult,
    VideoResult,
    complete_video,
    download_video,
    queue_video,
    quote_video,
    spend,
    wait_for_video,
)
from prefect_venice.tasks.clients import shared_client
from prefect_venice.tasks.events import emit_video_event
from prefect_venice.tasks.resume import job_journal, job_key_for, recorded_result

__all__ = [
    "SUMMARY_ARTIFACT_KEY",
    "check_before_queueing",
    "failure_after_queueing",
    "format_usd",
    "generate_video",
    "load_credentials",
    "refused",
]

SUMMARY_ARTIFACT_KEY = "venice-video-summary"


@flow(name="generate-video", flow_run_name=video_run_name)
def generate_video(request: VideoRequest, credentials_block: str = "venice") -> VideoResult:
    """Generate one Venice video within a budget and save it; return where it is.

    Steps: check everything that could fail after paying (the request against the
    model catalogue, values, destination, file name, storage block, rate limits),
    quote it, stop if the quote is above `request.max_usd`, queue it at most once per
    job key (the paid call, recorded in the job journal first, so a retry or rerun
    never pays again), wait for it, save the MP4, then revoke its private link and
    delete it on Venice as asked. A refusal before paying ends the run Failed with
    the reason and the numbers, no traceback, and a `venice.video.refused` event.

    Args:
        request: What to generate, the budget and where to save it.
        credentials_block: Name of the VeniceCredentials block holding the API key.

    Returns:
        A VideoResult with the file's location, size, SHA-256, cost and timings.

    """
    logger = get_run_logger()
    try:
        credentials = load_credentials(credentials_block)
        (plan,) = plan_videos([request], catalogue=shared_client(credentials).list_video_models)
        logger.info("The request fits %s; asking for a quote.", request.model)
        quote = quote_video(credentials, plan.queue_request)
        try:
            check_budget(quote.usd, request.max_usd, subject=request.model)
        except BudgetExceededError:
            emit_video_event(
                "venice.video.budget-exceeded",
                model=request.model,
                payload={"quote_usd": quote.usd, "max_usd": request.max_usd},
            )
            raise
        key = job_key_for(plan.queue_request, 0, request.job_name)
        # The block's spend cap, reserved on the Prefect server (a recorded job is paid).
        fresh = job_journal().get(key) is None
        reservation = spend.reserve(credentials, quote.usd, model=request.model) if fresh else None
    except CallerError as exc:
        return cast(VideoResult, refused(exc, model=request.model))
    budget = "no budget set" if request.max_usd is None else f"budget {format_usd(request.max_usd)}"
    logger.info("Quote %s is within the budget (%s); queueing.", format_usd(quote.usd), budget)

    job = queue_video(
        credentials, plan.queue_request, job_key=key, reservation=reservation, quote_usd=quote.usd
    )
    result = recorded_result(key)
    if result is not None:
        logger.info("Video %s was saved already, at %s.", job.queue_id, result.path)
    else:
        result = deliver(credentials, plan, job, key)
    result = result.model_copy(update={"cost_usd": quote.usd})

    cleanup_state = complete_video(
        credentials,
        job,
        revoke_link=request.revoke_link,
        complete=request.delete_from_venice,
        job_key=key,
        return_state=True,
    )
    outcome = cleanup_state.result(raise_on_failure=False)
    cleanup = outcome if isinstance(outcome, CleanupResult) else None
    if cleanup is None:
        # The video is saved; a failed clean-up is worth a warning, not a failed run.
        logger.warning("Clean-up of %s failed: %s", job.queue_id, cleanup_state.message)
    best_effort(
        "summary artifact",
        lambda: create_markdown_artifact(
            key=SUMMARY_ARTIFACT_KEY,
            markdown=_summary_markdown(request, job, result, cleanup, _spend_line(credentials)),
            description=f"{_cell(request.prompt)[:120]} ({job.model}, {format_usd(quote.usd)})",
        ),
    )
    emit_video_event(
        "venice.video.completed",
        model=job.model,
        queue_id=job.queue_id,
        payload={"cost_usd": quote.usd, "size_bytes": result.size_bytes, "sha256": result.sha256},
    )
    logger.info("Video %s saved at %s (%d bytes).", job.queue_id, result.path, result.size_bytes)
    return result


REFUSED_MARK = "venice_refused_before_paying"
"""Attribute set on an error that `refused` turned into the run's Failed state."""


class _RefusalWithoutTraceback(logging.Filter):
    """Keep a refusal's traceback out of a deployment run's logs.

    In a deployment run Prefect's engine re-raises a Failed run's exception once the
    run is over and logs it on the `prefect.flow_runs` logger as "Engine execution
    exited with unexpected exception", with its traceback. For a refusal before paying
    there is nothing unexpected: the record keeps its place, at INFO, without the
    traceback, saying what happened. Every other record passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and getattr(error, REFUSED_MARK, False):
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = "The run was refused before paying: %s", (str(error),)
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_FLOW_RUN_LOGGER = logging.getLogger("prefect.flow_runs")
if not any(isinstance(f, _RefusalWithoutTraceback) for f in _FLOW_RUN_LOGGER.filters):
    _FLOW_RUN_LOGGER.addFilter(_RefusalWithoutTraceback())


def refused(error: CallerError, *, model: str, videos: int = 1) -> State[Any]:
    """End a run that was refused before paying: a Failed state, one log line, one event.

    The state's message is the error's own sentence (what was wrong, the numbers, what
    to do, that nothing was charged); its data is the error, so a Python caller gets
    it raised. No traceback: nothing went wrong in the code.
    """
    message = str(error)
    setattr(error, REFUSED_MARK, True)  # see _RefusalWithoutTraceback
    get_run_logger().error("Refused before paying: %s", message)
    emit_video_event(
        "venice.video.refused",
        model=model,
        payload={"reason": type(error).__name__, "message": message, "videos": videos},
    )
    return Failed(message=message, data=error)


def deliver(
    credentials: VeniceCredentials, plan: PlannedVideo, job: QueuedJob, key: str
) -> VideoResult:
    """Wait for a paid job and save it where the plan says; a failure names the paid job."""
    request = plan.request
    try:
        ready = wait_for_video(
            credentials,
            job,
            staging_dir=plan.staging_dir,
            max_wait_seconds=request.max_wait_seconds,
        )
        return download_video(
            credentials,
            job,
            ready,
            destination=str(plan.destination.directory) if plan.destination else ".",
            storage_block=request.storage_block,
            filename=request.filename,
            job_key=key,
            overwrite=request.overwrite,
        )
    except BaseException as exc:
        emit_video_event(
            "venice.video.failed",
            model=job.model,
            queue_id=job.queue_id,
            payload={"error": type(exc).__name__},
        )
        if isinstance(exc, Exception):
            raise failure_after_queueing(job, exc, base_url=credentials.base_url) from exc
        raise
    finally:
        if plan.destination is not None:
            remove_stale_staging(plan.destination.staging_dir)  # no empty staging folder left


def best_effort(what: str, action: Callable[[], object]) -> None:
    """Run an optional step after the paid call (artifact, event); log, never raise, on failure."""
    try:
        action()
    except Exception as exc:
        with contextlib.suppress(Exception):
            logging.getLogger(__name__).warning("The %s was not written: %r", what, exc)


def load_credentials(name: str) -> VeniceCredentials:
    """Load the named VeniceCredentials block from inside a sync flow.

    An empty or unknown name is an InvalidRequestError that says how to make one.
    """
    how = (
        "give the name of a saved VeniceCredentials block (e.g. 'venice'; create one with "
        "VeniceCredentials(api_key=...).save('venice') or in the UI under Blocks)"
    )
    if not name or not name.strip():
        raise InvalidRequestError(f"credentials_block is empty: {how}.")
    # Block.load is sync inside a sync flow; the check also narrows its dispatch type.
    try:
        block = VeniceCredentials.load(name)
    except ValueError as exc:
        raise InvalidRequestError(
            f"credentials_block {name!r} was not found ({exc}): {how}."
        ) from None
    if not isinstance(block, VeniceCredentials):
        raise TypeError(f"Block {name!r} did not load as VeniceCredentials.")
    return block


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _spend_line(credentials: VeniceCredentials) -> str | None:
    """Describe the block's spend this period for the summary (None: no cap, or unread)."""
    if credentials.spend_limit_usd is None:
        return None
    try:
        account = spend.period_spend(credentials)
    except Exception:  # optional after the paid call: never fail the run over it
        return None
    return (
        f"{format_usd(account.spent_usd)} spent, {format_usd(account.reserved_usd)} reserved "
        f"of {format_usd(credentials.spend_limit_usd)} for {account.period} on block "
        f"`{account.block}`"
    )


def _summary_markdown(
    request: VideoRequest,
    job: QueuedJob,
    result: VideoResult,
    cleanup: CleanupResult | None,
    spend_line: str | None = None,
) -> str:
    where = (
        f"`{result.path}` in block `{result.storage_block}`"
        if result.storage_block
        else f"`{result.path}`"
    )
    budget = "none" if request.max_usd is None else format_usd(request.max_usd)
    rows = [
        ("Model", f"`{job.model}`"),
        ("Queue id", f"`{job.queue_id}`"),
        ("Prompt", _cell(request.prompt)),
        ("Cost (quote)", f"{format_usd(result.cost_usd or 0.0)} (budget {budget})"),
        ("File", where),
        ("Size", f"{result.size_bytes / 1e6:.2f} MB ({result.size_bytes} bytes)"),
        ("SHA-256", f"`{result.sha256}`"),
        ("Waiting", f"{result.wait_seconds or 0.0:.1f} s"),
        ("Download and save", f"{result.download_seconds:.1f} s"),
    ]
    if job.download_url is not None:
        state = "state unknown"
        if cleanup is not None and cleanup.link_revoked is not None:
            state = "revoked" if cleanup.link_revoked else "already gone"
        elif not request.revoke_link:
            state = "left active"
        link = redact_url(job.download_url.get_secret_value())
        rows.append(("Private link", f"`{link}` ({state})"))
    if cleanup is not None and cleanup.media_deleted is not None:
        rows.append(("Media on Venice", "deleted" if cleanup.media_deleted else "already gone"))
    if spend_line is not None:
        rows.append(("Spend (cap)", spend_line))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# Venice video ready\n\n| | |\n| --- | --- |\n{table}\n"
