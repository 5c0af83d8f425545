"""Checks a request against its model's constraints before anything is sent."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from .errors import InvalidRequestError, UnknownModelError
from .models import DEFAULT_PROMPT_CHARACTER_LIMIT, QueueRequest, QuoteRequest, VideoModel

__all__ = ["find_model", "validate_request"]

_MEDIA_PREFIXES = ("http://", "https://", "data:")


def find_model(models: Sequence[VideoModel], model_id: str) -> VideoModel:
    """Return the model with this id, or raise UnknownModelError naming the closest ids."""
    for model in models:
        if model.id == model_id:
            return model
    ids = [m.id for m in models]
    close = difflib.get_close_matches(model_id, ids, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"Unknown video model {model_id!r}.{hint} ({len(ids)} video models are listed.)"
    )


def _allowed(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _check_choice(field: str, value: str | None, allowed: list[str], model_id: str) -> str | None:
    if value is None:
        return None
    if not allowed:
        return f"{field}: model {model_id} takes no {field}; omit it (got {value!r})."
    if value not in allowed:
        return f"{field}: {value!r} is not offered by {model_id}; allowed: {_allowed(allowed)}."
    return None


def _check_media(field: str, value: str | None) -> str | None:
    if value is not None and not value.startswith(_MEDIA_PREFIXES):
        return (
            f"{field}: must be an http(s) URL or a data: URL (use prefect_venice.media.to_data_url "
            "for a local file)."
        )
    return None


def validate_request(request: QueueRequest | QuoteRequest, model: VideoModel) -> None:
    """Raise InvalidRequestError listing every field the model does not accept.

    Models without listed constraints are checked only for prompt length (the
    documented default of 2500 characters) and media URL form.
    """
    problems: list[str] = []
    c = model.constraints
    mid = model.id
    if c is not None:
        if c.durations and request.duration not in c.durations:
            problems.append(
                f"duration: {request.duration!r} is not offered by {mid}; "
                f"allowed: {_allowed(c.durations)}."
            )
        for name, value, allowed in (
            ("resolution", request.resolution, c.resolutions),
            ("aspect_ratio", request.aspect_ratio, c.aspect_ratios),
        ):
            problem = _check_choice(name, value, allowed, mid)
            if problem:
                problems.append(problem)
        if request.audio is not None and not c.audio_configurable:
            problems.append(f"audio: model {mid} does not let a request configure audio; omit it.")
    limit = c.max_prompt_characters if c is not None else DEFAULT_PROMPT_CHARACTER_LIMIT
    if isinstance(request, QueueRequest):
        for name, text in (
            ("prompt", request.prompt),
            ("negative_prompt", request.negative_prompt),
        ):
            if text is not None and len(text) > limit:
                problems.append(f"{name}: {len(text)} characters; {mid} accepts at most {limit}.")
        if c is not None and c.aspect_ratios and request.aspect_ratio is None:
            # The guide: aspect_ratio is "required for models that expose aspect-ratio options".
            problems.append(f"aspect_ratio: {mid} needs one; allowed: {_allowed(c.aspect_ratios)}.")
        if c is not None and c.model_type == "image-to-video" and not request.image_url:
            problems.append(f"image_url: {mid} is an image-to-video model and needs an image_url.")
        if c is not None and c.model_type == "text-to-video" and request.image_url:
            problems.append(f"image_url: {mid} is a text-to-video model; omit image_url.")
        for name, value in (
            ("image_url", request.image_url),
            ("end_image_url", request.end_image_url),
            ("audio_url", request.audio_url),
            ("video_url", request.video_url),
        ):
            problem = _check_media(name, value)
            if problem:
                problems.append(problem)
    if problems:
        raise InvalidRequestError(f"Request for {mid} is not valid: " + " ".join(problems))
