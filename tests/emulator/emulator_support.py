"""Helpers shared by the emulator's tests: raw httpx calls, no client code."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from prefect_venice.emulator import Emulator
from prefect_venice.emulator import service as emulator_service

#: The type of the `emulator_factory` fixture from tests/conftest.py.
EmulatorFactory = Callable[..., Emulator]

T2V = "wan-2.5-preview-text-to-video"
I2V = "wan-2.5-preview-image-to-video"
NO_AUDIO = "kling-2.5-turbo-pro-text-to-video"
SHORT_PROMPT = "veo3-fast-text-to-video"
PRIVATE = "grok-imagine-text-to-video-private"
PRIVATE_I2V = "grok-imagine-image-to-video-private"
SEEDANCE = "seedance-2-0-text-to-video-basic"
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
CONSENTS = {
    "seedance": {
        "confirmed_terms_and_privacy": True,
        "confirmed_legal_right": True,
        "confirmed_screening_acknowledged": True,
    }
}


class FrozenClock:
    """The emulator service's `time` module, with a monotonic clock that moves only when told.

    Jobs, windows and lockouts then start, run and end by the test's steps, not by how
    fast the machine answers (the test scale makes a 120 s job about 0.5 real seconds).
    `time()` stays the real wall clock, as the request log and the headers need it.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds


def freeze_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Give the emulator service a `FrozenClock` until the test ends."""
    frozen = FrozenClock()
    monkeypatch.setattr(emulator_service, "time", frozen)
    return frozen


def api(emulator: Emulator, key: str | None = None) -> httpx.Client:
    """An httpx client on the API origin, authorised with the emulator's key (or `key`)."""
    return httpx.Client(
        base_url=emulator.base_url,
        headers={"Authorization": f"Bearer {key or emulator.api_key}"},
        timeout=10,
    )


def queue_body(**overrides: Any) -> dict[str, Any]:
    """A valid queue body for the text-to-video model, with `overrides` applied."""
    body: dict[str, Any] = {
        "model": T2V,
        "prompt": "A gondola gliding through Venice canals at sunset",
        "duration": "5s",
        "resolution": "480p",
        "aspect_ratio": "16:9",
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def private_body(**overrides: Any) -> dict[str, Any]:
    """A valid queue body for the private Grok model."""
    return queue_body(model=PRIVATE, duration="6s", **overrides)


def ref(job: dict[str, Any]) -> dict[str, Any]:
    """The retrieve/complete body of a queued job."""
    return {"model": job["model"], "queue_id": job["queue_id"]}


def queue(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """Queue a job and return its answer; fails the test unless the answer is 200."""
    response = client.post("/video/queue", json=queue_body(**overrides))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def wait_until_done(client: httpx.Client, job: dict[str, Any], **extra: Any) -> httpx.Response:
    """Poll retrieve until the answer is no longer PROCESSING; return that answer."""
    for _ in range(400):
        response = client.post("/video/retrieve", json={**ref(job), **extra})
        is_json = response.headers["content-type"].startswith("application/json")
        if not (is_json and response.json().get("status") == "PROCESSING"):
            return response
        time.sleep(0.02)
    raise AssertionError("the job never finished")
