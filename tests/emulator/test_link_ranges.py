"""Range requests on private links: resume a dropped download from where it stopped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from emulator_support import EmulatorFactory, api, private_body, wait_until_done

from prefect_venice.emulator import Emulator, FaultConfig, mp4
from prefect_venice.emulator.service import RangeNotSatisfiable, byte_range

#: Private jobs are 6 s at 480p; this size keeps each download small.
VIDEO_BYTES = 400_000
HEADER_BYTES = len(mp4.build_header(6, "480p", "16:9"))


@pytest.fixture
def small_videos(emulator_factory: EmulatorFactory) -> Emulator:
    """An emulator whose videos are VIDEO_BYTES long."""
    return emulator_factory(video_bytes=VIDEO_BYTES)


def private_jobs(emulator: Emulator, count: int) -> list[dict[str, Any]]:
    """Queue `count` identical private jobs at once; return them when all are done."""
    with api(emulator) as client:
        jobs: list[dict[str, Any]] = []
        for _ in range(count):
            queued = client.post("/video/queue", json=private_body())
            assert queued.status_code == 200
            jobs.append(queued.json())
        for job in jobs:
            wait_until_done(client, job)
    return jobs


def private_job(emulator: Emulator) -> dict[str, Any]:
    (job,) = private_jobs(emulator, 1)
    return job


def link_and_whole_file(emulator: Emulator) -> tuple[str, bytes]:
    """A fresh private link, and the full download of another, identical job's link."""
    job, twin = private_jobs(emulator, 2)
    response = httpx.get(twin["download_url"])
    assert response.status_code == 200
    assert len(response.content) == VIDEO_BYTES
    return job["download_url"], response.content


def test_full_get_is_200_and_advertises_byte_ranges(small_videos: Emulator) -> None:
    response = httpx.get(private_job(small_videos)["download_url"])
    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "bytes"
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    "start",
    [1, HEADER_BYTES - 5, HEADER_BYTES + 3, VIDEO_BYTES - 70_000, VIDEO_BYTES - 1],
    ids=["in-header", "across-header-end", "in-padding-box-head", "deep-in-padding", "last"],
)
def test_open_range_returns_exactly_the_tail(small_videos: Emulator, start: int) -> None:
    url, whole = link_and_whole_file(small_videos)
    response = httpx.get(url, headers={"Range": f"bytes={start}-"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{VIDEO_BYTES - 1}/{VIDEO_BYTES}"
    assert int(response.headers["content-length"]) == VIDEO_BYTES - start
    assert response.content == whole[start:]


def test_closed_range_returns_exactly_that_slice(small_videos: Emulator) -> None:
    first, last = HEADER_BYTES - 100, HEADER_BYTES + 100_000
    url, whole = link_and_whole_file(small_videos)
    response = httpx.get(url, headers={"Range": f"bytes={first}-{last}"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{VIDEO_BYTES}"
    assert int(response.headers["content-length"]) == last - first + 1
    assert response.content == whole[first : last + 1]


def test_range_end_past_the_file_stops_at_the_last_byte(small_videos: Emulator) -> None:
    response = httpx.get(
        private_job(small_videos)["download_url"],
        headers={"Range": f"bytes=10-{VIDEO_BYTES * 2}"},
    )
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 10-{VIDEO_BYTES - 1}/{VIDEO_BYTES}"
    assert len(response.content) == VIDEO_BYTES - 10


def test_range_starting_at_the_end_is_416(small_videos: Emulator) -> None:
    response = httpx.get(
        private_job(small_videos)["download_url"], headers={"Range": f"bytes={VIDEO_BYTES}-"}
    )
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{VIDEO_BYTES}"
    assert response.json()["error"]


def test_ranged_gets_count_against_the_get_limit(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(video_bytes=VIDEO_BYTES, link_max_gets=2)
    url = private_job(emulator)["download_url"]
    statuses = [
        httpx.get(url, headers={"Range": "bytes=100-"}).status_code,
        httpx.get(url, headers={"Range": f"bytes={VIDEO_BYTES}-"}).status_code,
        httpx.get(url, headers={"Range": "bytes=100-"}).status_code,
    ]
    assert statuses == [206, 416, 429]
    ledger = emulator.ledger()
    assert ledger["statuses"]["link_get"] == {"206": 1, "416": 1, "429": 1}
    (record,) = ledger["jobs"].values()
    assert record["link_gets"] == 3


def test_drop_fault_cuts_a_ranged_answer_mid_part(small_videos: Emulator) -> None:
    url = private_job(small_videos)["download_url"]
    small_videos.configure_faults(FaultConfig(drop_rate={"link_get": 1.0}))
    received = 0
    with httpx.stream("GET", url, headers={"Range": "bytes=200000-"}) as response:
        assert response.status_code == 206
        expected = int(response.headers["content-length"])
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_raw():
                received += len(chunk)
    assert expected == VIDEO_BYTES - 200_000
    assert 0 < received < expected


def test_a_dropped_download_resumes_with_a_range(small_videos: Emulator) -> None:
    url, whole = link_and_whole_file(small_videos)
    small_videos.configure_faults(FaultConfig(drop_rate={"link_get": 1.0}))
    received = bytearray()
    with httpx.stream("GET", url) as response, pytest.raises(httpx.RemoteProtocolError):
        for chunk in response.iter_raw():
            received.extend(chunk)
    small_videos.configure_faults(FaultConfig())
    rest = httpx.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert 0 < len(received) < VIDEO_BYTES
    assert bytes(received) + rest.content == whole


def test_range_on_a_link_delete_is_ignored(small_videos: Emulator) -> None:
    url = private_job(small_videos)["download_url"]
    assert httpx.delete(url, headers={"Range": "bytes=0-"}).status_code == 204


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,5-9", "items=0-", "bytes=9-2", "bytes=x-", "bytes=-", "bytes 5-", "bytes=\u00b2-"],
)
def test_ranges_the_emulator_does_not_serve_mean_the_whole_file(header: str) -> None:
    assert byte_range(header, 1000) is None


@pytest.mark.parametrize(
    ("header", "part"),
    [
        ("bytes=0-", (0, 999)),
        ("bytes=10-19", (10, 19)),
        ("BYTES=990-5000", (990, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
    ],
)
def test_byte_range_reads_one_range(header: str, part: tuple[int, int]) -> None:
    assert byte_range(header, 1000) == part


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_byte_range_past_the_end_is_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)


def test_no_range_header_means_the_whole_file() -> None:
    assert byte_range(None, 1000) is None
