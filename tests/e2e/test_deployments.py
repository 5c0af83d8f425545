"""The served deployments: listed by the CLI, scheduled, and producing videos when run."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

from demo import DemoResult
from serve import DAILY_CRON, DAILY_DEPLOYMENT, ON_DEMAND_DEPLOYMENT, build_deployments
from supervisor import BIN_DIR, Stack, StackConfig, client_environment

from prefect_venice.flows import VideoRequest

from .conftest import TEST_DAILY_INTERVAL

#: Generous: the first scheduled run starts within one interval, then runs for a few seconds.
SCHEDULED_RUN_TIMEOUT = 120.0


def _ledger(stack: Stack) -> dict[str, Any]:
    origin = stack.emulator_url.removesuffix("/api/v1")
    with urllib.request.urlopen(f"{origin}/_emulator/ledger", timeout=10) as answer:
        ledger: dict[str, Any] = json.load(answer)
    return ledger


def test_on_demand_run_saves_a_real_mp4(on_demand_run: tuple[DemoResult, Any]) -> None:
    summary, result = on_demand_run
    assert summary.state == "Completed", summary.message
    assert summary.video_path is not None
    video = Path(summary.video_path)
    header = video.read_bytes()[:12]
    assert header[4:8] == b"ftyp", "the saved file is not an MP4"
    assert video.stat().st_size == result.size_bytes


def test_on_demand_run_reports_the_price_the_emulator_charged(
    on_demand_run: tuple[DemoResult, Any], demo_stack: Stack
) -> None:
    summary, result = on_demand_run
    job = _ledger(demo_stack)["jobs"][result.queue_id]
    assert job["queue_calls"] == 1
    assert summary.cost_usd == job["charged_usd"]


def test_deployment_ls_lists_both_deployments(stack_config: StackConfig, demo_stack: Stack) -> None:
    listing = subprocess.run(
        [str(BIN_DIR / "prefect"), "deployment", "ls"],
        env={**client_environment(stack_config, demo_stack.api_url), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ON_DEMAND_DEPLOYMENT in listing.stdout
    assert DAILY_DEPLOYMENT in listing.stdout


def test_daily_deployment_carries_its_schedule(prefect_api: Stack) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name(DAILY_DEPLOYMENT)
        on_demand = client.read_deployment_by_name(ON_DEMAND_DEPLOYMENT)
    assert [s.active for s in daily.schedules] == [True]
    interval = getattr(daily.schedules[0].schedule, "interval", None)
    assert interval == timedelta(seconds=TEST_DAILY_INTERVAL)
    assert on_demand.schedules == []


def test_daily_deployment_is_a_daily_cron_by_default() -> None:
    deployments = {d.name: d for d in build_deployments(output_dir="videos")}
    (schedule,) = deployments["daily"].schedules or []
    assert getattr(schedule.schedule, "cron", None) == DAILY_CRON
    assert not deployments["on-demand"].schedules


def test_daily_deployment_defaults_make_a_valid_request() -> None:
    deployments = {d.name: d for d in build_deployments(output_dir="videos")}
    parameters = deployments["daily"].parameters
    VideoRequest.model_validate(parameters["request"])
    assert parameters["credentials_block"] == "venice"


def test_a_scheduled_run_completes_with_that_days_prompt(prefect_api: Stack) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.objects import FlowRun

    with get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name(DAILY_DEPLOYMENT)
        by_deployment = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[daily.id]))
        deadline = time.monotonic() + SCHEDULED_RUN_TIMEOUT
        completed: list[FlowRun] = []
        while not completed and time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=by_deployment)
            completed = [r for r in runs if r.auto_scheduled and r.state and r.state.is_completed()]
            time.sleep(1)
        assert completed, f"no scheduled run of {DAILY_DEPLOYMENT} completed"
        run = completed[0]
        (video_run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
    assert run.expected_start_time is not None
    prompt = video_run.parameters["request"]["prompt"]
    day = run.expected_start_time.astimezone(timezone.utc).date()
    assert day.isoformat() in prompt
    assert "{date}" not in prompt
