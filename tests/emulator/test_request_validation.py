"""The emulator refuses, with a free 400 in swagger's error shape, what the spec refuses.

The bad inputs are the client's (tests/core/validation_cases.py), sent as raw
JSON with no client code in between; the emulator reads the spec on its own
and is strict where the spec is explicit (`image_url` is an http(s) URL or a
`data:image/...` URL, and so on). Content sniffing is the client's job.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from emulator_support import api

from prefect_venice.emulator import Emulator

_CASES_FILE = Path(__file__).resolve().parents[1] / "core" / "validation_cases.py"
# The repository's copy of the vendor's spec (source and date: tests/spec/README.md).
SWAGGER = Path(__file__).resolve().parents[1] / "spec" / "swagger.yaml"


def _load_cases() -> ModuleType:
    """Import tests/core/validation_cases.py (test folders are not packages)."""
    loaded = sys.modules.get("validation_cases")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("validation_cases", _CASES_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["validation_cases"] = module
    spec.loader.exec_module(module)
    return module


cases = _load_cases()
REFUSED: list[Any] = [case for case in cases.bad_inputs() if case.emulator]
CLIENT_ONLY: list[Any] = [case for case in cases.bad_inputs() if not case.emulator]


@pytest.fixture(scope="module")
def error_schema() -> dict[str, Any]:
    """Swagger's 400 schema for /video/queue and /video/quote (the same DetailedError)."""
    with SWAGGER.open(encoding="utf-8") as handle:
        # BaseLoader: YAML 1.1 would read an unquoted 16:9 as a number.
        swagger: dict[str, Any] = yaml.load(handle, Loader=yaml.BaseLoader)
    schemas = []
    for path in ("/video/queue", "/video/quote"):
        answer = swagger["paths"][path]["post"]["responses"]["400"]
        schemas.append(answer["content"]["application/json"]["schema"])
    assert schemas[0] == schemas[1]
    return {**schemas[0], "components": swagger["components"]}


def post(emulator: Emulator, path: str, body: dict[str, Any]) -> httpx.Response:
    with api(emulator) as client:
        return client.post(path, json=body)


def top_field(case: Any) -> str:
    return str(next(iter(case.overrides)))


def test_most_bad_inputs_are_refused_by_the_emulator_too() -> None:
    assert len(REFUSED) >= 40


@pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
def test_queue_refuses_a_bad_input_with_a_free_400(
    emulator: Emulator, error_schema: dict[str, Any], case: Any
) -> None:
    response = post(emulator, "/video/queue", cases.fields_with(case.overrides))
    assert response.status_code == 400, response.text
    error = response.json()
    jsonschema.Draft4Validator(error_schema).validate(error)
    field = top_field(case)
    assert field in error["error"]
    assert error["details"][field]["_errors"] == [error["error"]]
    ledger = emulator.ledger()
    assert ledger["charged_usd_total"] == 0
    assert ledger["jobs"] == {}
    assert ledger["balance_usd"] == 100


def test_the_media_messages_name_the_expected_form(emulator: Emulator) -> None:
    url = "an http(s) URL with a host or a base64 data: URL"
    expected = {
        "image_url": f"{url} of an image (data:image/...)",
        "audio_url": f"{url} of an audio (data:audio/...)",
        "video_url": f"{url} of a video (data:video/...)",
        "reference_video_urls[0]": url,
    }
    bad = {
        "image_url": "http://",
        "audio_url": "data:image/png;base64,iVBORw0KGgo=",
        "video_url": "ftp://example.com/clip.mp4",
        "reference_video_urls": ["javascript:void(0)"],
    }
    for (label, form), (name, value) in zip(expected.items(), bad.items(), strict=True):
        response = post(emulator, "/video/queue", cases.fields_with({name: value}))
        assert response.json()["error"] == f"{label} must be {form}"


def test_a_blank_prompt_is_refused(emulator: Emulator) -> None:
    response = post(emulator, "/video/queue", cases.fields_with({"prompt": "\n \t"}))
    assert response.status_code == 400
    assert response.json()["error"] == "prompt is blank (only whitespace); describe the video"


@pytest.mark.parametrize(
    ("video_url", "status"),
    [
        ("data:image/gif;base64,R0lGODlh", 400),
        ("http://", 400),
        ("https://exa mple.com/clip.mp4", 400),
        ("data:video/mp4;base64,AAAAGGZ0eXBpc29t", 200),
        ("https://example.com/clip.mp4", 200),
    ],
)
def test_quote_checks_video_url(
    emulator: Emulator, error_schema: dict[str, Any], video_url: str, status: int
) -> None:
    body = {"model": cases.IMAGE_MODEL, "duration": "5s", "video_url": video_url}
    response = post(emulator, "/video/quote", body)
    assert response.status_code == status, response.text
    if status == 400:
        jsonschema.Draft4Validator(error_schema).validate(response.json())
        assert response.json()["details"]["video_url"]["_errors"]
    assert emulator.ledger()["charged_usd_total"] == 0


def test_good_inputs_are_queued(emulator: Emulator) -> None:
    real = cases.real
    body = cases.fields_with(
        {
            "end_image_url": real("webp"),
            "audio_url": real("mp3"),
            "video_url": real("mov"),
            "reference_image_urls": [real("jpeg"), "https://example.com/r.png"],
            "reference_audio_urls": [real("wav")],
            "reference_video_urls": [real("webm")],
            "reference_document_urls": ["https://example.com/brief.pdf"],
            "scene_image_urls": [real("gif")],
            "elements": [{"frontal_image_url": real("png"), "reference_image_urls": []}],
            "keyframes": [{"image_url": real("png"), "frame_index": 120}],
        }
    )
    response = post(emulator, "/video/queue", body)
    assert response.status_code == 200, response.text
    assert emulator.ledger()["charged_usd_total"] > 0


def test_content_is_not_sniffed_by_the_emulator(emulator: Emulator) -> None:
    """A well-formed data:image/png URL holding a script passes here: only the client stops it."""
    script = cases.data_url("image/png", cases.SCRIPT)
    response = post(emulator, "/video/queue", cases.fields_with({"image_url": script}))
    assert response.status_code == 200
