"""Everything the flows check before paying: values, request, destination, blocks, rate limits.

The checks themselves live in the Prefect-free core (prefect_venice.generation); this
module adds what only a Prefect run can check (storage blocks, global rate limits,
the worker's settings) and hands the flows one plan per video.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.filesystems import WritableFileSystem

from prefect_venice.errors import CallerError, InvalidRequestError
from prefect_venice.flows.request import VideoRequest
from prefect_venice.generation import (
    LocalDestination,
    check_money,
    check_wait,
    prepare_local_destination,
)
from prefect_venice.models import QueueRequest
from prefect_venice.tasks.pacing import check_rate_limit
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.storage import check_block_target, load_writable_file_system

__all__ = ["PlannedVideo", "check_before_queueing", "plan_videos"]


@dataclass(frozen=True)
class PlannedVideo:
    """One checked request: the API request and where its MP4 will go."""

    request: VideoRequest
    queue_request: QueueRequest
    #: The checked local folder; None when the video goes to a storage block.
    destination: LocalDestination | None

    @property
    def staging_dir(self) -> str | None:
        """Where wait_for_video stages the MP4: inside a local destination, else a temp dir."""
        # Staging inside a local destination keeps the final rename on one file system.
        return str(self.destination.staging_dir) if self.destination else None


def plan_videos(
    requests: list[VideoRequest], *, max_usd: float | None = None
) -> list[PlannedVideo]:
    """Check every request before anything is paid; raise the first problem found.

    Checked: budgets are finite and not negative, waits finite and long enough; the
    API request builds (local images are read and typed); the destination folder can
    be created and written (inside PREFECT_INTEGRATIONS_VENICE_OUTPUT_ROOT when set),
    the file name is a plain name and names no existing file (unless overwrite);
    storage blocks load, can write and do not hold the key yet; job keys are unique;
    the rate limits the settings name exist.
    """
    settings = VeniceSettings()
    check_money(max_usd, "max_usd")
    keys = [request.job_name for request in requests if request.job_name]
    if len(keys) != len(set(keys)):
        raise InvalidRequestError(
            "Two requests share a job_name; each paid job needs its own. Nothing was queued."
        )
    blocks: dict[str, WritableFileSystem] = {}
    plans: list[PlannedVideo] = []
    for index, request in enumerate(requests):
        where = f"request #{index + 1}: " if len(requests) > 1 else ""
        try:
            check_money(request.max_usd, "max_usd")
            check_wait(request.max_wait_seconds, "max_wait_seconds")
            queue_request = request.to_queue_request()
            destination = None
            if request.storage_block is None:
                destination = prepare_local_destination(
                    request.output_dir,
                    request.filename,
                    overwrite=request.overwrite,
                    root=settings.output_root,
                )
            else:
                if request.storage_block not in blocks:
                    blocks[request.storage_block] = load_writable_file_system(request.storage_block)
                if request.filename is not None:
                    check_block_target(
                        blocks[request.storage_block], request.filename, overwrite=request.overwrite
                    )
        except CallerError as exc:
            if not where:
                raise
            raise type(exc)(where + exc.message) from None
        plans.append(PlannedVideo(request, queue_request, destination))
    check_rate_limit(settings.queue_rate_limit, "PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT")
    check_rate_limit(
        settings.retrieve_rate_limit, "PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT"
    )
    return plans


def check_before_queueing(requests: list[VideoRequest]) -> None:
    """Fail now on anything that would otherwise fail only after the paid call (see plan_videos)."""
    plan_videos(requests)
