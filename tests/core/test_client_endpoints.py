"""Each endpoint of the client against the emulator over loopback HTTP, sync and async."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_support import FrozenClock, Venice, VeniceFactory

from prefect_venice import (
    Processing,
    Progress,
    QueuedJob,
    QueueRequest,
    QuoteRequest,
    ReadyAtLink,
    VideoLinkMissingError,
    VideoSaved,
    WaitTimeoutError,
)
from prefect_venice.emulator import Emulator

TEXT_MODEL = "wan-2.5-preview-text-to-video"
PRIVATE_MODEL = "grok-imagine-text-to-video-private"


def public_request(**overrides: object) -> QueueRequest:
    fields: dict[str, object] = {
        "model": TEXT_MODEL,
        "prompt": "A gondola gliding through Venice canals at sunset",
        "duration": "5s",
        "resolution": "720p",
        "aspect_ratio": "16:9",
    }
    fields.update(overrides)
    return QueueRequest.model_validate(fields)


def private_request() -> QueueRequest:
    return QueueRequest(
        model=PRIVATE_MODEL, prompt="A quiet canal at dawn", duration="6s", aspect_ratio="16:9"
    )


def is_mp4(path: Path) -> bool:
    return path.read_bytes()[4:8] == b"ftyp"


async def test_video_models_are_listed_with_constraints_and_cached(
    venice: Venice, emulator: Emulator
) -> None:
    models = await venice.list_video_models()
    again = await venice.list_video_models()

    wan = next(m for m in models if m.id == TEXT_MODEL)
    assert wan.constraints is not None
    assert "5s" in wan.constraints.durations
    assert "16:9" in wan.constraints.aspect_ratios
    assert again == models
    assert emulator.ledger()["calls"]["models"] == 1


async def test_private_models_are_marked_private(venice: Venice) -> None:
    model = await venice.get_video_model(PRIVATE_MODEL)
    assert model.privacy == "private"


async def test_quote_returns_usd_for_a_queue_request_or_a_quote_request(
    venice: Venice, emulator: Emulator
) -> None:
    from_queue_request = await venice.quote(public_request())
    from_quote_request = await venice.quote(
        QuoteRequest(model=TEXT_MODEL, duration="5s", resolution="720p", aspect_ratio="16:9")
    )
    assert from_queue_request.usd > 0
    assert from_quote_request.usd == from_queue_request.usd
    assert emulator.ledger()["calls"].get("queue", 0) == 0


async def test_queue_returns_a_job_without_link_for_public_models(
    venice: Venice, emulator: Emulator
) -> None:
    job = await venice.queue(public_request())
    assert job.model == TEXT_MODEL
    assert job.download_url is None
    assert emulator.ledger()["jobs"][job.queue_id]["queue_calls"] == 1


async def test_retrieve_reports_processing_then_saves_the_mp4(
    venice: Venice, tmp_path: Path, clock: FrozenClock
) -> None:
    job = await venice.queue(public_request())
    destination = tmp_path / "video.mp4"

    first = await venice.retrieve(job, destination)
    assert isinstance(first, Processing)
    assert first.average_execution_time_ms > 0
    assert not destination.exists()

    clock.advance(10)  # past the end of any job at the test scale

    saved = await venice.wait_for_video(job, destination)
    assert isinstance(saved, VideoSaved)
    assert saved.path == destination
    assert saved.size_bytes == destination.stat().st_size
    assert saved.source == "retrieve"
    assert is_mp4(destination)


async def test_wait_for_video_reports_progress(
    venice: Venice, tmp_path: Path, clock: FrozenClock
) -> None:
    seen: list[Progress] = []
    job = await venice.queue(public_request())

    def on_progress(progress: Progress) -> None:
        seen.append(progress)
        # A tenth of a second (25 emulated seconds) a poll: the job ends within a few polls.
        clock.advance(0.1)

    await venice.wait_for_video(job, tmp_path / "v.mp4", on_progress=on_progress)

    assert len(seen) >= 2, "expected several PROCESSING polls"
    assert [p.polls for p in seen] == list(range(1, len(seen) + 1))
    assert all(p.queue_id == job.queue_id for p in seen)
    assert all(p.fraction is not None and 0 <= p.fraction < 1 for p in seen)


async def test_destination_directory_gets_queue_id_file_name(
    venice: Venice, tmp_path: Path
) -> None:
    job = await venice.queue(public_request())
    saved = await venice.wait_for_video(job, tmp_path)
    assert saved.path == tmp_path / f"{job.queue_id}.mp4"


async def test_delete_media_on_completion_deletes_after_the_file_is_saved(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(public_request())
    await venice.wait_for_video(job, tmp_path / "v.mp4", delete_media_on_completion=True)
    record = emulator.ledger()["jobs"][job.queue_id]
    assert record["media_deleted"] is True
    # Deleted by /video/complete once saved, not by the retrieve flag mid-transfer.
    assert record["complete_calls"] == 1


async def test_complete_deletes_media_and_reports_already_gone_as_false(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(public_request())
    await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert await venice.complete(job) is True
    assert emulator.ledger()["jobs"][job.queue_id]["media_deleted"] is True
    assert await venice.complete(job) is False


async def test_private_job_is_fetched_from_its_link_without_authorization(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(private_request())
    assert job.download_url is not None
    assert job.download_url.get_secret_value().startswith(emulator.link_origin)

    saved = await venice.wait_for_video(job, tmp_path / "private.mp4")

    assert saved.source == "link"
    assert is_mp4(saved.path)
    ledger = emulator.ledger()
    assert ledger["jobs"][job.queue_id]["link_gets"] == 1
    assert ledger["link_auth_seen"] is False


async def test_retrieve_of_a_finished_private_job_is_ready_at_link(
    venice: Venice, tmp_path: Path
) -> None:
    job = await venice.queue(private_request())
    await venice.wait_for_video(job, tmp_path / "v.mp4")
    assert isinstance(await venice.retrieve(job, tmp_path / "again.mp4"), ReadyAtLink)


async def test_revoke_deletes_the_link_and_reports_already_gone_as_false(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(private_request())
    assert job.download_url is not None
    await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert await venice.revoke(job.download_url) is True
    assert emulator.ledger()["jobs"][job.queue_id]["link_deleted"] is True
    assert await venice.revoke(job.download_url) is False


async def test_ready_at_link_without_download_url_fails_at_once(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(private_request())
    await venice.wait_for_video(job, tmp_path / "first.mp4")
    retrieves_before = emulator.ledger()["jobs"][job.queue_id]["retrieve_calls"]
    stripped = QueuedJob(model=job.model, queue_id=job.queue_id)

    with pytest.raises(VideoLinkMissingError, match=job.queue_id):
        await venice.wait_for_video(stripped, tmp_path / "second.mp4", max_wait_seconds=60)

    assert emulator.ledger()["jobs"][job.queue_id]["retrieve_calls"] == retrieves_before + 1
    assert not (tmp_path / "second.mp4").exists()


async def test_wait_gives_up_after_max_wait_naming_the_job(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(job_duration_factor=1000.0)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(public_request())

    with pytest.raises(WaitTimeoutError) as caught:
        await venice.wait_for_video(job, tmp_path / "v.mp4", max_wait_seconds=0.2)

    assert job.queue_id in str(caught.value)
    assert "still processing after" in str(caught.value)
    assert caught.value.queue_id == job.queue_id
    assert not (tmp_path / "v.mp4").exists()
