"""Happy paths of every emulated endpoint, spoken to with raw httpx."""

from __future__ import annotations

import time
from typing import Any

import httpx

from prefect_venice.emulator import Emulator

T2V = "wan-2.5-preview-text-to-video"
PRIVATE = "grok-imagine-text-to-video-private"


def api(emulator: Emulator) -> httpx.Client:
    return httpx.Client(
        base_url=emulator.base_url,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )


def queue_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": T2V,
        "prompt": "A gondola gliding through Venice canals at sunset",
        "duration": "5s",
        "resolution": "480p",
        "aspect_ratio": "16:9",
    }
    body.update(overrides)
    return body


def wait_until_done(client: httpx.Client, job: dict[str, Any]) -> httpx.Response:
    ref = {"model": job["model"], "queue_id": job["queue_id"]}
    for _ in range(200):
        response = client.post("/video/retrieve", json=ref)
        is_json = response.headers["content-type"].startswith("application/json")
        if not (is_json and response.json()["status"] == "PROCESSING"):
            return response
        time.sleep(0.05)
    raise AssertionError("the job never finished")


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
