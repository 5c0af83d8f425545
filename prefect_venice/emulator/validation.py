"""Checks of quote, queue, retrieve and complete bodies against the emulated model catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import MODELS_BY_ID, VideoModel

_MEDIA_FIELDS = ("image_url", "end_image_url", "audio_url", "video_url")


class RequestInvalid(Exception):
    """A 400 answer: `message` says what is wrong and names the allowed values."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        """Return the `DetailedError` body of the answer."""
        details: dict[str, Any] = {"_errors": [] if self.field else [self.message]}
        if self.field:
            details[self.field] = {"_errors": [self.message]}
        return {"error": self.message, "details": details}


@dataclass(frozen=True)
class Generation:
    """A checked quote or queue request, with defaults filled in."""

    model: VideoModel
    duration: str
    resolution: str | None
    aspect_ratio: str | None
    audio: bool
    seconds: int


def _allowed(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestInvalid(f"{name} must be a string", name)
    return value


def check_generation(body: dict[str, Any], *, for_queue: bool) -> Generation:
    """Check the pricing fields of quote and queue; raise `RequestInvalid` on the first fault."""
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise RequestInvalid("model is required", "model")
    model = MODELS_BY_ID.get(model_id)
    if model is None:
        raise RequestInvalid(
            f"Unknown video model '{model_id}'. Video models: {_allowed(tuple(MODELS_BY_ID))}",
            "model",
        )
    duration = _optional_str(body, "duration")
    if duration is None:
        raise RequestInvalid(
            f"duration is required; {model.id} allows {_allowed(model.durations)}", "duration"
        )
    if duration not in model.durations:
        raise RequestInvalid(
            f"duration '{duration}' is not supported by {model.id}; "
            f"allowed: {_allowed(model.durations)}",
            "duration",
        )
    resolution = _optional_str(body, "resolution")
    if resolution is not None and resolution not in model.resolutions:
        allowed = _allowed(model.resolutions) if model.resolutions else "none (omit resolution)"
        raise RequestInvalid(
            f"resolution '{resolution}' is not supported by {model.id}; allowed: {allowed}",
            "resolution",
        )
    if resolution is None and model.resolutions:
        resolution = "720p" if "720p" in model.resolutions else model.resolutions[0]
    aspect_ratio = _optional_str(body, "aspect_ratio")
    if aspect_ratio is not None and not model.aspect_ratios:
        raise RequestInvalid(f"{model.id} does not take an aspect_ratio; omit it", "aspect_ratio")
    if aspect_ratio is not None and aspect_ratio not in model.aspect_ratios:
        raise RequestInvalid(
            f"aspect_ratio '{aspect_ratio}' is not supported by {model.id}; "
            f"allowed: {_allowed(model.aspect_ratios)}",
            "aspect_ratio",
        )
    if aspect_ratio is None and model.aspect_ratios:
        if for_queue:
            raise RequestInvalid(
                f"aspect_ratio is required for {model.id}; "
                f"allowed: {_allowed(model.aspect_ratios)}",
                "aspect_ratio",
            )
        aspect_ratio = model.aspect_ratios[0]
    audio_value = body.get("audio")
    if audio_value is not None:
        if not isinstance(audio_value, bool):
            raise RequestInvalid("audio must be a boolean", "audio")
        if not model.audio_configurable:
            raise RequestInvalid(
                f"{model.id} does not allow setting audio; omit the audio field", "audio"
            )
    audio = model.audio and (audio_value is not False)
    return Generation(
        model=model,
        duration=duration,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        audio=audio,
        seconds=int(duration.rstrip("s")),
    )


def _is_media_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) or (value.startswith("data:") and "," in value)


def check_queue(body: dict[str, Any]) -> Generation:
    """Check a `/video/queue` body: the pricing fields plus prompt and input media."""
    generation = check_generation(body, for_queue=True)
    model = generation.model
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestInvalid("prompt is required (a non-empty string)", "prompt")
    if len(prompt) > model.prompt_limit:
        raise RequestInvalid(
            f"prompt is {len(prompt)} characters; {model.id} allows at most {model.prompt_limit}",
            "prompt",
        )
    negative = _optional_str(body, "negative_prompt")
    if negative is not None and len(negative) > model.prompt_limit:
        raise RequestInvalid(
            f"negative_prompt allows at most {model.prompt_limit} characters", "negative_prompt"
        )
    for name in _MEDIA_FIELDS:
        value = _optional_str(body, name)
        if value is not None and not _is_media_url(value):
            raise RequestInvalid(f"{name} must be an http(s) URL or a data: URL", name)
    image_url = body.get("image_url")
    if model.model_type == "image-to-video" and image_url is None:
        raise RequestInvalid(f"image_url is required for {model.id} (image-to-video)", "image_url")
    if model.model_type == "text-to-video" and image_url is not None:
        raise RequestInvalid(f"{model.id} is text-to-video and takes no image_url", "image_url")
    return generation


def has_consent(body: dict[str, Any], flow: str) -> bool:
    """Tell whether `consents.<flow>` confirms all three attestations."""
    consents = body.get("consents")
    if not isinstance(consents, dict):
        return False
    given = consents.get(flow)
    if not isinstance(given, dict):
        return False
    keys = (
        "confirmed_terms_and_privacy",
        "confirmed_legal_right",
        "confirmed_screening_acknowledged",
    )
    return all(given.get(key) is True for key in keys)


@dataclass(frozen=True)
class JobRef:
    """A checked retrieve or complete body."""

    model: str
    queue_id: str
    delete_media_on_completion: bool


def check_job_ref(body: dict[str, Any], *, allow_delete_flag: bool) -> JobRef:
    """Check a retrieve/complete body; both schemas forbid unknown fields."""
    allowed = {"model", "queue_id"} | (
        {"delete_media_on_completion"} if allow_delete_flag else set()
    )
    extra = sorted(set(body) - allowed)
    if extra:
        raise RequestInvalid(
            f"Unrecognized field(s): {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}"
        )
    model = body.get("model")
    queue_id = body.get("queue_id")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("model is required", "model")
    if not isinstance(queue_id, str) or not queue_id:
        raise RequestInvalid("queue_id is required", "queue_id")
    delete = body.get("delete_media_on_completion", False)
    if not isinstance(delete, bool):
        raise RequestInvalid(
            "delete_media_on_completion must be a boolean", "delete_media_on_completion"
        )
    return JobRef(model=model, queue_id=queue_id, delete_media_on_completion=delete)
