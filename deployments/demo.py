"""The one-command demo: Prefect server, Venice emulator, one video made through a deployment.

    python deployments/demo.py          # (re)start the stack, make one video, leave the stack up
    python deployments/demo.py --stop   # stop what the demo started

Needs no Venice key and no network: the `venice` credentials block points at
the local emulator. With VENICE_API_KEY set, the block points at the real API
instead (the key stays in the environment, not in the Prefect database) and the
demo pays for one short video.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from supervisor import (
    REPO_ROOT,
    Stack,
    StackConfig,
    StackError,
    add_runner,
    is_running,
    prefect_client_settings,
    start_services,
    stop_stack,
)

DEMO_ROOT = REPO_ROOT / ".demo"
DEMO_SERVER_PORT = 4200
DEMO_EMULATOR_PORT = 8765
# 0.03 emulated seconds per second: the demo model's two-minute job takes about 4 s.
DEMO_TIME_SCALE = 0.03
REAL_API_KEY_ENV = "VENICE_API_KEY"

DEMO_PROMPT = "A paper boat drifting down a rain-soaked street at dusk, cinematic, shallow focus."


@dataclass(frozen=True)
class DemoResult:
    """What one demo run produced, read back from the flow run."""

    flow_run_id: str
    state: str
    message: str | None
    video_path: str | None
    cost_usd: float | None
    url: str


def demo_config(root: Path = DEMO_ROOT) -> StackConfig:
    """The demo's stack: fixed ports when free, a few seconds per video."""
    return StackConfig(
        root=root,
        server_port=DEMO_SERVER_PORT,
        emulator_port=DEMO_EMULATOR_PORT,
        time_scale=DEMO_TIME_SCALE,
    )


def save_credentials(stack: Stack, block_name: str, real_api: bool) -> None:
    """Register the block type and save the named credentials block for the stack's target."""
    from prefect_venice.blocks import VeniceCredentials

    VeniceCredentials.register_type_and_schema()
    if real_api:
        # No key stored: the runner's VENICE_API_KEY is used at run time.
        block = VeniceCredentials()
    else:
        block = VeniceCredentials(api_key=stack.emulator_api_key, base_url=stack.emulator_url)
    block.save(block_name, overwrite=True)


def wait_for_runner(
    config: StackConfig, stack: Stack, names: Sequence[str], started_at: datetime
) -> None:
    """Wait until the serve process has created `names` and polls them for runs."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    runner = stack.processes[-1]
    deadline = time.monotonic() + config.startup_timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            ready = 0
            for name in names:
                try:
                    deployment = client.read_deployment_by_name(name)
                except ObjectNotFound:
                    break
                if deployment.last_polled and deployment.last_polled >= started_at:
                    ready += 1
            if ready == len(names):
                return
            if not is_running(runner):
                raise StackError(f"the serve process exited; see {runner.log}")
            time.sleep(0.5)
    raise StackError(f"deployments {', '.join(names)} not served in time; see {runner.log}")


def start_demo_stack(
    config: StackConfig, *, block_name: str = "venice", real_api: bool = False
) -> Stack:
    """Start server and emulator, save the credentials block, start the serve process.

    Returns once both deployments exist and the serve process polls them.
    The caller must be inside `prefect_client_settings(config, stack)` for any
    further Prefect call; this function enters it only for its own calls.
    """
    from serve import DAILY_DEPLOYMENT, ON_DEMAND_DEPLOYMENT

    stack = start_services(config)
    try:
        with prefect_client_settings(config, stack):
            save_credentials(stack, block_name, real_api)
            started_at = datetime.now(timezone.utc)
            add_runner(config, stack)
            wait_for_runner(config, stack, [ON_DEMAND_DEPLOYMENT, DAILY_DEPLOYMENT], started_at)
    except BaseException:
        stop_stack(config)
        raise
    return stack


def demo_request(config: StackConfig) -> dict[str, Any]:
    """The `request` parameter of the demo's run."""
    from serve import DEMO_MODEL

    return {
        "model": DEMO_MODEL,
        "prompt": DEMO_PROMPT,
        "duration": "5s",
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "output_dir": str(config.videos),
    }


def run_on_demand(
    stack: Stack, request: dict[str, Any], timeout: float = 300.0
) -> tuple[DemoResult, Any]:
    """Run `generate-video/on-demand` once through the API; return its summary and result.

    Call inside `prefect_client_settings`. The result is the flow's return value,
    or None when the run did not complete.
    """
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from serve import ON_DEMAND_DEPLOYMENT

    flow_run = run_deployment(
        ON_DEMAND_DEPLOYMENT,
        parameters={"request": request},
        timeout=timeout,
        poll_interval=1,
        as_subflow=False,
    )
    # Called from sync code, so the answer is the run itself, never a coroutine.
    assert isinstance(flow_run, FlowRun)
    state = flow_run.state
    result: Any = None
    if state is not None and state.is_completed():
        result = state.result()
    path = getattr(result, "path", None)
    cost = getattr(result, "cost_usd", None)
    summary = DemoResult(
        flow_run_id=str(flow_run.id),
        state=str(state.name) if state is not None else "Unknown",
        message=state.message if state is not None else None,
        video_path=str(path) if path is not None else None,
        cost_usd=float(cost) if cost is not None else None,
        url=stack.flow_run_url(flow_run.id),
    )
    return summary, result


def port_of(url: str) -> int:
    """Return the TCP port of an http URL of the stack."""
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url} names no port")
    return port


def export_line(stack: Stack) -> str:
    """Return the shell line that points the `prefect` CLI and your own flows at the stack."""
    return f"export PREFECT_API_URL={stack.api_url}"


def describe_stack(config: StackConfig, stack: Stack, *, real_api: bool = False) -> list[str]:
    """Return lines naming the stack's URLs and ports (and the preferred ports that were busy)."""
    from serve import DAILY_CRON, DAILY_DEPLOYMENT, ON_DEMAND_DEPLOYMENT

    def port_note(url: str, preferred: int) -> str:
        port = port_of(url)
        busy = f"; port {preferred} was in use" if preferred and port != preferred else ""
        return f"(port {port}{busy})"

    server = port_note(stack.ui_url, config.server_port)
    emulator = port_note(stack.emulator_url, config.emulator_port)
    target = (
        "the real Venice API (VENICE_API_KEY)" if real_api else f"{stack.emulator_url}  {emulator}"
    )
    return [
        f"  Prefect UI    {stack.ui_url}  {server}",
        f"  Prefect API   {stack.api_url}",
        f"  Venice API    {target}",
        f"  Deployments   {ON_DEMAND_DEPLOYMENT}, {DAILY_DEPLOYMENT} (cron {DAILY_CRON} UTC)",
        f"  Logs          {config.logs}",
        f"  Shell         {export_line(stack)}",
    ]


def format_usd(amount: float) -> str:
    """Dollars with cents, or with four decimals where cents would round a price."""
    return f"${amount:.2f}" if round(amount, 2) == amount else f"${amount:.4f}"


def _print(line: str = "") -> None:
    print(line, flush=True)


def _isolate_this_process(config: StackConfig) -> None:
    """Keep the demo's own Prefect client off the user's profile, home and telemetry."""
    config.prefect_home.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        del os.environ[key]
    os.environ.update(
        PREFECT_HOME=str(config.prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )


def stop(config: StackConfig) -> int:
    """Stop the demo's processes and say which ran."""
    stopped = stop_stack(config)
    if stopped:
        _print(f"Stopped {', '.join(stopped)}.")
    else:
        _print("Nothing to stop: no demo stack is running.")
    return 0


def run_demo(config: StackConfig) -> int:
    """Restart the stack, make one video through the on-demand deployment, report it."""
    real_api = bool(os.environ.get(REAL_API_KEY_ENV))
    _isolate_this_process(config)
    if stop_stack(config):
        _print("Stopped the previous demo stack.")
    _print("Starting a Prefect server, the Venice emulator and a serve process ...")
    try:
        stack = start_demo_stack(config, real_api=real_api)
    except StackError as error:
        _print(f"The demo stack did not start: {error}")
        return 1
    from serve import ON_DEMAND_DEPLOYMENT

    for line in describe_stack(config, stack, real_api=real_api):
        _print(line)
    _print(f"Running {ON_DEMAND_DEPLOYMENT} ...")
    with prefect_client_settings(config, stack):
        summary, _ = run_on_demand(stack, demo_request(config))
    _print(f"  State         {summary.state}")
    if summary.state != "Completed" and summary.message:
        _print(f"  Message       {summary.message}")
    if summary.video_path:
        _print(f"  Video         {summary.video_path}")
    if summary.cost_usd is not None:
        _print(f"  Cost          {format_usd(summary.cost_usd)}")
    _print(f"  Flow run      {summary.url}")
    _print()
    _print("The stack keeps running in the background. Stop it with: make demo-stop")
    _print("To use it from your shell (prefect CLI, your own flows):")
    _print(f"  {export_line(stack)}")
    return 0 if summary.state == "Completed" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo, or stop it with `--stop`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the demo's processes")
    args = parser.parse_args(argv)
    config = demo_config()
    if args.stop:
        return stop(config)
    return run_demo(config)


if __name__ == "__main__":
    sys.exit(main())
