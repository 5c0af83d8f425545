"""Runtime defaults of the Venice tasks, read from PREFECT_INTEGRATIONS_VENICE_* variables."""

from __future__ import annotations

from prefect.settings.base import PrefectBaseSettings, build_settings_config
from pydantic import Field

from prefect_venice.polling import PollPolicy

__all__ = ["VeniceSettings"]


class VeniceSettings(PrefectBaseSettings):
    """Defaults for waiting on Venice videos; each field is also an environment variable.

    For example `PREFECT_INTEGRATIONS_VENICE_MAX_WAIT_SECONDS=3600` lets a worker wait an
    hour for every video whose flow does not set its own limit. Like every integration's
    settings, these are read when a task runs: instantiate the class, don't cache it.
    """

    model_config = build_settings_config(("integrations", "venice"))

    max_wait_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="How long wait_for_video polls one job before it fails with a timeout.",
    )
    poll_min_interval_seconds: float = Field(
        default=3.0,
        ge=0,
        description="Shortest pause between two retrieve calls for one job.",
    )
    poll_max_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between two retrieve calls for one job.",
    )
    poll_first_interval_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Pause after a retrieve answer that carried no time estimate.",
    )
    poll_target_lag_seconds: float = Field(
        default=2.5,
        gt=0,
        description=(
            "Median seconds from a job's end to the retrieve call that sees it, which the "
            "history schedule aims at (2.5 s: the guide's fixed 5 s loop). Lower finds "
            "videos sooner for more retrieve calls."
        ),
    )
    retrieve_rate_limit: str | None = Field(
        default=None,
        description=(
            "Name of a Prefect global concurrency limit that paces retrieve calls across "
            "runs: a window limit (no decay, as `prefect-venice limits` makes it: "
            "'venice-retrieve', 120 slots, each leased for a minute) or a limit with slot "
            "decay (a token bucket); unset: no shared pacing."
        ),
    )

    queue_rate_limit: str | None = Field(
        default=None,
        description=(
            "Name of a Prefect global concurrency limit that paces /video/queue calls "
            "across runs: a window limit ('venice-queue', 40 slots, each leased for a "
            "minute) or a limit with slot decay; unset: no shared pacing."
        ),
    )

    journal_dir: str | None = Field(
        default=None,
        description=(
            "Folder of the job journal, where each paid job is recorded (user-only files) "
            "before its queue request is sent; unset: $PREFECT_VENICE_HOME/jobs or "
            "~/.prefect-venice/jobs. Workers that retry each other's runs must share it."
        ),
    )
    output_root: str | None = Field(
        default=None,
        description=(
            "When set, the only folder on this worker that flows may save videos in: an "
            "output_dir outside it is refused before anything is paid, and a relative one is "
            "taken inside it."
        ),
    )

    def poll_policy(self) -> PollPolicy:
        """Return the core PollPolicy built from these settings."""
        return PollPolicy(
            min_interval=self.poll_min_interval_seconds,
            max_interval=max(self.poll_max_interval_seconds, self.poll_min_interval_seconds),
            first_interval=self.poll_first_interval_seconds,
            target_lag=self.poll_target_lag_seconds,
        )
