"""A run that fails after the paid queue call says which job it was and how to resume it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.cli import main
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.errors import JobFailedAfterQueueError, NetworkError, WaitTimeoutError
from prefect_venice.flows import VideoRequest, generate_video
from prefect_venice.models import QueuedJob

PRIVATE_MODEL = "grok-imagine-text-to-video-private"


def timing_out_request(output_dir: Path) -> VideoRequest:
    """A public model's request that is queued (paid) and gives up waiting after a second."""
    return VideoRequest(
        prompt="Fog rolling over a harbour",
        aspect_ratio="16:9",
        output_dir=str(output_dir),
        max_wait_seconds=1,
    )


#: Every retrieve answers 503 (retryable, nothing learnt): a wait can only run out of time.
STUCK = FaultConfig(rate_503={"retrieve": 1.0})


@pytest.fixture
def emulator(emulator_factory: Any) -> Emulator:
    """Retrieves fail until `configure_faults(FaultConfig())`, so a one-second wait gives up.

    However fast or slow the machine (a job that merely takes long could finish before a
    loaded machine polls it); clearing the fault lets the resumed wait find the job done.
    """
    started: Emulator = emulator_factory(faults=STUCK)
    return started


def test_a_wait_timeout_names_the_job_and_both_ways_to_resume(
    emulator: Emulator, credentials_block: str, output_dir: Path, tmp_path: Path
) -> None:
    request = timing_out_request(output_dir)

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    message = state.message or ""
    (queue_id,) = emulator.ledger()["jobs"]
    assert queue_id in message
    assert request.model in message
    assert "retry this flow run" in message.lower()
    assert "wait_for_video" in message
    error = state.result(raise_on_failure=False)
    assert isinstance(error, JobFailedAfterQueueError)
    assert error.queue_id == queue_id
    assert isinstance(error.__cause__, WaitTimeoutError)

    # The message's own instructions work: the client resumes the same job, unpaid.
    emulator.configure_faults(FaultConfig())
    hint = re.search(r"QueuedJob\(model='([^']+)', queue_id='([^']+)'\)", message)
    assert hint, message
    job = QueuedJob(model=hint.group(1), queue_id=hint.group(2))
    credentials = VeniceCredentials.load(credentials_block)
    assert isinstance(credentials, VeniceCredentials)
    with credentials.get_client() as client:
        saved = client.wait_for_video(job, tmp_path / "resumed.mp4", max_wait_seconds=30)
    assert saved.path.is_file()
    assert emulator.ledger()["calls"]["queue"] == 1


def test_the_shell_command_in_the_message_resumes_the_job_unpaid(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = timing_out_request(output_dir)

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_failed()
    message = state.message or ""
    hint = re.search(r"prefect-venice wait .*?--output DIR", message)
    assert hint, message
    argv = shlex.split(hint.group(0))[1:]
    (queue_id,) = emulator.ledger()["jobs"]
    assert argv[argv.index("--queue-id") + 1] == queue_id

    # Followed as written (the user's own folder for DIR), against the emulator.
    emulator.configure_faults(FaultConfig())
    argv[argv.index("DIR")] = str(tmp_path)
    monkeypatch.setenv("VENICE_API_KEY", emulator.api_key)
    status = main([*argv, "--base-url", emulator.base_url, "--min-poll-interval", "0.01"])

    assert status == 0
    saved = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert saved == tmp_path / f"{queue_id}.mp4"
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert emulator.ledger()["calls"]["queue"] == 1


def test_a_private_models_failure_never_shows_its_link(
    emulator_factory: Any,
    output_dir: Path,
    queued_jobs: list[QueuedJob],
) -> None:
    emulator = emulator_factory(faults=FaultConfig(drop_rate={"link_get": 1.0}))
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(
        "resume-private", overwrite=True
    )
    request = VideoRequest(
        prompt="A lighthouse in a storm",
        model=PRIVATE_MODEL,
        duration="6s",
        resolution="480p",
        aspect_ratio="16:9",
        output_dir=str(output_dir),
    )

    state = generate_video(request=request, credentials_block="resume-private", return_state=True)

    assert state.is_failed()
    message = state.message or ""
    (job,) = queued_jobs
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    assert job.queue_id in message
    assert PRIVATE_MODEL in message
    assert "retry this flow run" in message.lower()
    assert "VENICE_DOWNLOAD_URL" in message  # how `prefect-venice wait` takes the link
    assert link not in message
    assert link.rsplit("/", 1)[-1] not in message, "the link's token leaked"
    error = state.result(raise_on_failure=False)
    assert isinstance(error, JobFailedAfterQueueError)
    assert isinstance(error.__cause__, NetworkError)
