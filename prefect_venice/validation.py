"""Checks a request before anything is sent: its form, its inputs and its model's constraints.

Three layers, each naming what was wrong and what is allowed:

- `build_queue_request` / `build_quote_request` turn keyword fields into a
  request, translating pydantic's errors (`describe_validation_error`);
- `input_problems` checks what needs no model list: prompts (not blank, no
  control characters) and input media (an http(s) URL with a host, or a
  base64 data: URL whose bytes prove a type the field takes);
- `validate_request` adds the model's constraints from `GET /models?type=video`.

Every problem of a request is collected into one `InvalidRequestError`.
"""

from __future__ import annotations

import difflib
import typing
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequestError, UnknownModelError
from .media import MediaKind, describe_media_value, media_url_problem
from .models import (
    DEFAULT_PROMPT_CHARACTER_LIMIT,
    CompleteRequest,
    QueueRequest,
    QuoteRequest,
    RetrieveRequest,
    VideoModel,
)

__all__ = [
    "build_queue_request",
    "build_quote_request",
    "describe_validation_error",
    "find_model",
    "input_problems",
    "validate_request",
]

# Which kind of media each input field takes; None: any type (documents).
_MEDIA_FIELDS: dict[str, MediaKind] = {
    "image_url": "image",
    "end_image_url": "image",
    "audio_url": "audio",
    "video_url": "video",
}
_MEDIA_LISTS: dict[str, MediaKind | None] = {
    "reference_image_urls": "image",
    "scene_image_urls": "image",
    "reference_audio_urls": "audio",
    "reference_video_urls": "video",
    "reference_document_urls": None,
}
_ELEMENT_FIELDS: dict[str, MediaKind] = {"frontal_image_url": "image", "video_url": "video"}
_TEXT_FIELDS = ("prompt", "negative_prompt")
# Newline and tab are the only control characters a prompt may hold (CR only in CRLF).
_ALLOWED_CONTROLS = frozenset("\n\t")
_SHOWN_INPUT = 40
# find_model names this many ids, those at least this alike (see _closeness).
_NAMED_IDS = 5
_CLOSE_CUTOFF = 0.6
_FRAMES_PER_SECOND = 24
_Request = TypeVar("_Request", QueueRequest, QuoteRequest)
_REQUEST_MODELS: dict[str, type[BaseModel]] = {
    cls.__name__: cls for cls in (QueueRequest, QuoteRequest, RetrieveRequest, CompleteRequest)
}


def _closeness(wanted: str, model_id: str) -> float:
    """How alike two ids look, 0..1: the whole id, or its start (a family such as 'kling')."""
    wanted, model_id = wanted.lower(), model_id.lower()
    whole = difflib.SequenceMatcher(None, wanted, model_id).ratio()
    start = difflib.SequenceMatcher(None, wanted, model_id[: len(wanted)]).ratio()
    return max(whole, 0.95 * start)


def find_model(models: Sequence[VideoModel], model_id: str) -> VideoModel:
    """Return the model with this id, or raise UnknownModelError naming the closest ids.

    Up to five ids are always named: the closest by spelling (case-insensitive, whole
    id or its start), or, when none is close, the first ones alphabetically.
    """
    for model in models:
        if model.id == model_id:
            return model
    ids = sorted({m.id for m in models})
    if not ids:
        raise UnknownModelError(
            f"Unknown video model {model_id!r}: Venice lists no video models for this key."
        )
    ranked = sorted(ids, key=lambda i: (-_closeness(model_id, i), i))
    close = [i for i in ranked if _closeness(model_id, i) >= _CLOSE_CUTOFF][:_NAMED_IDS]
    if close:
        hint = f"Closest ids: {', '.join(close)}."
    else:
        hint = f"No listed id is close; the first alphabetically: {', '.join(ids[:_NAMED_IDS])}."
    count = f"{len(ids)} video model" + ("" if len(ids) == 1 else "s")
    raise UnknownModelError(
        f"Unknown video model {model_id!r}. {hint} "
        f"`prefect-venice models` lists all {count} with their options and prices."
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


# Model-free checks ------------------------------------------------------------------


def _text_problem(field: str, text: str, *, required: bool) -> str | None:
    """Say why a prompt text cannot be sent: blank, or holding control characters."""
    if required and not text.strip():
        what = "empty" if not text else "blank (only whitespace)"
        return f"{field}: is {what}; describe the video to generate."
    bad = [
        (index, char)
        for index, char in enumerate(text)
        if char not in _ALLOWED_CONTROLS
        and unicodedata.category(char) in ("Cc", "Cs")
        and not (char == "\r" and text[index + 1 : index + 2] == "\n")
    ]
    if not bad:
        return None
    index, char = bad[0]
    kind = "an unpaired surrogate" if unicodedata.category(char) == "Cs" else "a control character"
    count = f" ({len(bad)} in all)" if len(bad) > 1 else ""
    return (
        f"{field}: contains {kind}, U+{ord(char):04X}, at position {index}{count}; "
        "only newline and tab are allowed. Remove it."
    )


def _media_problem(label: str, value: object, kind: MediaKind | None) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return None  # the type is pydantic's to report
    problem = media_url_problem(value, kind)
    return (label, f"{label}: {problem}") if problem else None


def _get(item: object, name: str) -> object:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _field_problems(fields: Mapping[str, object]) -> list[tuple[str, str]]:
    """Check prompts and media in raw or parsed fields; return (field label, problem) pairs."""
    found: list[tuple[str, str] | None] = []
    for name in _TEXT_FIELDS:
        text = fields.get(name)
        if isinstance(text, str):
            problem = _text_problem(name, text, required=name == "prompt")
            found.append((name, problem) if problem else None)
    for name, kind in _MEDIA_FIELDS.items():
        found.append(_media_problem(name, fields.get(name), kind))
    for name, list_kind in _MEDIA_LISTS.items():
        values = fields.get(name)
        if isinstance(values, list | tuple):
            for index, value in enumerate(values):
                found.append(_media_problem(f"{name}[{index}]", value, list_kind))
    elements = fields.get("elements")
    if isinstance(elements, list | tuple):
        for index, element in enumerate(elements):
            for name, kind in _ELEMENT_FIELDS.items():
                found.append(_media_problem(f"elements[{index}].{name}", _get(element, name), kind))
            references = _get(element, "reference_image_urls")
            if isinstance(references, list | tuple):
                for number, value in enumerate(references):
                    label = f"elements[{index}].reference_image_urls[{number}]"
                    found.append(_media_problem(label, value, "image"))
    keyframes = fields.get("keyframes")
    if isinstance(keyframes, list | tuple):
        for index, keyframe in enumerate(keyframes):
            label = f"keyframes[{index}].image_url"
            found.append(_media_problem(label, _get(keyframe, "image_url"), "image"))
        found.extend(_keyframe_problems(keyframes, fields.get("duration")))
    return [item for item in found if item is not None]


def _keyframe_problems(keyframes: Sequence[object], duration: object) -> list[tuple[str, str]]:
    """Swagger: "Each frame_index must be unique and no greater than duration x 24"."""
    seconds = duration[:-1] if isinstance(duration, str) and duration.endswith("s") else ""
    last = int(seconds) * _FRAMES_PER_SECOND if seconds.isdigit() else None
    problems: list[tuple[str, str]] = []
    seen: dict[int, int] = {}
    for index, keyframe in enumerate(keyframes):
        frame = _get(keyframe, "frame_index")
        if not isinstance(frame, int) or isinstance(frame, bool):
            continue  # the type is pydantic's to report
        label = f"keyframes[{index}].frame_index"
        if frame in seen:
            problems.append(
                (label, f"{label}: {frame} repeats keyframes[{seen[frame]}]; each must be unique.")
            )
        elif last is not None and frame > last:
            problems.append(
                (
                    label,
                    f"{label}: {frame} is past the last frame, {last} "
                    f"({duration} x {_FRAMES_PER_SECOND} fps).",
                )
            )
        seen.setdefault(frame, index)
    return problems


def input_problems(request: QueueRequest | QuoteRequest) -> list[str]:
    """List what is wrong with a request's prompts and input media, without a model list.

    Prompts must not be blank and may hold no control characters but newline
    and tab. Every media field (image_url, end_image_url, audio_url, video_url,
    the reference lists, elements and keyframes) must be an http(s) URL with a
    host, or a base64 data: URL of a type that field takes (images: PNG, JPEG,
    WebP, GIF; audio: WAV, MP3; video: MP4, MOV, WebM) whose first bytes prove
    that type. Messages show a data: URL's media type, never its payload.
    """
    fields = {name: getattr(request, name) for name in type(request).model_fields}
    return [problem for _, problem in _field_problems(fields)]


# pydantic's errors, in plain words -----------------------------------------------------


def _show_input(value: object) -> str:
    if isinstance(value, str):
        if value[:5].lower() == "data:" or value[:8].lower().startswith(("http://", "https://")):
            return describe_media_value(value)
        shown = value[:_SHOWN_INPUT]
        return repr(shown) + ("..." if len(value) > _SHOWN_INPUT else "")
    text = repr(value)
    return text if len(text) <= _SHOWN_INPUT else f"a {type(value).__name__}"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _loc_label(loc: tuple[int | str, ...]) -> str:
    label = ""
    for part in loc:
        if isinstance(part, int):
            label += f"[{part}]"
        else:
            label += f".{part}" if label else part
    return label or "request"


def _model_class_in(annotation: object) -> type[BaseModel] | None:
    """Find the pydantic model inside an annotation such as `list[VideoElement] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_class_in(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel] | None, path: Sequence[int | str]) -> type[BaseModel] | None:
    current = root
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        current = _model_class_in(field.annotation) if field is not None else None
    return current


def _unknown_field(name: str, owner: type[BaseModel] | None) -> str:
    if owner is None:
        return "is not a known field; remove it."
    names = list(owner.model_fields)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"is not a field of {owner.__name__}; did you mean {_allowed(close)}?"
    return f"is not a field of {owner.__name__}; its fields: {', '.join(names)}."


def _plain(error: Mapping[str, Any], root: type[BaseModel] | None) -> str:
    """Render one pydantic error as 'field: problem'."""
    loc: tuple[int | str, ...] = tuple(error.get("loc", ()))
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    label = _loc_label(loc)
    if kind == "missing" or (kind.endswith("_type") and value is None):
        text = "is required."
    elif kind == "extra_forbidden":
        text = _unknown_field(str(loc[-1]), _model_at(root, loc[:-1]))
    elif kind == "string_too_long":
        length = len(value) if isinstance(value, str) else "too many"
        text = f"{length} characters; at most {ctx.get('max_length')} are allowed."
    elif kind == "string_too_short":
        minimum = ctx.get("min_length")
        text = "must not be empty." if minimum == 1 else f"needs at least {minimum} characters."
    elif kind == "too_long":
        text = f"{ctx.get('actual_length')} items; at most {ctx.get('max_length')} are allowed."
    elif kind == "too_short":
        text = f"{ctx.get('actual_length')} items; at least {ctx.get('min_length')} are needed."
    elif kind == "literal_error" or kind == "enum":
        text = f"{_show_input(value)} is not allowed; allowed: {ctx.get('expected')}."
    elif kind == "string_unicode":
        text = "is not valid Unicode text (it holds an unpaired surrogate?); remove it."
    elif kind == "string_type":
        text = f"must be a string (got {_type_name(value)})."
    elif kind in ("bool_type", "bool_parsing"):
        text = f"must be true or false (got {_show_input(value)})."
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        text = f"must be a whole number (got {_show_input(value)})."
    elif kind in ("float_type", "float_parsing"):
        text = f"must be a number (got {_show_input(value)})."
    elif kind == "list_type":
        text = f"must be a list (got {_type_name(value)})."
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        text = f"must be an object with named fields (got {_type_name(value)})."
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": ("at least", "ge"),
            "greater_than": ("more than", "gt"),
            "less_than_equal": ("at most", "le"),
            "less_than": ("less than", "lt"),
        }[kind]
        text = f"must be {bound[0]} {ctx.get(bound[1])} (got {_show_input(value)})."
    else:
        text = f"{error.get('msg', 'is not valid')} (got {_show_input(value)})."
    return f"{label}: {text}"


def _validation_problems(
    error: ValidationError, model: type[BaseModel] | None
) -> list[tuple[str, str]]:
    root = model or _REQUEST_MODELS.get(error.title)
    return [
        (_loc_label(tuple(item.get("loc", ()))), _plain(item, root))
        for item in error.errors(include_url=False)
    ]


def describe_validation_error(
    error: ValidationError, *, model: type[BaseModel] | None = None
) -> str:
    """Turn pydantic's ValidationError into one readable message naming each field and problem.

    For example: "The request is not valid: prompt: 20001 characters; at most
    20000 are allowed. durration: is not a field of QueueRequest; did you mean
    'duration'?" Long inputs are shortened and a data: URL shows only its media
    type. `model` (default: found from the error's title among the request
    models) lets an unknown field name its close matches.
    """
    problems = [text for _, text in _validation_problems(error, model)]
    subject = "The request" if error.title in _REQUEST_MODELS else error.title
    return _message(subject, problems)


def _message(subject: str, problems: Sequence[str]) -> str:
    return f"{subject} is not valid: " + " ".join(problems)


def _build(cls: type[_Request], fields: Mapping[str, object]) -> _Request:
    try:
        request = cls.model_validate(dict(fields))
    except ValidationError as error:
        problems = _validation_problems(error, cls)
        reported = {label for label, _ in problems}
        # Add what pydantic cannot see (a bad data: URL, a control character) for
        # the fields it did not already report on, so one message lists everything.
        problems += [
            (label, text)
            for label, text in _field_problems(fields)
            if label not in reported and label.split("[")[0].split(".")[0] in cls.model_fields
        ]
        # `from None`: pydantic's own text would repeat the inputs, data: URLs included.
        raise InvalidRequestError(_message("The request", [t for _, t in problems])) from None
    problems_found = input_problems(request)
    if problems_found:
        raise InvalidRequestError(_message("The request", problems_found))
    return request


def build_queue_request(**fields: Any) -> QueueRequest:
    """Build a QueueRequest from keyword fields, or raise InvalidRequestError naming every problem.

    Besides the request's own form (required fields, lengths, allowed
    literals, unknown fields), prompts and input media are checked as
    `input_problems` does. The model's constraints need the model list: the
    client checks those with `validate_request` before any paid call.
    """
    return _build(QueueRequest, fields)


def build_quote_request(**fields: Any) -> QuoteRequest:
    """Build a QuoteRequest from keyword fields, or raise InvalidRequestError naming problems."""
    return _build(QuoteRequest, fields)


# Against the model's constraints -----------------------------------------------------


def validate_request(request: QueueRequest | QuoteRequest, model: VideoModel) -> None:
    """Raise InvalidRequestError listing every field the model does not accept.

    Models without listed constraints are checked only for prompt length (the
    documented default of 2500 characters), prompt text and input media
    (`input_problems`).
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
        if c is not None and c.model_type == "image-to-video" and request.image_url is None:
            problems.append(f"image_url: {mid} is an image-to-video model and needs an image_url.")
        if c is not None and c.model_type == "text-to-video" and request.image_url is not None:
            problems.append(f"image_url: {mid} is a text-to-video model; omit image_url.")
    problems.extend(input_problems(request))
    if problems:
        raise InvalidRequestError(f"Request for {mid} is not valid: " + " ".join(problems))
