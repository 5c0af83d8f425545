"""The emulator's videos are real MP4 files: PyAV opens and decodes them."""

from __future__ import annotations

import io

import av
import pytest
from emulator_support import EmulatorFactory, api, queue, wait_until_done

from prefect_venice.emulator import Emulator, mp4


def decode(data: bytes) -> tuple[av.container.InputContainer, list[av.VideoFrame]]:
    container = av.open(io.BytesIO(data), mode="r")
    stream = container.streams.video[0]
    frames = list(container.decode(stream))
    return container, frames


def rgb_at(frame: av.VideoFrame, x: int, y: int) -> tuple[int, int, int]:
    plane = frame.reformat(format="rgb24").planes[0]
    raw = bytes(plane)
    at = y * plane.line_size + 3 * x
    return raw[at], raw[at + 1], raw[at + 2]


@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_video_decodes_with_the_stated_duration(aspect_ratio: str) -> None:
    video = mp4.make_video(5, "720p", aspect_ratio)
    container, frames = decode(b"".join(video.chunks()))
    stream = container.streams.video[0]
    assert stream.average_rate == 24
    assert len(frames) == 5 * 24
    assert container.duration is not None
    assert container.duration / 1_000_000 == pytest.approx(5.0)
    width, height = mp4.internal_size(aspect_ratio)
    assert (frames[0].width, frames[0].height) == (width, height)


def test_frames_show_the_moving_pattern() -> None:
    video = mp4.make_video(2, "480p", "16:9")
    _, frames = decode(b"".join(video.chunks()))
    width, height = mp4.internal_size("16:9")
    for index in (0, 7, 30):
        for x, y in ((0, 0), (width - 1, height - 1), (width // 2, height // 3)):
            assert rgb_at(frames[index], x, y) == mp4.expected_pixel(width, height, index, x, y)
    assert rgb_at(frames[0], 1, 1) != rgb_at(frames[12], 1, 1)


@pytest.mark.parametrize(
    ("resolution", "megabits_per_second"), [("480p", 1.0), ("720p", 2.5), ("1080p", 5.0)]
)
def test_size_is_realistic_for_the_resolution(resolution: str, megabits_per_second: float) -> None:
    video = mp4.make_video(10, resolution, "16:9")
    assert video.size == pytest.approx(megabits_per_second * 1_000_000 * 10 / 8, rel=0.01)
    assert sum(len(chunk) for chunk in video.chunks()) == video.size


def test_padding_is_streamed_in_small_pieces() -> None:
    video = mp4.make_video(10, "1080p", "16:9")
    assert max(len(chunk) for chunk in video.chunks()) <= max(len(video.header), 64 * 1024)


@pytest.mark.parametrize(
    ("start", "stop"),
    [(0, None), (7, 20), (-1, 5), ("header-2", "header+12"), ("header+8", None), (0, 10**12)],
)
def test_a_part_streams_the_same_bytes_as_slicing_the_whole(
    start: int | str, stop: int | str | None
) -> None:
    video = mp4.make_video(2, "480p", "16:9", size=300_000)
    whole = b"".join(video.chunks())

    def at(place: int | str) -> int:
        if isinstance(place, int):
            return place
        return len(video.header) + int(place.removeprefix("header"))

    first, end = at(start), None if stop is None else at(stop)
    assert b"".join(video.chunks(first, end)) == whole[max(first, 0) : end]


def test_a_part_deep_in_the_padding_is_streamed_in_small_pieces() -> None:
    video = mp4.make_video(10, "1080p", "16:9")
    pieces = list(video.chunks(video.size - 1_000_000))
    assert sum(len(piece) for piece in pieces) == 1_000_000
    assert max(len(piece) for piece in pieces) <= 64 * 1024


def test_explicit_size_is_exact() -> None:
    video = mp4.make_video(5, "720p", "16:9", size=3_000_000)
    data = b"".join(video.chunks())
    assert len(data) == 3_000_000
    _, frames = decode(data)
    assert len(frames) == 120


def test_display_size_follows_resolution_and_ratio() -> None:
    assert mp4.display_size("720p", "16:9") == (1280, 720)
    assert mp4.display_size("1080p", "9:16") == (1080, 1920)
    assert mp4.display_size("480p", "1:1") == (480, 480)


def test_retrieved_video_decodes(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client, duration="10s", resolution="720p", aspect_ratio="9:16")
        done = wait_until_done(client, job)
    assert done.headers["content-type"] == "video/mp4"
    assert len(done.content) == pytest.approx(2_500_000 * 10 / 8, rel=0.01)
    _, frames = decode(done.content)
    assert len(frames) == 240
    assert (frames[0].width, frames[0].height) == mp4.internal_size("9:16")


def test_video_bytes_setting_pads_to_that_size(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(video_bytes=1_000_000)
    with api(emulator) as client:
        done = wait_until_done(client, queue(client))
    assert int(done.headers["content-length"]) == 1_000_000
    assert len(done.content) == 1_000_000
