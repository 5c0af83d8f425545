"""Private links allow only a few GETs: a cut transfer resumes, a used-up link says so.

These run over a scoped httpx.MockTransport for the link host, to script answers the
emulator does not give (hosts without ranges, inconsistent ranges, changed files);
tests/core/test_streaming.py covers resuming against the emulator itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mock_support import MP4, CutStream, mock_venice

from prefect_venice import InvalidVideoError, LinkGoneError, NetworkError, RateLimitError
from prefect_venice.download import VideoWriter
from prefect_venice.errors import LinkExhaustedError

LINK = "https://private-share.test/v1/share/read/s3cr3t-t0ken-abcdefghijklmnop"
TOKEN = "s3cr3t-t0ken-abcdefghijklmnop"
FLAVOURS = pytest.mark.parametrize("flavour", ["sync", "async"])
Answer = Callable[[httpx.Request], httpx.Response]


class LinkHost:
    """Plays scripted answers in order and records every request it saw."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.parts_seen: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert "authorization" not in request.headers
        if not self.answers:
            raise AssertionError("more GETs than the test allows")
        return self.answers.pop(0)(request)

    @property
    def ranges(self) -> list[str | None]:
        return [r.headers.get("range") for r in self.requests]


def whole(headers: dict[str, str] | None = None, body: bytes = MP4) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=body,
            headers={
                "Content-Type": "video/mp4",
                "Content-Length": str(len(body)),
                **(headers or {}),
            },
        )

    return answer


def cut(after: int, *, headers: dict[str, str] | None = None, start: int = 0) -> Answer:
    """The whole file (start=0, 200) or its tail (206), cut off after `after` bytes."""

    def answer(request: httpx.Request) -> httpx.Response:
        total = len(MP4)
        extra = {"Content-Length": str(total - start), **(headers or {})}
        if start:
            extra["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        return httpx.Response(
            206 if start else 200,
            stream=CutStream(MP4[start : start + after]),
            headers={"Content-Type": "video/mp4", **extra},
        )

    return answer


def tail(headers: dict[str, str] | None = None, *, content_range: str | None = None) -> Answer:
    """A 206 answer to the request's `Range: bytes=N-`, with the rest of the file."""

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
        total = len(MP4)
        return httpx.Response(
            206,
            content=MP4[start:],
            headers={
                "Content-Type": "video/mp4",
                "Content-Length": str(total - start),
                "Content-Range": content_range or f"bytes {start}-{total - 1}/{total}",
                **(headers or {}),
            },
        )

    return answer


def status(code: int, **headers: str) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, json={"error": f"link said {code}"}, headers=headers)

    return answer


def entries(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir()]


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def assert_whole_video(saved_path: Path, sha256: str) -> None:
    assert saved_path.read_bytes() == MP4
    assert sha256 == hashlib.sha256(MP4).hexdigest()


# Resuming -------------------------------------------------------------------------------


@FLAVOURS
async def test_a_cut_transfer_resumes_from_the_bytes_received(flavour: str, tmp_path: Path) -> None:
    host = LinkHost(cut(5000, headers={"Accept-Ranges": "bytes"}), tail())
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4", queue_id="q-1")

    assert host.ranges == [None, "bytes=5000-"]
    assert host.requests[1].headers["accept-encoding"] == "identity"
    assert saved.size_bytes == len(MP4)
    assert_whole_video(saved.path, saved.sha256)
    assert leftovers(tmp_path) == []
    await venice.close()


@FLAVOURS
async def test_the_partial_file_stays_hidden_until_the_whole_video_is_in(
    flavour: str, tmp_path: Path
) -> None:
    destination = tmp_path / "v.mp4"
    seen: list[tuple[bool, list[int]]] = []

    def look_then_answer(request: httpx.Request) -> httpx.Response:
        parts = [p.stat().st_size for p in tmp_path.iterdir() if p.name.endswith(".part")]
        seen.append((destination.exists(), parts))
        return tail()(request)

    host = LinkHost(cut(3000, headers={"Accept-Ranges": "bytes"}), look_then_answer)
    venice = mock_venice(flavour, link=host)

    await venice.download(LINK, destination)

    # While resuming: one temp file beside the destination with the 3000 bytes, no video.
    assert seen == [(False, [3000])]
    assert destination.read_bytes() == MP4
    await venice.close()


@FLAVOURS
async def test_several_cuts_each_continue_where_the_last_stopped(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(
        cut(4000, headers={"Accept-Ranges": "bytes"}),
        cut(2000, start=4000),
        tail(),
    )
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.ranges == [None, "bytes=4000-", "bytes=6000-"]
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


@FLAVOURS
async def test_a_host_that_answers_200_to_a_range_starts_the_file_over(
    flavour: str, tmp_path: Path
) -> None:
    # No Accept-Ranges: the client may still ask; this host ignores Range and sends it all.
    host = LinkHost(cut(5000), whole())
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.ranges == [None, "bytes=5000-"]
    assert saved.size_bytes == len(MP4)
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


@FLAVOURS
async def test_a_host_that_refuses_ranges_is_not_asked_for_one(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(cut(5000, headers={"Accept-Ranges": "none"}), whole())
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.ranges == [None, None]
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


@FLAVOURS
@pytest.mark.parametrize(
    "content_range",
    [
        "bytes 4000-{last}/{total}",  # not where the file stops
        "bytes 5000-{last}/99999",  # another total
        "bytes 5000-{last}/*",  # no total
        "bytes 5000-{total}/{total}",  # past the end
        "pages 5000-{last}/{total}",
    ],
)
async def test_an_inconsistent_partial_answer_starts_over_without_a_range(
    flavour: str, content_range: str, tmp_path: Path
) -> None:
    content_range = content_range.format(last=len(MP4) - 1, total=len(MP4))
    host = LinkHost(
        cut(5000, headers={"Accept-Ranges": "bytes"}), tail(content_range=content_range), whole()
    )
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.ranges == [None, "bytes=5000-", None]
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


@FLAVOURS
async def test_a_changed_file_is_not_spliced_onto_the_old_one(flavour: str, tmp_path: Path) -> None:
    host = LinkHost(
        cut(5000, headers={"Accept-Ranges": "bytes", "ETag": '"v1"'}),
        tail(headers={"ETag": '"v2"'}),
        whole(headers={"ETag": '"v2"'}),
    )
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.requests[1].headers["if-range"] == '"v1"'
    assert host.ranges == [None, "bytes=5000-", None]
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


@FLAVOURS
async def test_a_cut_after_the_last_byte_completes_on_416(flavour: str, tmp_path: Path) -> None:
    total = len(MP4)
    host = LinkHost(
        cut(total, headers={"Accept-Ranges": "bytes"}),
        status(416, **{"Content-Range": f"bytes */{total}"}),
    )
    venice = mock_venice(flavour, link=host, chunk_size=4)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.ranges == [None, f"bytes={total}-"]
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


@FLAVOURS
async def test_a_transfer_cut_on_every_get_fails_naming_what_arrived(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(
        cut(1000, headers={"Accept-Ranges": "bytes"}),
        cut(1000, start=1000),
        cut(1000, start=2000),
    )
    venice = mock_venice(flavour, link=host)

    with pytest.raises(NetworkError) as caught:
        await venice.download(LINK, tmp_path / "v.mp4", queue_id="q-9")

    text = str(caught.value)
    assert "after 3 attempts: RemoteProtocolError" in text
    assert f"3000 of {len(MP4)} bytes had arrived; nothing was saved" in text
    assert LINK not in text and TOKEN not in text
    assert caught.value.__context__ is None
    assert len(host.requests) == 3  # RetryPolicy.link_attempts
    assert entries(tmp_path) == []
    await venice.close()


@FLAVOURS
async def test_a_partial_answer_that_ends_short_without_an_error_is_continued(
    flavour: str, tmp_path: Path
) -> None:
    # A 206 may carry less than asked (RFC 9110): ask again from where it stopped.
    total = len(MP4)

    def first_half(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            206,
            content=MP4[:8000],
            headers={
                "Content-Type": "video/mp4",
                "Content-Range": f"bytes 0-7999/{total}",
                "Content-Length": "8000",
            },
        )

    host = LinkHost(first_half, tail())
    venice = mock_venice(flavour, link=host)

    saved = await venice.download(LINK, tmp_path / "v.mp4")

    assert host.ranges == [None, "bytes=8000-"]
    assert_whole_video(saved.path, saved.sha256)
    await venice.close()


# Used-up links ----------------------------------------------------------------------------


@FLAVOURS
async def test_429_after_this_clients_own_gets_says_the_link_is_used_up(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(
        cut(5000, headers={"Accept-Ranges": "bytes"}),
        status(429, **{"Retry-After": "600"}),
    )
    venice = mock_venice(flavour, link=host)

    with pytest.raises(LinkExhaustedError) as caught:
        await venice.download(LINK, tmp_path / "v.mp4", queue_id="q-7")

    error = caught.value
    text = str(error)
    assert isinstance(error, LinkGoneError)  # one `except` catches every dead link
    assert error.status == 429 and not error.retryable
    assert "The private link for job q-7" in text
    assert "answered 429 after 1 earlier GET from this client" in text
    assert "appears to be used up" in text
    assert "Slow down" not in text
    assert LINK not in text and TOKEN not in text
    assert "https://private-share.test/<private link redacted>" in text
    assert len(host.requests) == 2
    assert venice.sleeps.delays == [pytest.approx(venice.sleeps.delays[0])]  # one backoff
    assert venice.sleeps.delays[0] < 1  # the cut's short backoff, not Retry-After
    assert entries(tmp_path) == []
    await venice.close()


@FLAVOURS
async def test_429_on_a_second_download_by_the_same_client_is_final_at_once(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(whole(), status(429, **{"Retry-After": "60"}))
    venice = mock_venice(flavour, link=host)
    await venice.download(LINK, tmp_path / "first.mp4")

    with pytest.raises(LinkExhaustedError, match="after 1 earlier GET from this client"):
        await venice.download(LINK, tmp_path / "again.mp4")

    assert len(host.requests) == 2
    assert venice.sleeps.delays == []
    await venice.close()


@FLAVOURS
async def test_429_on_a_fresh_clients_first_get_waits_briefly_once(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(status(429, **{"Retry-After": "600"}), status(429, **{"Retry-After": "600"}))
    venice = mock_venice(flavour, link=host)

    with pytest.raises(LinkExhaustedError) as caught:
        await venice.download(LINK, tmp_path / "v.mp4")

    assert "after 1 earlier GET from this client" in str(caught.value)
    assert len(host.requests) == 2
    # One short wait (capped by RetryPolicy.max_link_rate_limit_wait), not ten minutes.
    assert len(venice.sleeps.delays) == 1 and venice.sleeps.delays[0] <= 5.0
    await venice.close()


@FLAVOURS
async def test_429_with_no_get_left_names_an_earlier_run(flavour: str, tmp_path: Path) -> None:
    host = LinkHost(status(429))
    venice = mock_venice(flavour, link=host, retry={"link_attempts": 1})

    with pytest.raises(LinkExhaustedError) as caught:
        await venice.download(LINK, tmp_path / "v.mp4")

    assert "to the first GET from this client" in str(caught.value)
    assert "perhaps by an earlier run" in str(caught.value)
    assert not isinstance(caught.value, RateLimitError)
    await venice.close()


@FLAVOURS
async def test_410_says_expired_used_up_or_revoked_and_counts_earlier_gets(
    flavour: str, tmp_path: Path
) -> None:
    host = LinkHost(whole(), whole(), status(410))
    venice = mock_venice(flavour, link=host)
    await venice.download(LINK, tmp_path / "a.mp4")
    await venice.download(LINK, tmp_path / "b.mp4")

    with pytest.raises(LinkGoneError) as caught:
        await venice.download(LINK, tmp_path / "c.mp4", queue_id="q-3")

    text = str(caught.value)
    assert caught.value.status == 410
    assert "answered 410 after 2 earlier GETs from this client" in text
    assert "expired, been used up or been revoked" in text
    assert "link said 410" in text
    assert LINK not in text and TOKEN not in text
    assert len(host.requests) == 3
    await venice.close()


@FLAVOURS
async def test_a_json_answer_from_the_link_is_still_refused(flavour: str, tmp_path: Path) -> None:
    host = LinkHost(status(200))
    venice = mock_venice(flavour, link=host)
    with pytest.raises(InvalidVideoError, match="instead of an MP4"):
        await venice.download(LINK, tmp_path / "v.mp4")
    assert entries(tmp_path) == []
    await venice.close()


# The writer on its own ---------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 3, 8, 9, 5000, len(MP4)])
def test_truncating_the_writer_keeps_the_checksum_of_what_remains(
    keep: int, tmp_path: Path
) -> None:
    destination = tmp_path / "v.mp4"
    with VideoWriter(destination, expected_length=len(MP4)) as writer:
        writer.write(MP4[:7000])
        writer.write(b"garbage that must go" * 100)
        writer.truncate_to(min(keep, 7000))
        assert writer.received == min(keep, 7000)
        writer.write(MP4[writer.received :])
        saved = writer.commit()
    assert destination.read_bytes() == MP4
    assert saved.sha256 == hashlib.sha256(MP4).hexdigest()


def test_a_writer_that_received_nothing_leaves_no_trace(tmp_path: Path) -> None:
    destination = tmp_path / "sub" / "v.mp4"
    with VideoWriter(destination) as writer:
        assert writer.received == 0
    assert not (tmp_path / "sub").exists()


def test_the_writer_refuses_a_cut_beyond_what_it_holds(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "v.mp4") as writer:
        writer.write(b"12345")
        with pytest.raises(ValueError, match="cannot truncate"):
            writer.truncate_to(6)
