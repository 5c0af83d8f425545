"""Bad requests fail before any paid call, naming the allowed values."""

from __future__ import annotations

import pytest
from core_support import Venice
from test_client_endpoints import TEXT_MODEL, public_request

from prefect_venice import InvalidRequestError, QueueRequest, QuoteRequest, UnknownModelError
from prefect_venice.emulator import Emulator


async def assert_rejected(
    venice: Venice, emulator: Emulator, request: QueueRequest, *fragments: str
) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        await venice.queue(request)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "nothing was sent" in str(caught.value)
    assert emulator.ledger()["calls"] == {"models": 1}
    return caught.value


async def test_duration_outside_the_model_list(venice: Venice, emulator: Emulator) -> None:
    await assert_rejected(
        venice, emulator, public_request(duration="7s"), "duration", "'7s'", "'5s', '10s'"
    )


async def test_resolution_outside_the_model_list(venice: Venice, emulator: Emulator) -> None:
    await assert_rejected(
        venice, emulator, public_request(resolution="4k"), "resolution", "'720p'", "'1080p'"
    )


async def test_aspect_ratio_outside_the_model_list(venice: Venice, emulator: Emulator) -> None:
    await assert_rejected(
        venice, emulator, public_request(aspect_ratio="2:1"), "aspect_ratio", "'16:9'"
    )


async def test_aspect_ratio_missing_where_the_model_lists_them(
    venice: Venice, emulator: Emulator
) -> None:
    await assert_rejected(
        venice, emulator, public_request(aspect_ratio=None), "aspect_ratio", "needs one", "'9:16'"
    )


async def test_aspect_ratio_given_where_the_model_takes_none(
    venice: Venice, emulator: Emulator
) -> None:
    request = QueueRequest(
        model="wan-2.5-preview-image-to-video",
        prompt="Zoom in",
        duration="5s",
        aspect_ratio="16:9",
        image_url="https://example.com/a.png",
    )
    await assert_rejected(venice, emulator, request, "takes no aspect_ratio", "omit it")


async def test_audio_on_a_model_without_audio_configuration(
    venice: Venice, emulator: Emulator
) -> None:
    request = QueueRequest(
        model="grok-imagine-text-to-video-private",
        prompt="Rain",
        duration="6s",
        aspect_ratio="16:9",
        audio=False,
    )
    await assert_rejected(venice, emulator, request, "audio", "omit it")


async def test_audio_is_accepted_where_configurable(venice: Venice) -> None:
    model = await venice.validate(public_request(audio=False))
    assert model.constraints is not None and model.constraints.audio_configurable


async def test_prompt_longer_than_the_model_limit(venice: Venice, emulator: Emulator) -> None:
    await assert_rejected(
        venice, emulator, public_request(prompt="x" * 2501), "prompt", "2501", "at most 2500"
    )


async def test_image_to_video_needs_an_image(venice: Venice, emulator: Emulator) -> None:
    request = QueueRequest(model="wan-2.5-preview-image-to-video", prompt="Zoom", duration="5s")
    await assert_rejected(venice, emulator, request, "image_url", "needs an image_url")


async def test_image_must_be_a_url_or_data_url(venice: Venice, emulator: Emulator) -> None:
    request = QueueRequest(
        model="wan-2.5-preview-image-to-video",
        prompt="Zoom",
        duration="5s",
        image_url="/home/me/cat.png",
    )
    await assert_rejected(venice, emulator, request, "image_url", "to_data_url")


async def test_every_problem_is_listed_at_once(venice: Venice, emulator: Emulator) -> None:
    error = await assert_rejected(
        venice, emulator, public_request(duration="7s", resolution="4k"), "duration", "resolution"
    )
    assert error.status is None


async def test_unknown_model_names_close_matches(venice: Venice, emulator: Emulator) -> None:
    with pytest.raises(UnknownModelError) as caught:
        await venice.queue(public_request(model="wan-2.5-preview-text2video"))
    assert TEXT_MODEL in str(caught.value)
    assert emulator.ledger()["calls"] == {"models": 1}


async def test_quote_is_validated_too(venice: Venice, emulator: Emulator) -> None:
    with pytest.raises(InvalidRequestError, match="'5s', '10s'"):
        await venice.quote(QuoteRequest(model=TEXT_MODEL, duration="7s"))
    assert emulator.ledger()["calls"] == {"models": 1}


def test_unknown_request_fields_are_refused_locally() -> None:
    with pytest.raises(ValueError, match="durration"):
        QueueRequest.model_validate(
            {"model": TEXT_MODEL, "prompt": "x", "duration": "5s", "durration": "5s"}
        )
