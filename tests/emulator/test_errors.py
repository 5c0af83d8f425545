"""Every error status the emulated endpoints answer, and what the bodies say."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from emulator_support import (
    CONSENTS,
    I2V,
    NO_AUDIO,
    PRIVATE,
    SEEDANCE,
    SHORT_PROMPT,
    T2V,
    TINY_PNG,
    EmulatorFactory,
    api,
    freeze_clock,
    queue,
    queue_body,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator


def post(emulator: Emulator, path: str, body: dict[str, Any]) -> httpx.Response:
    with api(emulator) as client:
        return client.post(path, json=body)


@pytest.mark.parametrize(
    ("body", "field", "named"),
    [
        ({"model": "no-such-model", "duration": "5s"}, "model", T2V),
        ({"model": T2V, "duration": "7s"}, "duration", "5s, 10s"),
        ({"model": T2V}, "duration", "5s, 10s"),
        ({"model": T2V, "duration": "5s", "resolution": "4k"}, "resolution", "480p, 720p, 1080p"),
        ({"model": T2V, "duration": "5s", "aspect_ratio": "4:3"}, "aspect_ratio", "16:9"),
        ({"model": I2V, "duration": "5s", "aspect_ratio": "16:9"}, "aspect_ratio", "omit"),
        ({"model": NO_AUDIO, "duration": "5s", "audio": True}, "audio", "omit"),
        ({"model": T2V, "duration": "5s", "audio": "yes"}, "audio", "boolean"),
    ],
)
def test_quote_refuses_what_the_model_does_not_allow(
    emulator: Emulator, body: dict[str, Any], field: str, named: str
) -> None:
    response = post(emulator, "/video/quote", body)
    assert response.status_code == 400
    error = response.json()
    assert named in error["error"]
    assert error["details"][field]["_errors"] == [error["error"]]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"prompt": None}, "prompt is required"),
        ({"prompt": ""}, "prompt is required"),
        ({"prompt": "x" * 2501}, "at most 2500"),
        ({"aspect_ratio": None}, "aspect_ratio is required"),
        ({"image_url": TINY_PNG}, "takes no image_url"),
        ({"model": I2V, "aspect_ratio": None}, "image_url is required"),
        ({"model": I2V, "aspect_ratio": None, "image_url": "ftp://x/y.png"}, "data: URL"),
        ({"model": SHORT_PROMPT, "duration": "4s", "resolution": "720p"}, "at most 1000"),
    ],
)
def test_queue_refuses_invalid_requests(
    emulator: Emulator, overrides: dict[str, Any], named: str
) -> None:
    if overrides.get("model") == SHORT_PROMPT:
        overrides["prompt"] = "y" * 1001
    response = post(emulator, "/video/queue", queue_body(**overrides))
    assert response.status_code == 400
    assert named in response.json()["error"]
    assert emulator.ledger()["charged_usd_total"] == 0


def test_queue_accepts_a_prompt_at_the_model_limit(emulator: Emulator) -> None:
    body = queue_body(model=SHORT_PROMPT, duration="4s", resolution="720p", prompt="z" * 1000)
    assert post(emulator, "/video/queue", body).status_code == 200


def test_body_that_is_not_json_is_a_400(emulator: Emulator) -> None:
    with api(emulator) as client:
        response = client.post("/video/quote", content=b"{nope")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


@pytest.mark.parametrize("path", ["/video/quote", "/video/queue", "/video/retrieve"])
def test_missing_or_wrong_key_is_401(emulator: Emulator, path: str) -> None:
    without = httpx.post(f"{emulator.base_url}{path}", json=queue_body())
    with api(emulator, key="wrong-key") as client:
        wrong = client.post(path, json=queue_body())
    for response in (without, wrong):
        assert response.status_code == 401
        assert response.json()["error"]


def test_models_with_a_wrong_key_is_401(emulator: Emulator) -> None:
    with api(emulator, key="wrong-key") as client:
        assert client.get("/models").status_code == 401


def test_insufficient_balance_is_402_and_charges_nothing(emulator: Emulator) -> None:
    emulator.set_balance(0.01)
    response = post(emulator, "/video/queue", queue_body())
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "INSUFFICIENT_BALANCE"
    assert "balance" in body["error"]
    ledger = emulator.ledger()
    assert ledger["balance_usd"] == 0.01
    assert ledger["charged_usd_total"] == 0
    assert ledger["jobs"] == {}


def test_success_charges_the_quoted_price(emulator: Emulator) -> None:
    with api(emulator) as client:
        quote = client.post("/video/quote", json=queue_body()).json()["quote"]
        job = queue(client)
    ledger = emulator.ledger()
    assert ledger["jobs"][job["queue_id"]]["charged_usd"] == quote
    assert ledger["balance_usd"] == pytest.approx(100 - quote)


def test_oversized_body_is_413(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(max_body_bytes=2048)
    body = queue_body(model=I2V, aspect_ratio=None, image_url="data:image/png;base64," + "A" * 4096)
    response = post(emulator, "/video/queue", body)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert response.json()["error"]
    # The connection stays usable: the whole body was read before answering.
    assert post(emulator, "/video/quote", queue_body()).status_code == 200


def test_trigger_word_in_prompt_is_422(emulator: Emulator) -> None:
    response = post(emulator, "/video/queue", queue_body(prompt="Something Forbidden here"))
    assert response.status_code == 422
    assert "content policy" in response.json()["error"]
    assert emulator.ledger()["charged_usd_total"] == 0


def test_trigger_words_are_configurable(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(content_violation_words=("gondola",))
    assert post(emulator, "/video/queue", queue_body()).status_code == 422


def test_seedance_needs_consent(emulator: Emulator) -> None:
    body = queue_body(model=SEEDANCE)
    response = post(emulator, "/video/queue", body)
    assert response.status_code == 409
    answer = response.json()
    assert answer["error"]["code"] == "needs_consent"
    assert answer["consent_flow"] == "seedance"
    assert answer["consent"]["policy_text"]
    assert post(emulator, "/video/queue", {**body, "consents": CONSENTS}).status_code == 200


def test_seedance_consent_must_confirm_all_three(emulator: Emulator) -> None:
    partial = {"seedance": {**CONSENTS["seedance"], "confirmed_legal_right": False}}
    body = queue_body(model=SEEDANCE, consents=partial)
    assert post(emulator, "/video/queue", body).status_code == 409


def test_retrieve_unknown_id_is_404(emulator: Emulator) -> None:
    body = {"model": T2V, "queue_id": "123e4567-e89b-12d3-a456-426614174000"}
    response = post(emulator, "/video/retrieve", body)
    assert response.status_code == 404
    assert response.json()["error"]


def test_retrieve_with_another_model_is_400(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        response = client.post("/video/retrieve", json={**ref(job), "model": PRIVATE})
    assert response.status_code == 400
    assert T2V in response.json()["error"]


def test_retrieve_refuses_unknown_fields(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        response = client.post("/video/retrieve", json={**ref(job), "extra": 1})
    assert response.status_code == 400
    assert "extra" in response.json()["error"]


def test_retrieve_after_complete_is_404(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        wait_until_done(client, job)
        assert client.post("/video/complete", json=ref(job)).status_code == 200
        assert client.post("/video/retrieve", json=ref(job)).status_code == 404


def test_retrieve_after_delete_media_on_completion_is_404(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        done = wait_until_done(client, job, delete_media_on_completion=True)
        assert done.headers["content-type"] == "video/mp4"
        assert client.post("/video/retrieve", json=ref(job)).status_code == 404


def test_delete_media_on_completion_keeps_media_while_processing(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = freeze_clock(monkeypatch)
    with api(emulator) as client:
        job = queue(client)
        body = {**ref(job), "delete_media_on_completion": True}
        first = client.post("/video/retrieve", json=body)
        assert first.json()["status"] == "PROCESSING"
        clock.advance(10)  # past the end of any job at the test scale
        done = client.post("/video/retrieve", json=ref(job))
    assert done.status_code == 200
    assert done.headers["content-type"] == "video/mp4"
    assert emulator.ledger()["jobs"][job["queue_id"]]["media_deleted"] is False


def test_complete_on_a_job_already_gone_is_400(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        assert client.post("/video/complete", json=ref(job)).status_code == 200
        again = client.post("/video/complete", json=ref(job))
    assert again.status_code == 400
    assert "already gone" in again.json()["error"]


def test_unknown_path_is_404(emulator: Emulator) -> None:
    with api(emulator) as client:
        assert client.get("/video/nothing").status_code == 404
