"""The daily deployment's flow: one new video a day, its prompt rendered from a template."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from prefect import flow
from prefect.runtime import deployment, flow_run

from prefect_venice.flows import VideoRequest, generate_video

DEFAULT_PROMPT_TEMPLATE = (
    "A slow aerial shot over a coastal town at sunrise, {weekday} {date}, "
    "day {day} of the daily series; soft light, gentle waves."
)
#: Day 1 of the series; `{day}` counts from here.
SERIES_START = date(2026, 1, 1)


def render_prompt(template: str, day: date, series_start: date = SERIES_START) -> str:
    """Fill `{date}`, `{weekday}` and `{day}` into `template`; other braces stay as written.

    Plain replacement rather than `str.format`, so a prompt that contains braces
    of its own cannot break the schedule.
    """
    values = {
        "{date}": day.isoformat(),
        "{weekday}": day.strftime("%A"),
        "{day}": str((day - series_start).days + 1),
    }
    for placeholder, value in values.items():
        template = template.replace(placeholder, value)
    return template


def run_day() -> date:
    """The day this run stands for: its scheduled day, so a late run keeps its own prompt."""
    scheduled: Any = flow_run.scheduled_start_time
    if isinstance(scheduled, datetime):
        return scheduled.astimezone(timezone.utc).date()
    return datetime.now(timezone.utc).date()


def daily_run_name() -> str:
    """Name a daily run by the day it stands for: `daily-2026-11-26`."""
    return f"daily-{run_day().isoformat()}"


@flow(name="daily-video", log_prints=True, flow_run_name=daily_run_name)
def daily_video(
    request: VideoRequest,
    credentials_block: str = "venice",
) -> Any:
    """Generate today's video: `request`'s prompt is a template rendered for the run's day.

    Args:
        request: The video to make; `{date}`, `{weekday}` and `{day}` in its prompt
            are replaced by the run's scheduled date, weekday and series day number.
        credentials_block: Name of the saved `VeniceCredentials` block to use.
    """
    day = run_day()
    prompt = render_prompt(request.prompt, day)
    # One video per scheduled day: a second trigger of the same day resumes (or reports)
    # that day's job instead of paying again.
    series = request.job_name or f"daily-video:{deployment.id or 'no-deployment'}"
    slot_key = f"{series}:{day}"  # a given name names the series: each day is its own job
    todays = request.model_copy(update={"prompt": prompt, "job_name": slot_key})
    state = generate_video(request=todays, credentials_block=credentials_block, return_state=True)
    if not state.is_completed():
        return state  # a refusal stays a clean Failed with its reason, here too
    return state.result()
