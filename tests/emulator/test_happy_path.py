"""Happy paths of every emulated endpoint, spoken to with raw httpx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from emulator_support import (
    I2V,
    PRIVATE,
    PRIVATE_I2V,
    T2V,
    TINY_PNG,
    api,
    freeze_clock,
    private_body,
    queue,
    queue_body,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator


def test_models_lists_video_models_without_auth(emulator: Emulator) -> None:
    response = httpx.get(f"{emulator.base_url}/models", params={"type": "video"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["type"] == "video"
    ids = {model["id"] for model in body["data"]}
    assert {T2V, PRIVATE, "grok-imagine-image-to-video-private"} <= ids


def test_quote_returns_a_price(emulator: Emulator) -> None:
    with api(emulator) as client:
        response = client.post(
            "/video/quote", json={"model": T2V, "duration": "10s", "resolution": "1080p"}
        )
    assert response.status_code == 200
    assert response.json()["quote"] > 0


def test_queue_then_retrieve_delivers_an_mp4(emulator: Emulator) -> None:
    with api(emulator) as client:
        queued = client.post("/video/queue", json=queue_body())
        assert queued.status_code == 200
        job = queued.json()
        assert job["model"] == T2V and job["queue_id"]
        assert "download_url" not in job
        done = wait_until_done(client, job)
    assert done.status_code == 200
    assert done.headers["content-type"] == "video/mp4"
    assert done.content[4:8] == b"ftyp"


def test_complete_answers_success(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = client.post("/video/queue", json=queue_body()).json()
        wait_until_done(client, job)
        response = client.post(
            "/video/complete", json={"model": job["model"], "queue_id": job["queue_id"]}
        )
    assert response.status_code == 200
    assert response.json() == {"success": True}


def test_models_accepts_the_right_key_too(emulator: Emulator) -> None:
    with api(emulator) as client:
        assert client.get("/models", params={"type": "video"}).status_code == 200


def test_quote_needs_no_prompt_and_depends_on_duration_resolution_audio(
    emulator: Emulator,
) -> None:
    def price(**fields: object) -> float:
        with api(emulator) as client:
            response = client.post("/video/quote", json={"model": T2V, **fields})
        assert response.status_code == 200, response.text
        quote = response.json()["quote"]
        assert isinstance(quote, float)
        return quote

    base = price(duration="5s", resolution="720p", audio=False)
    assert price(duration="10s", resolution="720p", audio=False) > base
    assert price(duration="5s", resolution="1080p", audio=False) > base
    assert price(duration="5s", resolution="720p", audio=True) > base


def test_retrieve_while_running_reports_processing_times(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = freeze_clock(monkeypatch)
    with api(emulator) as client:
        job = queue(client)
        clock.advance(0.1)  # 25 emulated seconds: the job runs 60 or more
        response = client.post("/video/retrieve", json=ref(job))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "PROCESSING"
    assert body["average_execution_time"] > 0
    assert body["execution_duration"] == 100


def test_image_to_video_takes_a_data_url_and_no_aspect_ratio(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client, model=I2V, aspect_ratio=None, image_url=TINY_PNG)
        done = wait_until_done(client, job)
    assert done.headers["content-type"] == "video/mp4"


def test_image_to_video_takes_an_https_url(emulator: Emulator) -> None:
    with api(emulator) as client:
        queue(client, model=I2V, aspect_ratio=None, image_url="https://example.com/a.jpg")


def test_private_model_answers_with_a_link_and_json_completed(emulator: Emulator) -> None:
    with api(emulator) as client:
        queued = client.post("/video/queue", json=private_body())
        assert queued.status_code == 200
        job = queued.json()
        assert job["download_url"].startswith(emulator.link_origin + "/")
        done = wait_until_done(client, job)
    assert done.headers["content-type"].startswith("application/json")
    body = done.json()
    assert body["status"] == "COMPLETED"
    assert body["execution_duration"] > 0 and body["average_execution_time"] > 0
    video = httpx.get(job["download_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


def test_private_image_to_video_model_works_too(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client, model=PRIVATE_I2V, duration="6s", aspect_ratio=None, image_url=TINY_PNG)
    assert "download_url" in job


def test_download_links_are_unguessable(emulator: Emulator) -> None:
    with api(emulator) as client:
        first = client.post("/video/queue", json=private_body()).json()["download_url"]
        second = client.post("/video/queue", json=private_body()).json()["download_url"]
    assert first != second
    assert len(first.rsplit("/", 1)[1]) >= 32


def test_chunked_request_bodies_are_read(emulator: Emulator) -> None:
    payload = b'{"model": "%s", "duration": "5s"}' % T2V.encode()

    def body() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    with api(emulator) as client:
        response = client.post(
            "/video/quote", content=body(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200
    assert response.json()["quote"] > 0


def test_keep_alive_serves_many_requests_on_one_connection(emulator: Emulator) -> None:
    with api(emulator) as client:
        for _ in range(5):
            assert client.post("/video/quote", json=queue_body()).status_code == 200
        # Still one pooled connection: the server kept it open between answers.
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1
