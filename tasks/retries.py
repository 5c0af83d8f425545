"""The Prefect retry condition of the Venice tasks: retry only what the error says can help."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from prefect_venice.errors import VeniceError

__all__ = ["retry_if_retryable"]


def retry_if_retryable(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry only a VeniceError that says retrying can help.

    Prefect hands the condition a Failed state whose `data` is the exception itself
    (for sync and async tasks alike); `state.result()` would return a coroutine for
    async tasks, so it is not used. Anything that is not a VeniceError is a bug or a
    local failure (disk full, bad path) that a retry would only repeat.
    """
    error = state.data
    return isinstance(error, VeniceError) and error.retryable
