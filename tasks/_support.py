"""Helpers shared by the Venice tasks: retry decisions, progress reporting, pacing, events."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from uuid import UUID

from prefect import Task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import rate_limit
from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger

from prefect_venice.errors import InvalidRequestError, VeniceError
from prefect_venice.models import Progress, QueueRequest
from prefect_venice.retry import RetryPolicy

__all__ = [
    "ProgressReporter",
    "check_rate_limit",
    "emit_video_event",
    "pace",
    "paced_retry_policy",
    "queue_cache_key",
    "request_fingerprint",
    "retry_if_retryable",
]


def retry_if_retryable(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry only a VeniceError that says retrying can help.

    Prefect hands the condition a Failed state whose `data` is the exception itself
    (for sync and async tasks alike); `state.result()` would return a coroutine for
    async tasks, so it is not used. Anything that is not a VeniceError is a bug or a
    local failure (disk full, bad path) that a retry would only repeat.
    """
    error = state.data
    return isinstance(error, VeniceError) and error.retryable


def request_fingerprint(request: QueueRequest) -> str:
    """Hash a queue request: the same request in the same flow run means the same job."""
    payload = request.model_dump_json(exclude_none=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def queue_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """Cache key of queue_video: one paid job per request per flow run.

    A retry of the same flow run (Prefect flow retries, or a manual retry of a
    failed run) finds the stored answer under this key and does not queue again.
    Outside a flow run there is nothing to resume, so nothing is cached.
    """
    flow_run_id = context.task_run.flow_run_id
    request = parameters.get("request")
    if flow_run_id is None or not isinstance(request, QueueRequest):
        return None
    # The slot tells identical requests of one run apart (three takes of one prompt).
    slot = str(parameters.get("slot") or "0")
    return f"venice-queue-{_resume_anchor(flow_run_id)}-{slot}-{request_fingerprint(request)}"


def _resume_anchor(flow_run_id: UUID) -> UUID:
    """Return the id that stays the same when this flow run is run again.

    A subflow that failed gets a NEW flow run when its parent is retried, but it
    hangs off the same parent task run (Prefect finds that task run by its key),
    so a subflow is anchored to its parent task run and a top-level run to itself.
    """
    flow_run_context = FlowRunContext.get()
    flow_run = flow_run_context.flow_run if flow_run_context is not None else None
    if flow_run is not None and flow_run.id == flow_run_id and flow_run.parent_task_run_id:
        return flow_run.parent_task_run_id
    return flow_run_id


def pace(limit_name: str | None) -> None:
    """Take one slot of the named global rate limit before a Venice call, if one is set.

    strict=True: a misspelt or missing limit fails loudly instead of letting every
    caller run unpaced (Prefect's limits otherwise fail open).
    """
    if limit_name:
        rate_limit(limit_name, occupy=1, strict=True)


def check_rate_limit(limit_name: str | None, setting: str) -> None:
    """Fail unless the named global rate limit exists and decays (takes no slot).

    Flows call it before the paid call, so a misspelt limit costs nothing.
    """
    if not limit_name:
        return
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(limit_name)
        except ObjectNotFound:
            limit = None
    if limit is None or not limit.slot_decay_per_second:
        problem = "does not exist" if limit is None else "has no slot decay, so it is no rate limit"
        raise InvalidRequestError(
            f"{setting} names the global concurrency limit {limit_name!r}, which {problem}. "
            f"Create it (prefect gcl create {limit_name} --limit 2 --slot-decay-per-second 2) "
            "or unset the setting."
        )


def paced_retry_policy(limit_name: str | None) -> RetryPolicy:
    """Return the client's default RetryPolicy, whose retries also take a slot of the limit.

    The client retries some answers (429/500 on queue; 429/500/503 on retrieve) by
    itself; each retry is another request that counts against Venice's per-key limit,
    so it waits for a slot too. Give it to a client that makes only the paced call.
    """
    if not limit_name:
        return RetryPolicy()

    def sleep_then_pace(seconds: float) -> None:
        time.sleep(seconds)
        pace(limit_name)

    return RetryPolicy(sleep=sleep_then_pace)


def artifact_key(prefix: str, identifier: str) -> str:
    """Build a Prefect artifact key: lower-case letters, digits and dashes only."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{identifier}".lower())
    return cleaned.strip("-")


class ProgressReporter:
    """Keeps one Prefect progress artifact and the run log up to date while a job runs.

    Updates the artifact only when the estimate moves by at least one percent, so a
    long wait does not flood the Prefect API with identical writes.
    """

    def __init__(self, queue_id: str, model: str) -> None:
        self.queue_id = queue_id
        self.model = model
        self.logger = get_run_logger()
        self._last_percent = 0.0
        self.artifact_id: UUID | None = None
        created = create_progress_artifact(
            progress=0.0,
            key=artifact_key("venice-progress", queue_id),
            description=f"Estimated progress of Venice video {queue_id} ({model}).",
        )
        if isinstance(created, UUID):
            self.artifact_id = created

    def __call__(self, progress: Progress) -> None:
        """Record one poll's estimate (the client's on_progress callback)."""
        if progress.fraction is None:
            self.logger.info(
                "Video %s still processing after %.0f s (poll %d, no estimate yet).",
                self.queue_id,
                progress.elapsed_seconds,
                progress.polls,
            )
            return
        percent = round(progress.fraction * 100, 1)
        remaining = progress.estimated_remaining_seconds or 0.0
        self.logger.info(
            "Video %s about %.0f%% done, about %.0f s left (poll %d).",
            self.queue_id,
            percent,
            remaining,
            progress.polls,
        )
        if percent - self._last_percent >= 1.0:
            self._update(percent, f"About {remaining:.0f} s left (estimate).")

    def finish(self) -> None:
        """Mark the artifact complete."""
        self._update(100.0, "Ready.")

    def _update(self, percent: float, description: str) -> None:
        if self.artifact_id is None:
            return
        update_progress_artifact(self.artifact_id, progress=percent, description=description)
        self._last_percent = percent


def emit_video_event(
    name: str, *, model: str, queue_id: str | None = None, payload: dict[str, Any] | None = None
) -> None:
    """Emit a `venice.video.*` Prefect event about one job (or one request, before queueing).

    The video (by queue id) is the primary resource and its model a related one;
    Prefect adds the current flow and task run as related resources itself.
    Best effort: a failing event never fails the step, which may just have paid
    for a job whose answer is not stored yet.
    """
    resource_id = f"venice.video.{queue_id}" if queue_id else f"venice.model.{model}"
    try:
        _emit(name, resource_id, model, queue_id, payload or {})
    except Exception as exc:
        logging.getLogger(__name__).warning("Event %s was not emitted: %r", name, exc)


def _emit(
    name: str, resource_id: str, model: str, queue_id: str | None, payload: dict[str, Any]
) -> None:
    emit_event(
        event=name,
        resource={
            "prefect.resource.id": resource_id,
            "prefect.resource.name": queue_id or model,
            "venice.model": model,
        },
        related=[
            {
                "prefect.resource.id": f"venice.model.{model}",
                "prefect.resource.role": "model",
                "prefect.resource.name": model,
            }
        ],
        payload=payload,
    )
