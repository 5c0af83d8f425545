"""Turns a local image or audio file (or bytes) into a data: URL with its real MIME type."""

from __future__ import annotations

import base64
import mimetypes
import os
from pathlib import Path
from typing import Literal

from .errors import InputMediaError

__all__ = ["AUDIO_MAX_BYTES", "IMAGE_MAX_BYTES", "MediaKind", "sniff_mime_type", "to_data_url"]

MediaKind = Literal["image", "audio"]

# The API refuses request bodies over 25 MB (swagger's PayloadTooLargeError
# example: "File exceeds the maximum allowed size of 25 MB"). Base64 grows data
# by 4/3, so 25 MB of body holds at most 18.75 MB of image; 18 MB leaves room
# for the prompt and the JSON around it.
IMAGE_MAX_BYTES = 18_000_000
# swagger's QueueVideoRequest.audio_url: "Supported: WAV, MP3. Max: 30s, 15MB."
AUDIO_MAX_BYTES = 15_000_000

_LIMITS: dict[MediaKind, int] = {"image": IMAGE_MAX_BYTES, "audio": AUDIO_MAX_BYTES}
_ACCEPTED: dict[MediaKind, tuple[str, ...]] = {
    "image": ("image/png", "image/jpeg", "image/webp", "image/gif"),
    "audio": ("audio/mpeg", "audio/wav"),
}


def sniff_mime_type(head: bytes) -> str | None:
    """Return the MIME type that the file's first bytes prove, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def _guess_from_name(name: str) -> str | None:
    guessed, _ = mimetypes.guess_type(name)
    # Normalise the spellings mimetypes may give for the two audio formats.
    return {"audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/mp3": "audio/mpeg"}.get(
        guessed or "", guessed
    )


def to_data_url(
    source: str | os.PathLike[str] | bytes, kind: MediaKind = "image", *, name: str = ""
) -> str:
    """Return a value for image_url/audio_url: URLs pass through, files and bytes become data: URLs.

    Refuses, before reading, a file larger than the API accepts, and refuses a
    file whose type is not one the API takes for `kind`.
    """
    limit = _LIMITS[kind]
    if isinstance(source, str) and source.startswith(("http://", "https://", "data:")):
        return source
    if isinstance(source, bytes):
        data, label = source, name or "bytes"
        if len(data) > limit:
            raise _too_large(label, len(data), kind)
    else:
        path = Path(source)
        label = name or path.name
        if not path.is_file():
            raise InputMediaError(f"{kind} file {label!r} does not exist or is not a file.")
        size = path.stat().st_size
        if size > limit:
            raise _too_large(label, size, kind)
        data = path.read_bytes()
    if not data:
        raise InputMediaError(f"{kind} file {label!r} is empty.")
    mime = sniff_mime_type(data[:16]) or _guess_from_name(label)
    if mime not in _ACCEPTED[kind]:
        raise InputMediaError(
            f"{kind} file {label!r} looks like {mime or 'an unknown type'}; "
            f"accepted: {', '.join(_ACCEPTED[kind])}."
        )
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _too_large(label: str, size: int, kind: MediaKind) -> InputMediaError:
    limit = _LIMITS[kind]
    return InputMediaError(
        f"{kind} file {label!r} is {size / 1e6:.1f} MB; the API accepts at most "
        f"{limit / 1e6:.0f} MB for {kind} input."
    )
