"""deployments/prefect.yaml: `prefect deploy` into a process work pool, and a worker runs it.

A stack of its own (server and emulator, no serve process): `prefect deploy`
would otherwise replace the deployments the session's serve process serves.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from demo import demo_request, save_credentials
from serve import DAILY_CRON, DAILY_DEPLOYMENT, ON_DEMAND_DEPLOYMENT
from supervisor import (
    BIN_DIR,
    DEPLOYMENTS_DIR,
    Stack,
    StackConfig,
    client_environment,
    prefect_client_settings,
    start_services,
    stop_stack,
)

from .conftest import TEST_TIME_SCALE

POOL = "venice"


def _prefect(config: StackConfig, stack: Stack, *args: str) -> str:
    """Run a `prefect` CLI command against `stack` from deployments/, as the docs do."""
    done = subprocess.run(
        [str(BIN_DIR / "prefect"), *args],
        cwd=DEPLOYMENTS_DIR,
        env={**client_environment(config, stack.api_url), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def pool_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackConfig, Stack]]:
    """Server and emulator, the `venice` block, a process work pool, `prefect deploy --all`."""
    config = StackConfig(root=tmp_path_factory.mktemp("pool-stack"), time_scale=TEST_TIME_SCALE)
    stack = start_services(config)
    try:
        with prefect_client_settings(config, stack):
            save_credentials(stack, "venice", real_api=False)
        _prefect(config, stack, "work-pool", "create", POOL, "--type", "process")
        _prefect(config, stack, "deploy", "--all", "--no-prompt")
        yield config, stack
    finally:
        stop_stack(config)


@pytest.fixture
def pool_api(pool_stack: tuple[StackConfig, Stack]) -> Iterator[Stack]:
    """This process's Prefect client, pointed at the work-pool stack."""
    config, stack = pool_stack
    with prefect_client_settings(config, stack):
        yield stack


def test_prefect_deploy_puts_both_deployments_in_the_pool(pool_api: Stack) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        pools = {
            name: client.read_deployment_by_name(name).work_pool_name
            for name in (ON_DEMAND_DEPLOYMENT, DAILY_DEPLOYMENT)
        }
    assert pools == {ON_DEMAND_DEPLOYMENT: POOL, DAILY_DEPLOYMENT: POOL}


def test_deployed_daily_deployment_runs_daily_at_nine_utc(pool_api: Stack) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name(DAILY_DEPLOYMENT)
    (schedule,) = daily.schedules
    assert getattr(schedule.schedule, "cron", None) == DAILY_CRON
    assert getattr(schedule.schedule, "timezone", None) == "UTC"
    # Quoted in the YAML: unquoted, YAML 1.1 would turn 16:9 into the number 969.
    assert daily.parameters["request"]["aspect_ratio"] == "16:9"


def test_a_worker_runs_an_on_demand_request(pool_stack: tuple[StackConfig, Stack]) -> None:
    from prefect import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    config, stack = pool_stack
    with prefect_client_settings(config, stack):
        scheduled = run_deployment(
            ON_DEMAND_DEPLOYMENT,
            parameters={"request": demo_request(config)},
            timeout=0,
            as_subflow=False,
        )
        assert isinstance(scheduled, FlowRun)
        # One poll: the worker picks the run up, executes it, and exits when it is done.
        _prefect(config, stack, "worker", "start", "--pool", POOL, "--run-once")
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(scheduled.id)
    assert run.state is not None
    assert run.state.is_completed(), run.state.message
    result: Any = run.state.result()
    assert result.path.startswith(str(config.videos))
