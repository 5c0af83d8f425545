"""Prefect events about Venice videos (`venice.video.*`), emitted best effort."""

from __future__ import annotations

import logging
from typing import Any

from prefect.events import emit_event

__all__ = ["emit_video_event"]


def emit_video_event(
    name: str,
    *,
    model: str,
    queue_id: str | None = None,
    payload: dict[str, Any] | None = None,
    resource_id: str | None = None,
) -> None:
    """Emit a `venice.video.*` Prefect event about one job (or one request, before queueing).

    The video (by queue id) is the primary resource and its model a related one;
    Prefect adds the current flow and task run as related resources itself.
    Best effort: a failing event never fails the step, which may just have paid
    for a job whose answer is not stored yet. `resource_id` overrides the primary
    resource (e.g. `venice.spend.<block>` for spend events).
    """
    if resource_id is None:
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
