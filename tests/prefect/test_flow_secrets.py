"""The API key and a private link's token never reach logs, artifacts, states or parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.flows import VideoRequest, generate_video
from prefect_venice.models import QueuedJob


def private_request(output_dir: Path) -> VideoRequest:
    return VideoRequest(
        prompt="A lighthouse in a storm",
        model="grok-imagine-text-to-video-private",
        duration="6s",
        resolution="480p",
        aspect_ratio="16:9",
        output_dir=str(output_dir),
    )


def everything_prefect_kept(prefect_api: Any, flow_run_id: Any) -> str:
    """Every log line, artifact, state message and parameter the run left in the Prefect API."""
    flow_run = prefect_api.flow_run(flow_run_id)
    parts = [
        json.dumps(flow_run.parameters, default=str),
        flow_run.state.message or "",
        flow_run.name,
    ]
    parts += [log.message for log in prefect_api.logs(flow_run_id)]
    for artifact in prefect_api.artifacts(flow_run_id):
        parts += [str(artifact.data), artifact.description or ""]
    for task_run in prefect_api.task_runs(flow_run_id):
        parts += [task_run.name, task_run.state.message or "" if task_run.state else ""]
    return "\n".join(parts)


def secrets_of(emulator: Emulator, job: QueuedJob) -> dict[str, str]:
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    token = urlsplit(link).path.rsplit("/", 1)[-1]
    assert len(token) >= 16
    return {"api key": emulator.api_key, "link": link, "link token": token}


def test_successful_private_run_keeps_secrets_out(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    queued_jobs: list[QueuedJob],
    prefect_api: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = generate_video(
        request=private_request(output_dir), credentials_block=credentials_block, return_state=True
    )

    assert state.is_completed(), state.message
    kept = everything_prefect_kept(prefect_api, state.state_details.flow_run_id)
    assert "private link redacted" in kept, "the summary should mention the redacted link"
    assert queued_jobs[0].queue_id in kept, "the search looked at the wrong run"
    for name, secret in secrets_of(emulator, queued_jobs[0]).items():
        assert secret not in kept, f"the {name} reached the Prefect API"
        assert secret not in caplog.text, f"the {name} reached a local log record"


def test_failed_private_download_keeps_secrets_out(
    emulator_factory: Any,
    tmp_path: Path,
    queued_jobs: list[QueuedJob],
    prefect_api: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect_venice.blocks import VeniceCredentials

    emulator = emulator_factory(faults=FaultConfig(drop_rate={"link_get": 1.0}))
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(
        "dropping-links", overwrite=True
    )

    state = generate_video(
        request=private_request(tmp_path), credentials_block="dropping-links", return_state=True
    )

    assert state.is_failed()
    kept = everything_prefect_kept(prefect_api, state.state_details.flow_run_id)
    assert queued_jobs[0].queue_id in kept
    for name, secret in secrets_of(emulator, queued_jobs[0]).items():
        assert secret not in kept, f"the {name} reached the Prefect API"
        assert secret not in caplog.text, f"the {name} reached a local log record"
