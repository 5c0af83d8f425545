"""Checks of quote, queue, retrieve and complete bodies against the emulated model catalog."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .catalog import MODELS_BY_ID, VideoModel

# swagger QueueVideoRequest: image_url "Must be a URL (http/https) or a data URL
# (data:image/...)"; audio_url "Supported: WAV, MP3"; video_url "Supported: MP4,
# MOV, WebM". The end image is an image too. The type a data: URL declares must
# be of the field's kind; the API reads base64 data: URLs (shared README).
# video_url is checked with the pricing fields: /video/quote takes it too.
_MEDIA_FIELDS = {"image_url": "image", "end_image_url": "image", "audio_url": "audio"}
# Each item "must be a URL or data URL", with swagger's maxItems.
_MEDIA_LISTS = {
    "reference_image_urls": 30,
    "reference_video_urls": 10,
    "reference_audio_urls": 10,
    "reference_document_urls": 1,
    "scene_image_urls": 4,
}
_MAX_ELEMENTS = 4
_MAX_ELEMENT_REFERENCES = 3
_MAX_KEYFRAMES = 10
_FRAMES_PER_SECOND = 24
_DATA_URL = re.compile(
    r"data:(?P<type>[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)(;[^,;]*)*;base64,(?P<data>.*)",
    re.IGNORECASE | re.DOTALL,
)
_BASE64_DATA = re.compile(r"[A-Za-z0-9+/]+={0,2}")


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
    # Quote and queue both take video_url: "Supported: MP4, MOV, WebM".
    if body.get("video_url") is not None:
        _check_media("video_url", body["video_url"], "video")
    return Generation(
        model=model,
        duration=duration,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        audio=audio,
        seconds=int(duration.rstrip("s")),
    )


def _is_http_url(value: str) -> bool:
    """Tell whether `value` is an http(s) URL with a host, free of spaces and control characters."""
    if not value[:8].lower().startswith(("http://", "https://")):
        return False
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(host)


def _data_url_type(value: str) -> str | None:
    """Return the media type of a well-formed base64 data: URL, or None."""
    match = _DATA_URL.fullmatch(value)
    if match is None or not _BASE64_DATA.fullmatch(match.group("data")):
        return None
    return match.group("type").lower()


def _check_media(name: str, value: object, kind: str | None, *, field: str | None = None) -> None:
    """Refuse `value` unless it is an http(s) URL or a base64 data: URL of `kind` (None: any)."""
    if not isinstance(value, str):
        raise RequestInvalid(f"{name} must be a string", field or name)
    if _is_http_url(value):
        return
    declared = _data_url_type(value)
    if declared is not None and (kind is None or declared.startswith(f"{kind}/")):
        return
    form = f"a base64 data: URL of {'a' if kind == 'video' else 'an'} {kind} (data:{kind}/...)"
    raise RequestInvalid(
        f"{name} must be an http(s) URL with a host or {form if kind else 'a base64 data: URL'}",
        field or name,
    )


def _list_of(body: dict[str, Any], name: str, limit: int, field: str | None = None) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestInvalid(f"{name} must be an array", field or name)
    if len(value) > limit:
        raise RequestInvalid(
            f"{name} has {len(value)} items; at most {limit} are allowed", field or name
        )
    return value


def _check_input_media(body: dict[str, Any], seconds: int) -> None:
    """Check every input media field of a queue body against swagger's QueueVideoRequest."""
    for name, kind in _MEDIA_FIELDS.items():
        if body.get(name) is not None:
            _check_media(name, body[name], kind)
    for name, limit in _MEDIA_LISTS.items():
        for index, item in enumerate(_list_of(body, name, limit)):
            _check_media(f"{name}[{index}]", item, None, field=name)
    for index, element in enumerate(_list_of(body, "elements", _MAX_ELEMENTS)):
        if not isinstance(element, dict):
            raise RequestInvalid(f"elements[{index}] must be an object", "elements")
        label = f"elements[{index}]"
        for name in ("frontal_image_url", "video_url"):
            if element.get(name) is not None:
                _check_media(f"{label}.{name}", element[name], None, field="elements")
        references = _list_of(
            element, "reference_image_urls", _MAX_ELEMENT_REFERENCES, field="elements"
        )
        for number, item in enumerate(references):
            _check_media(f"{label}.reference_image_urls[{number}]", item, None, field="elements")
    seen: set[int] = set()
    last_frame = seconds * _FRAMES_PER_SECOND
    for index, keyframe in enumerate(_list_of(body, "keyframes", _MAX_KEYFRAMES)):
        label = f"keyframes[{index}]"
        if not isinstance(keyframe, dict):
            raise RequestInvalid(f"{label} must be an object", "keyframes")
        _check_media(f"{label}.image_url", keyframe.get("image_url"), None, field="keyframes")
        frame = keyframe.get("frame_index")
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise RequestInvalid(f"{label}.frame_index must be an integer >= 0", "keyframes")
        if frame > last_frame or frame in seen:
            raise RequestInvalid(
                f"{label}.frame_index {frame} must be unique and at most {last_frame} "
                f"(duration x {_FRAMES_PER_SECOND})",
                "keyframes",
            )
        seen.add(frame)


def check_queue(body: dict[str, Any]) -> Generation:
    """Check a `/video/queue` body: the pricing fields plus prompt and input media."""
    generation = check_generation(body, for_queue=True)
    model = generation.model
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestInvalid("prompt is required (a non-empty string)", "prompt")
    if not prompt.strip():
        raise RequestInvalid("prompt is blank (only whitespace); describe the video", "prompt")
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
    _check_input_media(body, generation.seconds)
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
