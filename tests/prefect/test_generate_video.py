"""generate_video end to end against the emulator: the happy paths and what they leave behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
from conftest import venice_events

from prefect_venice.emulator import Emulator
from prefect_venice.flows import VideoRequest, generate_video
from prefect_venice.flows.video import SUMMARY_ARTIFACT_KEY
from prefect_venice.tasks import VideoResult


def assert_playable_mp4(path: Path) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
    assert frames > 0


def test_text_to_video_saves_a_playable_mp4_and_a_summary(
    emulator: Emulator, credentials_block: str, output_dir: Path, prefect_api: Any
) -> None:
    request = VideoRequest(
        prompt="A gondola gliding through Venice canals at sunset",
        duration="5s",
        resolution="720p",
        aspect_ratio="16:9",
        output_dir=str(output_dir),
    )

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, VideoResult)
    path = Path(result.path)
    assert path.parent == output_dir.resolve()
    assert path.stat().st_size == result.size_bytes
    assert_playable_mp4(path)
    assert emulator.ledger()["calls"]["queue"] == 1
    artifacts = prefect_api.artifacts(state.state_details.flow_run_id)
    summary = [a for a in artifacts if a.key == SUMMARY_ARTIFACT_KEY]
    assert len(summary) == 1
    assert result.queue_id in str(summary[0].data)
    progress = [a for a in artifacts if a.type == "progress"]
    assert [a.data for a in progress] == [100.0]
    assert progress[0].key is None  # no card per video on the Artifacts page


def test_queued_and_completed_events_name_the_video(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    request = VideoRequest(
        prompt="Rain on a window", aspect_ratio="16:9", output_dir=str(output_dir)
    )

    result = generate_video(request=request, credentials_block=credentials_block)

    mine = venice_events(f"venice.video.{result.queue_id}", expected=2)
    assert [event["event"] for event in mine] == ["venice.video.queued", "venice.video.completed"]
    assert all(event["resource"]["venice.model"] == request.model for event in mine)


def test_image_to_video_from_a_local_png(
    emulator: Emulator,
    credentials_block: str,
    output_dir: Path,
    png_image: Path,
    prefect_api: Any,
) -> None:
    request = VideoRequest(
        prompt="The camera slowly zooms in",
        model="wan-2.5-preview-image-to-video",
        image=str(png_image),
        output_dir=str(output_dir),
    )

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert_playable_mp4(Path(result.path))
    keys = {a.key for a in prefect_api.artifacts(state.state_details.flow_run_id)}
    assert SUMMARY_ARTIFACT_KEY in keys


def test_private_model_link_is_fetched_without_key_then_revoked(
    emulator: Emulator, credentials_block: str, output_dir: Path
) -> None:
    request = VideoRequest(
        prompt="A lighthouse in a storm",
        model="grok-imagine-text-to-video-private",
        duration="6s",
        resolution="480p",
        aspect_ratio="16:9",
        output_dir=str(output_dir),
    )

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result.source == "link"
    assert_playable_mp4(Path(result.path))
    job = emulator.ledger()["jobs"][result.queue_id]
    assert job["link_gets"] >= 1
    assert job["link_auth_seen"] is False
    assert job["link_deleted"] is True
    assert emulator.ledger()["link_auth_seen"] is False


def test_storage_block_receives_the_video(
    emulator: Emulator, credentials_block: str, tmp_path: Path
) -> None:
    from prefect.filesystems import LocalFileSystem

    store = tmp_path / "store"
    LocalFileSystem(basepath=str(store)).save("venice-videos", overwrite=True)
    request = VideoRequest(
        prompt="Waves on a pier",
        aspect_ratio="16:9",
        storage_block="local-file-system/venice-videos",
        filename="pier.mp4",
    )

    state = generate_video(request=request, credentials_block=credentials_block, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result.storage_block == "local-file-system/venice-videos"
    assert_playable_mp4(store / "pier.mp4")
    assert (store / "pier.mp4").stat().st_size == result.size_bytes
