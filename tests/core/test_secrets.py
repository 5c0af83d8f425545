"""The API key and private links never reach exception messages or log records."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from core_support import Venice, VeniceFactory
from test_client_endpoints import private_request, public_request

from prefect_venice import LinkGoneError, NetworkError, VeniceClient, VeniceError
from prefect_venice._redact import REDACTED_LINK
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.retry import no_retries


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"secret leaked into: {text!r}"


async def test_private_flow_logs_no_key_and_no_link(
    venice: Venice, emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job = await venice.queue(private_request())
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    token = urlsplit(link).path

    await venice.wait_for_video(job, tmp_path / "v.mp4")
    await venice.revoke(job.download_url)
    with pytest.raises(LinkGoneError) as caught:
        await venice.download(job.download_url, tmp_path / "again.mp4")

    messages = [record.getMessage() for record in caplog.records]
    assert any("HTTP Request" in m and REDACTED_LINK in m for m in messages), messages
    for message in messages:
        assert_clean(message, emulator.api_key, link, token)
    assert_clean(str(caught.value), emulator.api_key, link, token)
    assert f"{emulator.link_origin}/{REDACTED_LINK}" in str(caught.value)
    assert_clean(repr(job), link)
    assert_clean(job.model_dump_json(), link)


async def test_network_errors_on_a_link_name_the_host_but_not_the_link(
    venice_factory: VeniceFactory, emulator_factory: object, tmp_path: Path
) -> None:
    emu: Emulator = emulator_factory(video_bytes=256 * 1024)  # type: ignore[operator]
    venice = venice_factory(emu)
    job = await venice.queue(private_request())
    assert job.download_url is not None
    link = job.download_url.get_secret_value()
    emu.configure_faults(FaultConfig(drop_rate={"link_get": 1.0}))

    with pytest.raises(NetworkError) as caught:
        await venice.wait_for_video(job, tmp_path / "v.mp4")

    assert_clean(str(caught.value), link, urlsplit(link).path)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    # The httpx error would carry the request (and so the full link) along.
    assert caught.value.__context__ is None


async def test_the_key_is_never_sent_to_the_link_origin(
    venice: Venice, emulator: Emulator, tmp_path: Path
) -> None:
    job = await venice.queue(private_request())
    await venice.wait_for_video(job, tmp_path / "v.mp4")
    assert emulator.ledger()["link_auth_seen"] is False


async def test_errors_from_the_api_do_not_echo_the_key(
    venice_factory: VeniceFactory, emulator: Emulator
) -> None:
    wrong_key = "sk-wrong-but-secret-123456"
    venice = venice_factory(emulator, api_key=wrong_key)
    with pytest.raises(VeniceError) as caught:
        await venice.queue(public_request(), validate=False)
    assert_clean(str(caught.value), wrong_key)


def test_a_server_message_echoing_a_secret_is_redacted() -> None:
    key = "sk-echoed-secret-abcdef"

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": f"bad key {key} for {request.url}"})

    client = VeniceClient(key, transport=httpx.MockTransport(echo), retry=no_retries())
    with client, pytest.raises(VeniceError) as caught:
        client.quote(public_request(), validate=False)
    assert_clean(str(caught.value), key)
    assert "<api key redacted>" in str(caught.value)


def test_a_transport_error_keeps_no_request_with_the_key_attached() -> None:
    # httpx errors hold their request, Authorization header included; the raised
    # error must not chain to one (Prefect and error trackers walk the chain).
    key = "sk-chained-secret-abcdef"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = VeniceClient(key, transport=httpx.MockTransport(refuse), retry=no_retries())
    with client, pytest.raises(NetworkError) as caught:
        client.quote(public_request(), validate=False)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_an_unreadable_queue_answer_does_not_chain_the_link() -> None:
    link = "https://links.example/v1/share/read/secret-token-0123456789"

    def no_queue_id(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"model": "m", "download_url": link})

    client = VeniceClient("k" * 16, transport=httpx.MockTransport(no_queue_id), retry=no_retries())
    with client, pytest.raises(VeniceError) as caught:
        client.queue(public_request(), validate=False)
    assert caught.value.__context__ is None
    assert_clean(str(caught.value), link)


def test_client_repr_shows_no_key() -> None:
    key = "sk-repr-secret-abcdef"
    with VeniceClient(key, base_url="http://127.0.0.1:9/api/v1") as client:
        assert_clean(repr(client), key)
        assert_clean(repr(vars(client)), key)
