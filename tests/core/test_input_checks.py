"""Bad input gets a clear error and costs nothing; good input still passes.

The bad inputs live in validation_cases.py (shared with the emulator's tests).
Each is refused by the client-side checks: without any network at all
(`build_queue_request` + `validate_request`), and through both clients against
the emulator, where the ledger shows that only the free model list was read.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from core_support import Venice
from pydantic import ValidationError
from validation_cases import (
    IMAGE_MODEL,
    MIME_TYPES,
    SCRIPT,
    BadInput,
    bad_inputs,
    base_fields,
    data_url,
    fields_with,
    real,
    real_media,
)

from prefect_venice import InvalidRequestError, QueueRequest, VideoModel
from prefect_venice.emulator import Emulator
from prefect_venice.emulator.catalog import MODELS_BY_ID
from prefect_venice.errors import InputMediaError
from prefect_venice.media import media_url_problem, sniff_mime_type, to_data_url
from prefect_venice.validation import (
    build_queue_request,
    build_quote_request,
    describe_validation_error,
    input_problems,
    validate_request,
)

CASES = bad_inputs()
MODEL = VideoModel.model_validate(MODELS_BY_ID[IMAGE_MODEL].to_json())


def _parses(case: BadInput) -> bool:
    try:
        QueueRequest.model_validate(fields_with(case.overrides))
    except ValidationError:
        return False
    return True


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


def assert_clear(message: str, case: BadInput) -> None:
    """The message names the problem, says nothing was sent, and shows no data: payload."""
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert "nothing was sent" in message
    for text in _strings(case.overrides):
        if text.startswith("data:") and len(text.partition(",")[2]) > 12:
            assert text.partition(",")[2] not in message
    assert len(message) < 2500, message


def test_there_are_at_least_forty_distinct_bad_inputs() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    assert len({repr(case.overrides) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_without_any_network(case: BadInput) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        request = build_queue_request(**fields_with(case.overrides))
        validate_request(request, MODEL)
    assert_clear(str(caught.value), case)


PARSED = [case for case in CASES if _parses(case)]


@pytest.mark.parametrize("case", PARSED, ids=[case.id for case in PARSED])
def test_validate_request_refuses_what_pydantic_lets_through(case: BadInput) -> None:
    request = QueueRequest.model_validate(fields_with(case.overrides))
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, MODEL)
    assert_clear(str(caught.value), case)


async def test_bad_inputs_never_reach_the_paid_call(venice: Venice, emulator: Emulator) -> None:
    """Both clients refuse every bad input; the emulator saw only the free model list."""
    for case in CASES:
        fields = fields_with(case.overrides)
        with pytest.raises(InvalidRequestError) as caught:
            if _parses(case):
                await venice.queue(QueueRequest.model_validate(fields))
            else:
                build_queue_request(**fields)
        assert_clear(str(caught.value), case)
    ledger = emulator.ledger()
    assert ledger["calls"] == {"models": 1}
    assert ledger["charged_usd_total"] == 0


async def test_a_bad_video_url_is_refused_before_a_quote(
    venice: Venice, emulator: Emulator
) -> None:
    request = build_quote_request(model=IMAGE_MODEL, duration="5s", resolution="720p")
    bad = request.model_copy(update={"video_url": real("gif")})
    with pytest.raises(InvalidRequestError, match=r"video_url.*image/gif.*not a video"):
        await venice.quote(bad)
    assert emulator.ledger()["calls"] == {"models": 1}


def test_every_problem_of_a_request_is_listed_at_once() -> None:
    fields = fields_with(
        {
            "prompt": "a\x00b",
            "image_url": "http://",
            "audio_url": real("png"),
            "reference_video_urls": ["ftp://x/y.mp4"],
        }
    )
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(QueueRequest.model_validate(fields), MODEL)
    message = str(caught.value)
    assert message.startswith(f"Request for {IMAGE_MODEL} is not valid: ")
    for name in ("prompt:", "image_url:", "audio_url:", "reference_video_urls[0]:"):
        assert name in message


def test_pydantic_problems_and_input_problems_come_together() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build_queue_request(**fields_with({"prompt": "x" * 20_001, "image_url": "ftp://x/a.png"}))
    message = str(caught.value)
    assert "prompt: 20001 characters; at most 20000 are allowed." in message
    assert "image_url: 'ftp://x/a.png' uses the ftp: scheme" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_describe_validation_error_names_each_field_plainly() -> None:
    with pytest.raises(ValidationError) as caught:
        QueueRequest.model_validate(
            {
                "model": IMAGE_MODEL,
                "prompt": "x" * 20_001,
                "duration": 5,
                "keyframes": [{"image_url": "https://example.com/a.png", "frame_index": -2}],
                "elements": [{"frontal_image": "https://example.com/a.png"}],
                "consents": {"seedance": {"confirmed_legal_right": False}},
            }
        )
    message = describe_validation_error(caught.value)
    assert message.startswith("The request is not valid: ")
    assert "prompt: 20001 characters; at most 20000 are allowed." in message
    assert "duration: must be a string (got a number)." in message
    assert "keyframes[0].frame_index: must be at least 0 (got -2)." in message
    assert "elements[0].frontal_image: is not a field of VideoElement; did you mean" in message
    assert "consents.seedance.confirmed_terms_and_privacy: is required." in message
    assert "consents.seedance.confirmed_legal_right: False is not allowed" in message
    assert "x" * 50 not in message  # long inputs are never echoed


def test_describe_validation_error_hides_a_data_url_payload() -> None:
    payload = base64.b64encode(b"secret pixels " * 100).decode()
    with pytest.raises(ValidationError) as caught:
        QueueRequest.model_validate(
            {
                "model": "m",
                "prompt": "p",
                "duration": "5s",
                "upscale_factor": f"data:x;base64,{payload}",
            }
        )
    message = describe_validation_error(caught.value)
    assert f"upscale_factor: 'data:x;base64,...' ({len(payload)} characters of data)" in message
    assert payload[:20] not in message


def test_quote_requests_are_built_and_checked_too() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build_quote_request(model=IMAGE_MODEL, duration="5s", prompt="A cat", video_url="http://")
    message = str(caught.value)
    assert "prompt: is not a field of QuoteRequest" in message
    assert "video_url: 'http://' has no host" in message


# Good inputs still pass ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["png", "jpeg", "webp", "gif"])
def test_real_images_pass_as_files_bytes_and_data_urls(tmp_path: Path, name: str) -> None:
    content = real_media()[name]
    path = tmp_path / f"picture.{name}"
    path.write_bytes(content)
    expected = data_url(MIME_TYPES[name], content)
    assert to_data_url(path) == expected
    assert to_data_url(content) == expected
    request = build_queue_request(**fields_with({"image_url": expected, "end_image_url": expected}))
    validate_request(request, MODEL)
    assert input_problems(request) == []


@pytest.mark.parametrize("name", ["wav", "mp3", "mp3-frames", "mp4", "mov", "webm"])
def test_real_sounds_and_videos_pass(tmp_path: Path, name: str) -> None:
    kind: Any = MIME_TYPES[name].split("/")[0]
    content = real_media()[name]
    path = tmp_path / "media.bin"  # the name says nothing: the content proves the type
    path.write_bytes(content)
    url = to_data_url(path, kind)
    assert url == data_url(MIME_TYPES[name], content)
    field = "audio_url" if kind == "audio" else "video_url"
    validate_request(build_queue_request(**fields_with({field: url})), MODEL)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "http://example.com/cat.png",
        "HTTPS://Example.COM/Cat.PNG",
        "https://cdn.example.com:8443/a/b/cat.png?X-Amz-Signature=abc&size=2",
        "https://[2001:db8::1]/cat.png",
        "https://user@example.com/cat.png",
        "https://bücher.example/katze.png",
        "https://example.com/my%20cat.png",
        "https://localhost/cat.png#frag",
    ],
)
def test_https_urls_pass(url: str) -> None:
    for kind in ("image", "audio", "video"):
        assert media_url_problem(url, kind) is None
    assert to_data_url(url) == url
    validate_request(build_queue_request(**fields_with({"image_url": url})), MODEL)


def test_a_full_request_with_every_media_field_passes() -> None:
    png, jpeg = real("png"), real("jpeg")
    request = build_queue_request(
        **fields_with(
            {
                "prompt": "Line one\nline two\twith a tab\r\nand a CRLF, café, 猫, 🐈",
                "negative_prompt": "",
                "end_image_url": real("webp"),
                "audio_url": real("mp3"),
                "video_url": real("mov", "video/mp4"),  # MP4 and MOV share a container
                "reference_image_urls": [png, "https://example.com/r.png"],
                "reference_audio_urls": [real("wav", "audio/x-wav")],
                "reference_video_urls": [real("webm")],
                "reference_document_urls": [data_url("application/pdf", b"%PDF-1.4\n")],
                "scene_image_urls": [real("gif")],
                "elements": [{"frontal_image_url": jpeg, "reference_image_urls": [png]}],
                "keyframes": [
                    {"image_url": png, "frame_index": 0},
                    {"image_url": jpeg, "frame_index": 120},
                ],
            }
        )
    )
    validate_request(request, MODEL)


async def test_a_good_request_is_queued(venice: Venice, emulator: Emulator) -> None:
    fields = base_fields()
    fields.update(audio_url=real("wav"), reference_image_urls=[real("jpeg"), real("webp")])
    job = await venice.queue(build_queue_request(**fields))
    assert job.queue_id
    assert emulator.ledger()["calls"]["queue"] == 1


# Local files: the content proves the type ------------------------------------------------


def test_a_script_named_like_a_png_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "x.png"
    script.write_bytes(SCRIPT)
    with pytest.raises(InputMediaError) as caught:
        to_data_url(script)
    message = str(caught.value)
    assert "'x.png' is named like image/png" in message
    assert "a name is not enough" in message
    assert "#!/bin/s" in message
    assert "image/png, image/jpeg, image/webp, image/gif" in message


def test_a_misnamed_real_image_passes_by_its_content(tmp_path: Path) -> None:
    picture = tmp_path / "notes.txt"
    picture.write_bytes(real_media()["webp"])
    assert to_data_url(picture).startswith("data:image/webp;base64,")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("http://", "has no host"),
        ("https://exa mple.com/a.png", "a space"),
        ("ftp://example.com/a.png", "ftp: scheme"),
        ("javascript:alert(1)", "javascript: scheme"),
        ("data:text/plain;base64,aGVsbG8=", "not an image"),
        ("data:image/png;base64,%%%%", "not valid base64"),
    ],
)
def test_to_data_url_refuses_a_bad_url(source: str, fragment: str) -> None:
    with pytest.raises(InputMediaError, match=re.escape(fragment)):
        to_data_url(source)


def test_to_data_url_names_the_forms_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputMediaError, match=r"does not exist.*http\(s\) URL with a host"):
        to_data_url(tmp_path / "nope.png")


def test_a_huge_data_url_is_sniffed_from_its_first_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[int] = []
    real_decode = base64.b64decode

    def spy(data: Any, *args: Any, **kwargs: Any) -> bytes:
        decoded.append(len(data))
        return real_decode(data, *args, **kwargs)

    monkeypatch.setattr(base64, "b64decode", spy)
    big = data_url("image/png", real_media()["png"] + bytes(6_000_000))
    assert media_url_problem(big, "image") is None
    assert decoded and max(decoded) <= 64
    problem = media_url_problem(data_url("text/plain", bytes(6_000_000)), "image")
    assert problem is not None and len(problem) < 400


def test_sniffing_does_not_mistake_lookalikes() -> None:
    assert sniff_mime_type(b"\xff\xf1\x50\x80") is None  # ADTS AAC, not MP3
    assert sniff_mime_type(b"\x00\x00\x00\x1cftypavif") == "image/avif"
    assert sniff_mime_type(b"\x00\x00\x00\x1cftypM4A ") == "audio/mp4"
    assert sniff_mime_type(b"%PDF-1.7") == "application/pdf"
