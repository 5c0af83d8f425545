"""Everything the flows check before paying: values, request, destination, blocks, rate limits.

The checks themselves live in the Prefect-free core (prefect_venice.generation); this
module adds what only a Prefect run can check (storage blocks, global rate limits,
the worker's settings) and hands the flows one plan per video.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prefect.filesystems import WritableFileSystem

from prefect_venice.errors import CallerError, InvalidRequestError
from prefect_venice.flows.request import VideoRequest
from prefect_venice.generation import (
    LocalDestination,
    check_local_target,
    check_money,
    check_wait,
    prepare_local_folder,
)
from prefect_venice.models import QueueRequest, VideoModel
from prefect_venice.tasks.pacing import check_rate_limit
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.storage import check_block_target, load_writable_file_system
from prefect_venice.validation import find_model, validate_request

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
    requests: list[VideoRequest],
    *,
    max_usd: float | None = None,
    catalogue: Callable[[], Sequence[VideoModel]] | None = None,
    settings: VeniceSettings | None = None,
) -> list[PlannedVideo]:
    """Check every request before anything is paid; raise the first problem found.

    Checked first, with no call to Venice: budgets are finite and not negative, waits
    finite and long enough; the destination folder can be created and written (inside
    PREFECT_INTEGRATIONS_VENICE_OUTPUT_ROOT when set), the file name is a plain name and
    names no existing file (unless overwrite); storage blocks load, can write and do not
    hold the key yet; job names are unique; the rate limits the settings name exist.
    Then the API requests are built (local images are read and typed) and, when a
    `catalogue` is given (it is called once, e.g. `client.list_video_models`), checked
    against each model's constraints, a default aspect ratio becoming the model's first.
    `settings` are the worker's (read now when not given). Requests that share an output
    folder share its checks (created, written, inside the root): one probe per folder.
    """
    settings = settings if settings is not None else VeniceSettings()
    check_money(max_usd, "max_usd")
    names = [request.job_name for request in requests if request.job_name]
    if len(names) != len(set(names)):
        raise InvalidRequestError(
            "Two requests share a job_name; each paid job needs its own. Nothing was queued."
        )
    blocks: dict[str, WritableFileSystem] = {}
    folders: dict[str, Path] = {}
    destinations: list[LocalDestination | None] = []
    for index, request in enumerate(requests):
        with _numbered(index, len(requests)):
            check_money(request.max_usd, "max_usd")
            check_wait(request.max_wait_seconds, "max_wait_seconds")
            destinations.append(_destination(request, blocks, folders, settings))
    check_rate_limit(settings.queue_rate_limit, "PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT")
    check_rate_limit(
        settings.retrieve_rate_limit, "PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT"
    )
    models = catalogue() if catalogue is not None else None
    plans: list[PlannedVideo] = []
    for index, (request, destination) in enumerate(zip(requests, destinations, strict=True)):
        with _numbered(index, len(requests)):
            model = find_model(models, request.model) if models is not None else None
            queue_request = request.to_queue_request(model)
            if model is not None:
                validate_request(queue_request, model)
        plans.append(PlannedVideo(request, queue_request, destination))
    return plans


def _destination(
    request: VideoRequest,
    blocks: dict[str, WritableFileSystem],
    folders: dict[str, Path],
    settings: VeniceSettings,
) -> LocalDestination | None:
    if request.storage_block is None:
        folder = os.fspath(request.output_dir)
        if folder not in folders:
            folders[folder] = prepare_local_folder(folder, root=settings.output_root)
        return check_local_target(folders[folder], request.filename, overwrite=request.overwrite)
    if request.storage_block not in blocks:
        blocks[request.storage_block] = load_writable_file_system(request.storage_block)
    if request.filename is not None:
        check_block_target(
            blocks[request.storage_block], request.filename, overwrite=request.overwrite
        )
    return None


@contextlib.contextmanager
def _numbered(index: int, count: int) -> Iterator[None]:
    """In a batch, say which request a refusal is about."""
    try:
        yield
    except CallerError as exc:
        if count == 1:
            raise
        raise type(exc)(f"request #{index + 1}: {exc.message}") from None


def check_before_queueing(requests: list[VideoRequest]) -> None:
    """Fail now on anything that would otherwise fail only after the paid call (see plan_videos)."""
    plan_videos(requests)
