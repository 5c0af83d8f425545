"""generate_videos: one total budget, several concurrent videos, one paid call each."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import PrefectAPI
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import rate_limit as real_rate_limit

from prefect_venice.emulator import Emulator
from prefect_venice.flows import VideoRequest, generate_videos


def takes(output_dir: Path, count: int) -> list[VideoRequest]:
    # Identical requests on purpose: each is its own paid video, not a cache hit.
    return [
        VideoRequest(prompt="A kite over dunes", aspect_ratio="16:9", output_dir=str(output_dir))
        for _ in range(count)
    ]


def test_batch_makes_every_video_once(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    results = generate_videos(
        requests=takes(output_dir, 3), max_usd=5.0, credentials_block=credentials_block
    )

    assert len({r.queue_id for r in results}) == 3
    assert all(Path(r.path).is_file() for r in results)
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 3
    assert all(job["queue_calls"] == 1 for job in ledger["jobs"].values())


def test_batch_over_total_budget_queues_nothing(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    state = generate_videos(
        requests=takes(output_dir, 3),
        max_usd=0.5,
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed()
    assert "budget of $0.50" in (state.message or "")
    assert "nothing was queued" in (state.message or "")
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_retrieves_take_slots_of_the_named_rate_limit(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"venice-retrieve-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=50, slot_decay_per_second=50.0)
        )
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT", name)
    taken: list[str] = []

    def counting(names: str, **options: Any) -> None:
        real_rate_limit(names, **options)
        taken.append(names)

    monkeypatch.setattr("prefect_venice.tasks.pacing.rate_limit", counting)

    results = generate_videos(
        requests=takes(output_dir, 2), max_usd=5.0, credentials_block=credentials_block
    )

    assert len(results) == 2
    # No faults injected, so every retrieve reaching the emulator is one paced poll.
    assert taken == [name] * emulator.ledger()["calls"]["retrieve"]


def test_a_missing_rate_limit_fails_loudly_instead_of_running_unpaced(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT", "no-such-limit")

    state = generate_videos(
        requests=takes(output_dir, 1),
        max_usd=5.0,
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed()
    assert "no-such-limit" in (state.message or "")
    assert emulator.ledger()["calls"].get("retrieve", 0) == 0
    assert emulator.ledger()["calls"].get("queue", 0) == 0, "a misspelt limit cost a video"


def test_a_bad_storage_block_fails_the_batch_before_anything_is_queued(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    requests = [
        request.model_copy(update={"storage_block": "no-slash-here"})
        for request in takes(output_dir, 2)
    ]

    state = generate_videos(
        requests=requests, max_usd=5.0, credentials_block=credentials_block, return_state=True
    )

    assert state.is_failed()
    assert "<block-type-slug>/<block-name>" in (state.message or "")
    assert emulator.ledger()["calls"].get("queue", 0) == 0


def test_a_failure_after_queueing_names_the_paid_job(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_venice.generation import LocalDestination

    def disk_gone(self: LocalDestination, staged: Path, queue_id: str) -> Path:
        raise OSError("disk went away (injected)")

    monkeypatch.setattr(LocalDestination, "place", disk_gone)

    state = generate_videos(
        requests=takes(output_dir, 1),
        max_usd=5.0,
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed()
    (queue_id,) = emulator.ledger()["jobs"]
    assert queue_id in (state.message or "")
    assert "disk went away" in (state.message or "")


def test_a_batch_never_has_more_paid_but_unsaved_videos_than_its_window(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    results = generate_videos(
        requests=takes(output_dir, 6),
        max_usd=5.0,
        credentials_block=credentials_block,
        max_in_flight=2,
    )

    # From the emulator's request log: a job is in flight from its queue call to the
    # retrieve answer that delivered its MP4 (status 200 after its last PROCESSING).
    log = emulator.requests()
    queued = {e["queue_id"]: e["time"] for e in log if e["endpoint"] == "queue"}
    delivered = {
        e["queue_id"]: e["time"] for e in log if e["endpoint"] == "retrieve" and e["status"] == 200
    }
    assert set(queued) == {r.queue_id for r in results}
    events = sorted([(t, 1) for t in queued.values()] + [(delivered[q], -1) for q in queued])
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    assert peak == 2


def test_a_batch_fetches_the_catalogue_once_and_quotes_each_price_once(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    generate_videos(requests=takes(output_dir, 5), max_usd=5.0, credentials_block=credentials_block)

    calls = emulator.ledger()["calls"]
    assert calls["models"] == 1
    assert calls["quote"] == 1
    assert calls["queue"] == 5


def test_a_batch_stays_inside_venices_limits_with_no_configuration(
    emulator_factory: Any, output_dir: Path
) -> None:
    from prefect_venice.blocks import VeniceCredentials

    # Three queue calls per real second, whatever the time scale.
    emulator = emulator_factory(
        real_time_limits=True, rate_limit_window_seconds=1.0, queue_requests_per_window=3
    )
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(
        "tight-limits", overwrite=True
    )

    results = generate_videos(
        requests=takes(output_dir, 7), max_usd=5.0, credentials_block="tight-limits"
    )

    statuses = [e["status"] for e in emulator.requests() if e["endpoint"] == "queue"]
    assert statuses == [200] * 7
    assert len({r.queue_id for r in results}) == 7


def test_a_batch_logs_each_video_when_queued_and_when_saved_not_at_every_step(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: PrefectAPI
) -> None:
    state = generate_videos(
        requests=takes(output_dir, 3),
        max_usd=5.0,
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    messages = [log.message for log in prefect_api.logs(flow_run_id)]
    for result in state.result():
        mine = [m for m in messages if result.queue_id in m]
        assert len([m for m in mine if m.startswith("Queued video")]) == 1, mine
        (saved,) = [m for m in mine if m.startswith("Saved video")]
        assert "ready after" in saved and "polls" in saved
        # Polls, "ready" and the clean-up are DEBUG inside a batch (jobs here take under
        # a second, far less than the 30 s between two progress lines of one video).
        assert not [m for m in mine if "% done" in m or "still processing" in m], mine
        assert not [m for m in mine if m.startswith(("Media of", "Video "))], mine


def test_the_batch_progress_artifact_ends_with_every_video_counted(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: PrefectAPI
) -> None:
    state = generate_videos(
        requests=takes(output_dir, 3),
        max_usd=5.0,
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    (progress,) = [a for a in prefect_api.artifacts(flow_run_id) if a.type == "progress"]
    assert progress.key == "venice-batch-progress"
    assert progress.data == 100.0
    assert progress.description == "3 of 3 videos saved"


def test_a_batch_checks_a_shared_output_folder_once_before_paying(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_venice import download

    probes: list[Path] = []
    real_make_temp_file = download.make_temp_file

    def counting(directory: Path, **options: Any) -> tuple[int, str]:
        if str(options.get("prefix", "")).startswith(".probe-"):
            probes.append(directory)
        return real_make_temp_file(directory, **options)

    monkeypatch.setattr("prefect_venice.generation.make_temp_file", counting)
    other = output_dir.parent / "other-videos"
    elsewhere = VideoRequest(prompt="A kite", aspect_ratio="16:9", output_dir=str(other))
    requests = [*takes(output_dir, 3), elsewhere]

    results = generate_videos(requests=requests, max_usd=5.0, credentials_block=credentials_block)

    assert len(results) == 4
    assert sorted(p.parent.name for p in probes) == ["other-videos", "videos"]
