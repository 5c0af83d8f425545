"""Progress of one Venice job in the Prefect UI: a progress artifact and log lines, best effort."""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

from prefect_venice.models import Progress

__all__ = ["ProgressReporter"]


class ProgressReporter:
    """Keeps one Prefect progress artifact and the run log up to date while a job runs.

    Updates the artifact only when the estimate moves by at least one percent, so a
    long wait does not flood the Prefect API with identical writes. Best effort: the
    job is paid for, so a Prefect API that fails to take an artifact (a 500, a full
    database pool) costs a warning, never the video.
    """

    def __init__(
        self,
        queue_id: str,
        model: str,
        *,
        artifact: bool = True,
        log_every: float = 0.0,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.queue_id = queue_id
        self.model = model
        self.logger = logger if logger is not None else get_run_logger()
        #: Seconds between two progress lines at INFO (0: every poll); the polls in
        #: between log at DEBUG. A batch of hundreds of videos sets it, so that its log
        #: says how each video is doing without a line per poll of every video.
        self.log_every = log_every
        self._logged_at = time.monotonic()
        self._last_percent = 0.0
        self.artifact_id: UUID | None = None
        if not artifact:
            return
        try:
            # No key: a keyed artifact per video would grow the Artifacts page by one
            # card per video; the run's own Artifacts tab shows this one.
            created = create_progress_artifact(
                progress=0.0,
                description=f"Estimated progress of Venice video {queue_id} ({model}).",
            )
        except Exception as exc:
            _warn("created", queue_id, exc)
            return
        if isinstance(created, UUID):
            self.artifact_id = created

    def __call__(self, progress: Progress) -> None:
        """Record one poll's estimate (the client's on_progress callback)."""
        level = self._level()
        if progress.fraction is None:
            self.logger.log(
                level,
                "Video %s still processing after %.0f s (poll %d, no estimate yet).",
                self.queue_id,
                progress.elapsed_seconds,
                progress.polls,
            )
            return
        percent = round(progress.fraction * 100, 1)
        remaining = progress.estimated_remaining_seconds or 0.0
        self.logger.log(
            level,
            "Video %s about %.0f%% done, about %.0f s left (poll %d).",
            self.queue_id,
            percent,
            remaining,
            progress.polls,
        )
        if percent - self._last_percent >= 1.0:
            self._update(percent, f"About {remaining:.0f} s left (estimate).")

    def _level(self) -> int:
        """INFO for this poll's line if `log_every` seconds passed since the last one."""
        if self.log_every <= 0:
            return logging.INFO
        now = time.monotonic()
        if now - self._logged_at < self.log_every:
            return logging.DEBUG
        self._logged_at = now
        return logging.INFO

    def finish(self) -> None:
        """Mark the artifact complete."""
        self._update(100.0, "Ready.")

    def _update(self, percent: float, description: str) -> None:
        if self.artifact_id is None:
            return
        try:
            update_progress_artifact(self.artifact_id, progress=percent, description=description)
        except Exception as exc:
            _warn("updated", self.queue_id, exc)
            return
        self._last_percent = percent


def _warn(action: str, queue_id: str, error: Exception) -> None:
    logging.getLogger(__name__).warning(
        "The progress artifact of %s was not %s: %r", queue_id, action, error
    )
