"""Serve the prefect-venice deployments from this machine: on demand and daily.

    python deployments/serve.py                      # cron schedule, 09:00 UTC
    python deployments/serve.py --daily-interval 60  # every minute (testing)

The process creates (or updates) both deployments on the Prefect API that
PREFECT_API_URL names, then executes their runs until stopped; stopping it
pauses the daily schedule. `prefect.yaml` deploys the same flows to a work pool
under names of their own (`generate-video/on-demand-pool`,
`daily-video/daily-pool`), so served and deployed deployments never replace
each other on one server.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import timedelta

from daily_video import DEFAULT_PROMPT_TEMPLATE, daily_video
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from prefect_venice.flows import generate_video

CREDENTIALS_BLOCK = "venice"
ON_DEMAND = "on-demand"
DAILY = "daily"
ON_DEMAND_DEPLOYMENT = f"generate-video/{ON_DEMAND}"
DAILY_DEPLOYMENT = f"daily-video/{DAILY}"
DAILY_CRON = "0 9 * * *"
#: What `prefect deploy --all` (prefect.yaml) names the same flows in the "venice" work pool.
POOL_ON_DEMAND_DEPLOYMENT = "generate-video/on-demand-pool"
POOL_DAILY_DEPLOYMENT = "daily-video/daily-pool"
DEMO_MODEL = "wan-2.5-preview-text-to-video"


def daily_request(output_dir: str) -> dict[str, object]:
    """The daily deployment's default `request` parameter (its prompt is a template)."""
    return {
        "model": DEMO_MODEL,
        "prompt": DEFAULT_PROMPT_TEMPLATE,
        "duration": "5s",
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "output_dir": output_dir,
    }


def build_deployments(
    output_dir: str,
    credentials_block: str = CREDENTIALS_BLOCK,
    daily_cron: str = DAILY_CRON,
    daily_interval: float | None = None,
) -> list[RunnerDeployment]:
    """Return the two deployments: `generate-video/on-demand` and `daily-video/daily`.

    Args:
        output_dir: Default folder of the MP4 files (a run may pass another).
        credentials_block: Name of the `VeniceCredentials` block both use by default.
        daily_cron: Cron schedule (UTC) of the daily deployment.
        daily_interval: Seconds between daily runs instead of the cron schedule.
    """
    on_demand = generate_video.to_deployment(
        name=ON_DEMAND,
        parameters={"credentials_block": credentials_block},
        description="Generate one video from a request given at run time.",
        tags=["venice", "video"],
        # An installed package: run it by import path, wherever this script lives.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    schedule: dict[str, object] = (
        {"interval": timedelta(seconds=daily_interval)}
        if daily_interval is not None
        else {"cron": daily_cron}
    )
    daily = daily_video.to_deployment(
        name=DAILY,
        parameters={
            "request": daily_request(output_dir),
            "credentials_block": credentials_block,
        },
        description="Generate one new video a day from a prompt template.",
        tags=["venice", "video", "daily"],
        **schedule,  # type: ignore[arg-type]
    )
    # Called from sync code: both are deployments, never coroutines.
    assert isinstance(on_demand, RunnerDeployment)
    assert isinstance(daily, RunnerDeployment)
    return [on_demand, daily]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve both deployments until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="videos", help="default folder of the MP4s")
    parser.add_argument("--credentials-block", default=CREDENTIALS_BLOCK)
    parser.add_argument("--daily-cron", default=DAILY_CRON, help="cron schedule, UTC")
    parser.add_argument("--daily-interval", type=float, help="seconds; replaces the cron")
    parser.add_argument("--limit", type=int, default=4, help="runs executed at once")
    args = parser.parse_args(argv)
    deployments = build_deployments(
        args.output_dir, args.credentials_block, args.daily_cron, args.daily_interval
    )
    serve(*deployments, limit=args.limit, print_starting_message=True)


if __name__ == "__main__":
    main()
