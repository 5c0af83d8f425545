"""deployments/prefect.yaml: `prefect deploy` into a process work pool, and a worker runs it.

Deployed into the session's demo stack, beside the deployments its serve process
serves: the names in prefect.yaml end in "-pool", so deploying takes nothing
over, and both kinds keep running on one server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo import demo_request, run_on_demand
from serve import (
    DAILY_CRON,
    DAILY_DEPLOYMENT,
    ON_DEMAND_DEPLOYMENT,
    POOL_DAILY_DEPLOYMENT,
    POOL_ON_DEMAND_DEPLOYMENT,
    build_deployments,
)
from supervisor import (
    BIN_DIR,
    DEPLOYMENTS_DIR,
    Stack,
    StackConfig,
    client_environment,
    prefect_client_settings,
)

POOL = "venice"
PREFECT_YAML = DEPLOYMENTS_DIR / "prefect.yaml"


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


def _yaml_deployment_names(path: Path = PREFECT_YAML) -> set[str]:
    """`flow-name/deployment-name` of every deployment prefect.yaml declares."""
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    flows = {
        "prefect_venice.flows.generate_video": "generate-video",
        "daily_video.py:daily_video": "daily-video",
    }
    return {f"{flows[d['entrypoint']]}/{d['name']}" for d in document["deployments"]}


def test_prefect_yaml_and_serve_py_use_different_names() -> None:
    served = {f"{d.flow_name}/{d.name}" for d in build_deployments(output_dir="videos")}
    deployed = _yaml_deployment_names()
    assert served == {ON_DEMAND_DEPLOYMENT, DAILY_DEPLOYMENT}
    assert deployed == {POOL_ON_DEMAND_DEPLOYMENT, POOL_DAILY_DEPLOYMENT}
    assert not served & deployed


@pytest.fixture(scope="module")
def deployed(stack_config: StackConfig, demo_stack: Stack) -> Stack:
    """A process work pool and `prefect deploy --all` on the demo's own server."""
    _prefect(stack_config, demo_stack, "work-pool", "create", POOL, "--type", "process")
    _prefect(stack_config, demo_stack, "deploy", "--all", "--no-prompt")
    return demo_stack


@pytest.fixture
def pool_api(stack_config: StackConfig, deployed: Stack) -> Iterator[Stack]:
    """This process's Prefect client, pointed at the stack after the deploy."""
    with prefect_client_settings(stack_config, deployed):
        yield deployed


def test_prefect_deploy_puts_both_deployments_in_the_pool(pool_api: Stack) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        pools = {
            name: client.read_deployment_by_name(name).work_pool_name
            for name in (POOL_ON_DEMAND_DEPLOYMENT, POOL_DAILY_DEPLOYMENT)
        }
    assert pools == {POOL_ON_DEMAND_DEPLOYMENT: POOL, POOL_DAILY_DEPLOYMENT: POOL}


def test_deploying_takes_no_served_deployment_over(
    stack_config: StackConfig, pool_api: Stack
) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        served = [
            client.read_deployment_by_name(n) for n in (ON_DEMAND_DEPLOYMENT, DAILY_DEPLOYMENT)
        ]
    assert [d.work_pool_name for d in served] == [None, None]
    # The serve process still gets the served deployment's runs.
    summary, _ = run_on_demand(pool_api, demo_request(stack_config), timeout=180)
    assert summary.state == "Completed", summary.message


def test_deployed_daily_deployment_runs_daily_at_nine_utc(pool_api: Stack) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name(POOL_DAILY_DEPLOYMENT)
    (schedule,) = daily.schedules
    assert getattr(schedule.schedule, "cron", None) == DAILY_CRON
    assert getattr(schedule.schedule, "timezone", None) == "UTC"
    # Quoted in the YAML: unquoted, YAML 1.1 would turn 16:9 into the number 969.
    assert daily.parameters["request"]["aspect_ratio"] == "16:9"


def test_a_worker_runs_an_on_demand_request(stack_config: StackConfig, pool_api: Stack) -> None:
    from prefect import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    scheduled = run_deployment(
        POOL_ON_DEMAND_DEPLOYMENT,
        parameters={"request": demo_request(stack_config)},
        timeout=0,
        as_subflow=False,
    )
    assert isinstance(scheduled, FlowRun)
    # One poll: the worker picks the run up, executes it, and exits when it is done.
    _prefect(stack_config, pool_api, "worker", "start", "--pool", POOL, "--run-once")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(scheduled.id)
    assert run.state is not None
    assert run.state.is_completed(), run.state.message
    result: Any = run.state.result()
    assert result.path.startswith(str(stack_config.videos))
