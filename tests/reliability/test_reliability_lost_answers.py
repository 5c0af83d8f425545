"""Case 3: queue answers lost after the charge, with Prefect retries on top.

The emulator creates (and charges) the job of the first queue call, then closes the
connection without answering (`queue_drop_after_create_first=1`). The client cannot
know whether a job exists, so no retry may send the paid request again: a retried
flow run (retries=1) ends Failed with UnconfirmedQueueError after exactly one queue
call and one charge; in a batch the other videos are saved, each charged once, and
the retry neither pays for them again nor for the lost one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from reliability_support import (
    CLI,
    Figures,
    ReliabilitySession,
    charged_jobs,
    check_whole_video,
    cli_env,
    cli_generate_args,
    expected_video,
    fields_for,
    journal_entry,
    journal_mode_problems,
    leftovers,
    mp4s,
    queue_calls,
    run,
    save_block,
    status_count,
)

from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.errors import UnconfirmedQueueError
from prefect_venice.flows import VideoRequest, generate_video, generate_videos

LOSE_FIRST_ANSWER = FaultConfig(queue_drop_after_create_first=1)
SECTION = "case 3: lost queue answers"


def _request(output: Path, private: bool, job_name: str | None, n: int = 0) -> VideoRequest:
    return VideoRequest(
        prompt=f"Lanterns on a canal, take {n}",
        output_dir=str(output),
        job_name=job_name,
        max_usd=1.0,
        **fields_for(private),
    )


def _run_count(flow_run_id: uuid.UUID | None) -> int:
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).run_count


@pytest.mark.parametrize(
    ("private", "named"), [(False, False), (True, True)], ids=["public-run-key", "private-named"]
)
def test_a_retried_run_whose_queue_answer_was_lost_never_queues_again(
    private: bool,
    named: bool,
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
    reliability_env: Path,
    figures: Figures,
) -> None:
    emulator = start_emulator(faults=LOSE_FIRST_ANSWER)
    block = save_block(emulator)
    output = reliability.folder("outputs", f"lost-single-{private}")
    job_name = f"lost-{uuid.uuid4().hex[:6]}" if named else None

    state = generate_video.with_options(retries=1, retry_delay_seconds=0)(
        request=_request(output, private, job_name), credentials_block=block, return_state=True
    )

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, UnconfirmedQueueError), repr(error)
    assert _run_count(state.state_details.flow_run_id) == 2, "the flow run was not retried"
    ledger = emulator.ledger()
    assert queue_calls(ledger) == 1, "a retry sent the paid queue request again"
    assert status_count(ledger, "queue", "dropped") == 1
    assert len(charged_jobs(ledger)) == 1
    message = state.message or ""
    assert "jobs forget" in message and "usage history" in message, message
    if job_name is not None:
        assert repr(f"named:{job_name}") in message, message
        entry = journal_entry(reliability_env, f"named:{job_name}")
        assert entry is not None and entry.state == "sending"
    assert mp4s(output) == [] and leftovers(output) == []
    assert journal_mode_problems(reliability_env) == []
    figures.add(SECTION, "single runs (each retried once)")
    figures.add(SECTION, "single queue calls", queue_calls(ledger))
    figures.add(SECTION, "single charges", len(charged_jobs(ledger)))


def test_a_retried_batch_with_a_lost_answer_pays_once_per_video_and_never_again(
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
    figures: Figures,
) -> None:
    emulator = start_emulator(faults=LOSE_FIRST_ANSWER)
    block = save_block(emulator)
    output = reliability.folder("outputs", "lost-batch")
    requests = [_request(output, n % 2 == 0, f"lost-batch-{n}", n) for n in range(6)]

    state = generate_videos.with_options(retries=1, retry_delay_seconds=0)(
        requests, max_usd=5.0, credentials_block=block, return_state=True
    )

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, UnconfirmedQueueError), repr(error)
    assert _run_count(state.state_details.flow_run_id) == 2, "the flow run was not retried"
    ledger = emulator.ledger()
    charged = charged_jobs(ledger)
    # Six paid calls in the first attempt (one answer lost), none in the retry.
    assert queue_calls(ledger) == len(requests)
    assert status_count(ledger, "queue", "dropped") == 1
    assert len(charged) == len(requests)
    saved = mp4s(output)
    assert len(saved) == len(requests) - 1
    lost = [qid for qid in charged if not (output / f"{qid}.mp4").exists()]
    assert len(lost) == 1, "the lost answer's job should be the only one without a video"
    for path in saved:
        private = bool(charged[path.stem]["private"])
        size, sha = expected_video(private)
        assert check_whole_video(path, size=size, sha256=sha, expected=(size, sha)) == []
    assert leftovers(output) == []
    figures.add(SECTION, "batch videos asked", len(requests))
    figures.add(SECTION, "batch queue calls", queue_calls(ledger))
    figures.add(SECTION, "batch charges", len(charged))
    figures.add(SECTION, "batch videos saved", len(saved))


def test_a_cli_rerun_after_a_lost_answer_refuses_without_queueing(
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
    figures: Figures,
) -> None:
    emulator = start_emulator(faults=LOSE_FIRST_ANSWER)
    home = reliability.folder("homes", "lost-cli")
    output = reliability.folder("outputs", "lost-cli")
    args = cli_generate_args(
        emulator, private=True, prompt="Lanterns, CLI", output=output, job_name="lost-cli"
    )
    env = cli_env(emulator, home)

    first = run(args, env, reliability.root, reliability, "lost-cli-first")
    again = run(args, env, reliability.root, reliability, "lost-cli-again")
    listed = run([CLI, "jobs", "list"], env, reliability.root, reliability, "lost-cli-jobs")

    assert first.returncode == 1 and "Traceback" not in first.stderr, first.stderr
    assert "may have been created and charged" in first.stderr, first.stderr
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert "'named:lost-cli'" in again.stderr and "jobs forget" in again.stderr, again.stderr
    assert listed.stdout.startswith("sending\tnamed:lost-cli\t"), listed.stdout
    ledger = emulator.ledger()
    assert queue_calls(ledger) == 1
    assert len(charged_jobs(ledger)) == 1
    assert mp4s(output) == [] and leftovers(output) == []
    assert journal_mode_problems(home / "jobs") == []
    figures.add(SECTION, "cli runs", 2)
    figures.add(SECTION, "cli queue calls", queue_calls(ledger))


def test_the_attempt_that_lost_its_answer_does_not_say_nothing_was_queued(
    start_emulator: Callable[..., Emulator],
    reliability: ReliabilitySession,
) -> None:
    emulator = start_emulator(faults=LOSE_FIRST_ANSWER)
    output = reliability.folder("outputs", "lost-message")
    state = generate_video(
        request=_request(output, False, "lost-message"),
        credentials_block=save_block(emulator),
        return_state=True,
    )
    assert state.is_failed()
    assert len(charged_jobs(emulator.ledger())) == 1
    assert "Nothing was queued this time" not in (state.message or "")
