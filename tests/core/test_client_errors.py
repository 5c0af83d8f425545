"""Each documented error status maps to its class, with the server's message and an action."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from core_support import Venice, VeniceFactory
from test_client_endpoints import private_request, public_request

from prefect_venice import (
    AuthenticationError,
    BadRequestError,
    ConsentRequiredError,
    ContentViolationError,
    InsufficientBalanceError,
    LinkGoneError,
    NotFoundError,
    PayloadTooLargeError,
    QueuedJob,
    QueueRequest,
    RateLimitError,
    RegionRestrictedError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
    VeniceClient,
    VideoSaved,
)
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.errors import LinkExhaustedError
from prefect_venice.retry import no_retries


async def test_401_wrong_key_is_an_authentication_error(
    venice_factory: VeniceFactory, emulator: Emulator
) -> None:
    venice = venice_factory(emulator, api_key="not-the-emulator-key")
    with pytest.raises(AuthenticationError) as caught:
        await venice.quote(public_request(), validate=False)
    assert caught.value.status == 401
    assert "Authentication failed" in (caught.value.server_message or "")
    assert "Check the API key" in str(caught.value)
    assert not caught.value.retryable


async def test_400_is_a_bad_request_error_with_server_details(
    venice: Venice, emulator: Emulator
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await venice.queue(public_request(duration="7s"), validate=False)
    assert caught.value.status == 400
    assert "7s" in str(caught.value)
    assert emulator.ledger()["charged_usd_total"] == 0


async def test_402_insufficient_balance(venice: Venice, emulator: Emulator) -> None:
    emulator.set_balance(0.0)
    with pytest.raises(InsufficientBalanceError) as caught:
        await venice.queue(public_request())
    assert caught.value.status == 402
    assert "Add funds" in str(caught.value)
    assert emulator.ledger()["calls"]["queue"] == 1


async def test_404_unknown_job_on_retrieve(venice: Venice, tmp_path: Path) -> None:
    job = QueuedJob(model=public_request().model, queue_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFoundError) as caught:
        await venice.retrieve(job, tmp_path / "v.mp4")
    assert caught.value.status == 404
    assert caught.value.queue_id == job.queue_id
    assert job.queue_id in str(caught.value)


async def test_409_consent_needed(venice: Venice) -> None:
    request = QueueRequest(
        model="seedance-2-0-text-to-video-basic",
        prompt="A dancer",
        duration="5s",
        aspect_ratio="16:9",
    )
    with pytest.raises(ConsentRequiredError) as caught:
        await venice.queue(request)
    assert caught.value.status == 409
    assert "consents" in str(caught.value)


async def test_410_revoked_link(venice: Venice, tmp_path: Path) -> None:
    job = await venice.queue(private_request())
    assert job.download_url is not None
    await venice.wait_for_video(job, tmp_path / "v.mp4")
    await venice.revoke(job.download_url)

    with pytest.raises(LinkGoneError) as caught:
        await venice.download(job.download_url, tmp_path / "again.mp4", queue_id=job.queue_id)
    assert caught.value.status == 410
    assert "revoked" in (caught.value.server_message or "")
    assert "answered 410 after 1 earlier GET from this client" in str(caught.value)
    assert "expired, been used up or been revoked" in str(caught.value)
    assert not (tmp_path / "again.mp4").exists()


async def test_404_on_a_link_of_a_job_not_ready(venice: Venice, tmp_path: Path) -> None:
    job = await venice.queue(private_request())
    assert job.download_url is not None
    with pytest.raises(NotFoundError) as caught:
        await venice.download(job.download_url, tmp_path / "v.mp4")
    assert caught.value.status == 404


async def test_413_payload_too_large(
    venice_factory: VeniceFactory, emulator_factory: object
) -> None:
    emu = emulator_factory(max_body_bytes=10_000)  # type: ignore[operator]
    venice = venice_factory(emu)
    big_image = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" * 5000).decode()
    request = QueueRequest(
        model="wan-2.5-preview-image-to-video",
        prompt="Zoom in",
        duration="5s",
        image_url=big_image,
    )
    with pytest.raises(PayloadTooLargeError) as caught:
        await venice.queue(request)
    assert caught.value.status == 413
    assert "Reduce the size" in str(caught.value)


async def test_422_content_violation(venice: Venice, emulator: Emulator) -> None:
    with pytest.raises(ContentViolationError) as caught:
        await venice.queue(public_request(prompt="something forbidden"))
    assert caught.value.status == 422
    assert emulator.ledger()["charged_usd_total"] == 0


async def test_429_on_queue_is_retried_until_the_window_resets(
    venice_factory: VeniceFactory, emulator_factory: object
) -> None:
    emu = emulator_factory(queue_requests_per_window=1)  # type: ignore[operator]
    # Unpaced, so the second call meets the limit (pacing would wait for the window).
    venice = venice_factory(emu, retry={"max_rate_limit_wait": 2.0}, pacing=False)
    venice.sleeps.cap = 2.0  # really wait for the (scaled) window to reset

    first = await venice.queue(public_request())
    second = await venice.queue(public_request())

    assert first.queue_id != second.queue_id
    ledger = emu.ledger()
    assert ledger["statuses"]["queue"]["429"] >= 1
    assert ledger["queue_calls_total"] == 2 + ledger["statuses"]["queue"]["429"]
    assert len(ledger["jobs"]) == 2


async def test_429_exhausted_is_a_rate_limit_error(
    venice_factory: VeniceFactory, emulator_factory: object
) -> None:
    emu = emulator_factory(queue_requests_per_window=1)  # type: ignore[operator]
    venice = venice_factory(emu, retry={"max_attempts": 1}, pacing=False)
    await venice.queue(public_request())
    with pytest.raises(RateLimitError) as caught:
        await venice.queue(public_request())
    assert caught.value.status == 429
    assert caught.value.retryable


async def test_429_on_an_overused_link_says_it_is_used_up_without_waiting(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(link_max_gets=1)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(private_request())
    assert job.download_url is not None
    await venice.wait_for_video(job, tmp_path / "v.mp4")
    venice.sleeps.delays.clear()

    with pytest.raises(LinkExhaustedError) as caught:
        await venice.download(job.download_url, tmp_path / "again.mp4", queue_id=job.queue_id)
    assert caught.value.status == 429
    assert not caught.value.retryable
    assert "after 1 earlier GET from this client" in str(caught.value)
    assert "appears to be used up" in str(caught.value)
    # The link's 429 is final at once: no Retry-After wait, no further GET spent.
    assert emu.ledger()["jobs"][job.queue_id]["link_gets"] == 2
    assert venice.sleeps.delays == []
    assert not (tmp_path / "again.mp4").exists()


async def test_429_on_a_link_another_client_used_up_waits_briefly_once(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu = emulator_factory(link_max_gets=1)  # type: ignore[operator]
    first = venice_factory(emu)
    job = await first.queue(private_request())
    assert job.download_url is not None
    await first.wait_for_video(job, tmp_path / "v.mp4")
    second = venice_factory(emu)  # a new process resuming the job, say

    with pytest.raises(LinkExhaustedError, match="after 1 earlier GET from this client"):
        await second.download(job.download_url, tmp_path / "again.mp4")
    assert emu.ledger()["jobs"][job.queue_id]["link_gets"] == 1 + 2
    # One wait, honouring Retry-After (60 emulated s, scaled to 0.24 s) within the cap.
    assert len(second.sleeps.delays) == 1
    assert 0.2 <= second.sleeps.delays[0] <= RetryPolicy().max_link_rate_limit_wait


@pytest.mark.parametrize(
    ("fault", "error"), [("rate_500", ServerError), ("rate_503", ServiceUnavailableError)]
)
async def test_persistent_5xx_on_quote_is_retried_then_raised(
    venice: Venice, emulator: Emulator, fault: str, error: type[Exception]
) -> None:
    await venice.list_video_models()
    emulator.configure_faults(FaultConfig(**{fault: {"quote": 1.0}}))  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        await venice.quote(public_request())
    assert emulator.ledger()["calls"]["quote"] == 5  # RetryPolicy.max_attempts
    assert "Retry later" in str(caught.value)


def test_403_region_restricted_maps_to_its_class() -> None:
    # The emulator has no region-restricted model: a transport scoped to this client.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, json={"error": "The specified model is unavailable in your region."}
        )

    with (
        VeniceClient(
            "k" * 16, transport=httpx.MockTransport(handler), retry=no_retries()
        ) as client,
        pytest.raises(RegionRestrictedError) as caught,
    ):
        client.queue(public_request(), validate=False)
    assert caught.value.status == 403
    assert "region" in str(caught.value)


def _retrieve_answering(response: httpx.Response, tmp_path: Path) -> object:
    def handler(request: httpx.Request) -> httpx.Response:
        return response

    job = QueuedJob(model="m", queue_id="q-1")
    with VeniceClient("k" * 16, transport=httpx.MockTransport(handler), retry=no_retries()) as c:
        return c.retrieve(job, tmp_path / "v.mp4")


@pytest.mark.parametrize("status", ["processing", "Completed", "completed"])
def test_statuses_are_matched_exactly_as_documented(status: str, tmp_path: Path) -> None:
    # Venice documents PROCESSING and COMPLETED; another spelling is not a known state.
    answer = httpx.Response(
        200, json={"status": status, "average_execution_time": 1, "execution_duration": 1}
    )
    with pytest.raises(ServerError, match="unknown status"):
        _retrieve_answering(answer, tmp_path)


def test_media_type_of_the_retrieve_answer_is_matched_case_insensitively(tmp_path: Path) -> None:
    mp4 = b"\x00\x00\x00\x18ftypisom" + bytes(100)
    answer = httpx.Response(200, content=mp4, headers={"Content-Type": "Video/MP4"})
    saved = _retrieve_answering(answer, tmp_path)
    assert isinstance(saved, VideoSaved) and saved.size_bytes == len(mp4)


def test_a_retrieve_answer_neither_json_nor_mp4_is_refused_unread(tmp_path: Path) -> None:
    class Endless(httpx.SyncByteStream):
        read = 0

        def __iter__(self) -> Iterator[bytes]:
            while True:
                Endless.read += 1
                if Endless.read > 64:
                    raise AssertionError("the client read a non-JSON answer into memory")
                yield bytes(1 << 16)

    answer = httpx.Response(
        200, stream=Endless(), headers={"Content-Type": "application/octet-stream"}
    )
    with pytest.raises(ServerError, match="application/octet-stream"):
        _retrieve_answering(answer, tmp_path)
    assert not list(tmp_path.iterdir())
