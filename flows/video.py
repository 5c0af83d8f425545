"""The generate_video flow: validate, quote, budget gate, queue, wait, download, clean up."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from prefect_venice._redact import redact_url
from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.cli import DOWNLOAD_URL_ENV, resume_command
from prefect_venice.errors import BudgetExceededError, JobFailedAfterQueueError, VeniceError
from prefect_venice.flows.request import VideoRequest
from prefect_venice.models import QueuedJob
from prefect_venice.tasks import (
    CleanupResult,
    VideoResult,
    complete_video,
    download_video,
    queue_video,
    quote_video,
    validate_video_request,
    wait_for_video,
)
from prefect_venice.tasks._support import check_rate_limit, emit_video_event
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.video import STAGING_DIR_NAME
from prefect_venice.tasks.video import _load_writable_file_system as load_storage_block

__all__ = [
    "SUMMARY_ARTIFACT_KEY",
    "check_before_queueing",
    "failure_after_queueing",
    "format_usd",
    "generate_video",
]

SUMMARY_ARTIFACT_KEY = "venice-video-summary"


def format_usd(amount: float) -> str:
    """Format a price: cents where they are exact, else four decimals ($0.085 is not $0.09)."""
    return f"${amount:.2f}" if round(amount, 2) == amount else f"${amount:.4f}"


@flow(name="generate-video", flow_run_name="video-{request.model}")
def generate_video(request: VideoRequest, credentials_block: str = "venice") -> VideoResult:
    """Generate one Venice video within a budget and save it; return where it is.

    Steps: validate the request against the model catalog, quote it, stop if the
    quote is above `request.max_usd` (nothing is queued), queue it (the paid call,
    stored so a retry of this flow run never pays again), wait for it, save the MP4,
    then revoke its private link and delete it on Venice as asked.

    Args:
        request: What to generate, the budget and where to save it.
        credentials_block: Name of the VeniceCredentials block holding the API key.

    Returns:
        A VideoResult with the file's location, size, SHA-256, cost and timings.

    """
    logger = get_run_logger()
    credentials = load_credentials(credentials_block)
    queue_request = request.to_queue_request()
    validate_video_request(credentials, queue_request)
    check_before_queueing([request])
    quote = quote_video(credentials, queue_request)
    if request.max_usd is not None and quote.usd > request.max_usd:
        emit_video_event(
            "venice.video.budget-exceeded",
            model=request.model,
            payload={"quote_usd": quote.usd, "max_usd": request.max_usd},
        )
        raise BudgetExceededError(
            f"The quote of {format_usd(quote.usd)} for {request.model} is above the budget of "
            f"{format_usd(request.max_usd)}; nothing was queued."
        )
    budget = "no budget set" if request.max_usd is None else f"budget {format_usd(request.max_usd)}"
    logger.info("Quote %s is within the budget (%s); queueing.", format_usd(quote.usd), budget)

    job = queue_video(credentials, queue_request)
    try:
        ready = wait_for_video(
            credentials,
            job,
            staging_dir=staging_dir_for(request),
            max_wait_seconds=request.max_wait_seconds,
        )
        result = download_video(
            credentials,
            job,
            ready,
            destination=request.output_dir,
            storage_block=request.storage_block,
            filename=request.filename,
        )
    except BaseException as exc:
        emit_video_event(
            "venice.video.failed",
            model=job.model,
            queue_id=job.queue_id,
            payload={"error": type(exc).__name__},
        )
        if isinstance(exc, Exception):
            raise failure_after_queueing(job, exc) from exc
        raise
    result = result.model_copy(update={"cost_usd": quote.usd})

    cleanup_state = complete_video(
        credentials,
        job,
        revoke_link=request.revoke_link,
        complete=request.delete_from_venice,
        return_state=True,
    )
    outcome = cleanup_state.result(raise_on_failure=False)
    cleanup = outcome if isinstance(outcome, CleanupResult) else None
    if cleanup is None:
        # The video is saved; a failed clean-up is worth a warning, not a failed run.
        logger.warning("Clean-up of %s failed: %s", job.queue_id, cleanup_state.message)

    create_markdown_artifact(
        key=SUMMARY_ARTIFACT_KEY,
        markdown=_summary_markdown(request, job, result, cleanup),
        description=f"Venice video {job.queue_id} ({job.model})",
    )
    emit_video_event(
        "venice.video.completed",
        model=job.model,
        queue_id=job.queue_id,
        payload={
            "cost_usd": quote.usd,
            "size_bytes": result.size_bytes,
            "sha256": result.sha256,
        },
    )
    logger.info("Video %s saved at %s (%d bytes).", job.queue_id, result.path, result.size_bytes)
    return result


def check_before_queueing(requests: list[VideoRequest]) -> None:
    """Fail now on settings that would otherwise fail only after the paid call.

    Loads each storage block (it must exist and be writable) and checks that the
    rate limits named in the settings exist.
    """
    for block in {request.storage_block for request in requests if request.storage_block}:
        load_storage_block(block)
    settings = VeniceSettings()
    check_rate_limit(settings.queue_rate_limit, "PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT")
    check_rate_limit(
        settings.retrieve_rate_limit, "PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT"
    )


def failure_after_queueing(job: QueuedJob, error: Exception) -> JobFailedAfterQueueError:
    """Name the paid job in the failure, so the run's message tells how to resume it.

    The queue answer is stored under the flow run, so a retry of this run polls
    the same job instead of paying again (the error's action says so). Outside
    Prefect, `prefect-venice wait` or the client can wait for a public model's job by
    its queue id; a private model's link lives only in the stored answer, and never
    in the message.
    """
    detail = str(error)
    if job.download_url is not None:
        # The core keeps links out of its messages; this guards any other error's.
        link = job.download_url.get_secret_value()
        detail = detail.replace(link, redact_url(link))
    if job.download_url is None:
        elsewhere = (
            "Outside Prefect, resume it from the shell (key in VENICE_API_KEY): "
            f"{resume_command(job.model, job.queue_id)}; or from Python: "
            "VeniceClient.wait_for_video("
            f"QueuedJob(model={job.model!r}, queue_id={job.queue_id!r}), destination)."
        )
    else:
        elsewhere = (
            "This private model's download link is kept only in the run's stored queue "
            "answer, so retrying the run is the way to fetch it (`prefect-venice wait` "
            f"needs that link in {DOWNLOAD_URL_ENV})."
        )
    return JobFailedAfterQueueError(
        f"Video {job.queue_id} ({job.model}) was queued and paid for, then failed with "
        f"{type(error).__name__}: {detail.rstrip()} {elsewhere}",
        queue_id=job.queue_id,
        retryable=isinstance(error, VeniceError) and error.retryable,
    )


def load_credentials(name: str) -> VeniceCredentials:
    """Load the named VeniceCredentials block from inside a sync flow."""
    # Block.load is sync inside a sync flow; the check also narrows its dispatch type.
    block = VeniceCredentials.load(name)
    if not isinstance(block, VeniceCredentials):
        raise TypeError(f"Block {name!r} did not load as VeniceCredentials.")
    return block


def staging_dir_for(request: VideoRequest) -> str | None:
    """Return where wait_for_video stages the MP4: inside a local destination, else a temp dir."""
    # Staging inside a local destination keeps the final rename on one file system.
    if request.storage_block is not None:
        return None
    return str(Path(request.output_dir).expanduser() / STAGING_DIR_NAME)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _summary_markdown(
    request: VideoRequest, job: QueuedJob, result: VideoResult, cleanup: CleanupResult | None
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
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# Venice video ready\n\n| | |\n| --- | --- |\n{table}\n"
