"""Input media for a request: local files become data: URLs, and URLs are checked for form.

A value for `image_url`, `audio_url`, `video_url` (and the reference lists) is
either an http(s) URL with a host, which Venice fetches, or a base64 `data:`
URL whose media type says what it holds. The content must prove its type: the
first bytes are sniffed (magic numbers), and neither a file name nor a
declared type is trusted on its own.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import mimetypes
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from .errors import InputMediaError

__all__ = [
    "ACCEPTED_TYPES",
    "AUDIO_MAX_BYTES",
    "IMAGE_MAX_BYTES",
    "VIDEO_MAX_BYTES",
    "MediaKind",
    "describe_media_value",
    "expected_media_form",
    "media_url_problem",
    "sniff_mime_type",
    "to_data_url",
]

MediaKind = Literal["image", "audio", "video"]

# The API refuses request bodies over 25 MB (swagger's PayloadTooLargeError
# example: "File exceeds the maximum allowed size of 25 MB"). Base64 grows data
# by 4/3, so 25 MB of body holds at most 18.75 MB of image; 18 MB leaves room
# for the prompt and the JSON around it.
IMAGE_MAX_BYTES = 18_000_000
# swagger's QueueVideoRequest.audio_url: "Supported: WAV, MP3. Max: 30s, 15MB."
AUDIO_MAX_BYTES = 15_000_000
# A video sent inline is bounded by the same 25 MB body limit as an image.
VIDEO_MAX_BYTES = IMAGE_MAX_BYTES

ACCEPTED_TYPES: Mapping[MediaKind, tuple[str, ...]] = {
    # swagger: image_url "Must be a URL (http/https) or a data URL (data:image/...)".
    "image": ("image/png", "image/jpeg", "image/webp", "image/gif"),
    # swagger: audio_url "Supported: WAV, MP3."
    "audio": ("audio/mpeg", "audio/wav"),
    # swagger: video_url "Supported: MP4, MOV, WebM."
    "video": ("video/mp4", "video/quicktime", "video/webm"),
}
"""The MIME types the API takes for each kind of input media."""

_LIMITS: dict[MediaKind, int] = {
    "image": IMAGE_MAX_BYTES,
    "audio": AUDIO_MAX_BYTES,
    "video": VIDEO_MAX_BYTES,
}
_FORMAT_NAMES: dict[MediaKind, str] = {
    "image": "PNG, JPEG, WebP or GIF",
    "audio": "WAV or MP3",
    "video": "MP4, MOV or WebM",
}
_EXAMPLES: dict[MediaKind, str] = {
    "image": "https://example.com/cat.png",
    "audio": "https://example.com/music.mp3",
    "video": "https://example.com/clip.mp4",
}
# Other spellings of the accepted types, as browsers and tools write them.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "video/mov": "video/quicktime",
}
# MP4 and MOV are both ISO base media files; many tools label one as the other.
_SAME_CONTAINER = {"video/mp4": "video/quicktime", "video/quicktime": "video/mp4"}

# Enough bytes for every signature below (ISO BMFF needs 12).
_SNIFF_BYTES = 32
# Base64 characters decoded to sniff a data: URL: 64 characters are 48 bytes.
_SNIFF_CHARACTERS = 64
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOST = re.compile(r"[\w.~%!$&'()*+,;=-]+")
_SHOWN_CHARACTERS = 60

# ISO BMFF brands of files that are images or audio, not videos.
_FTYP_NOT_VIDEO = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heic",
    b"msf1": "image/heic",
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"M4P ": "audio/mp4",
}
# Top-level atoms that open a QuickTime file written without an ftyp box.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """Tell whether `head` opens with a plausible MPEG audio (MP3) frame header."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    # 01 is a reserved version, 00 a reserved layer (ADTS AAC uses it), 1111 a
    # forbidden bitrate and 11 a reserved sample rate.
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and sample_rate != 0b11


def sniff_mime_type(head: bytes) -> str | None:
    """Return the MIME type that the file's first bytes prove, or None.

    Knows the accepted types (PNG, JPEG, WebP, GIF, WAV, MP3, MP4, MOV, WebM)
    and a few common others (PDF, Ogg, FLAC, AVIF, HEIC, ZIP), so that a
    refusal can say what a file is.
    """
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
    if head.startswith(b"ID3") or _is_mpeg_audio_frame(head):
        return "audio/mpeg"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        return _FTYP_NOT_VIDEO.get(brand, "video/mp4")
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    for magic, mime in (
        (b"%PDF-", "application/pdf"),
        (b"OggS", "audio/ogg"),
        (b"fLaC", "audio/flac"),
        (b"PK\x03\x04", "application/zip"),
    ):
        if head.startswith(magic):
            return mime
    return None


def _normalise(mime: str) -> str:
    mime = mime.strip().lower()
    return _ALIASES.get(mime, mime)


def _matches(declared: str, sniffed: str | None) -> bool:
    return sniffed is not None and (sniffed == declared or _SAME_CONTAINER.get(declared) == sniffed)


def expected_media_form(kind: MediaKind | None) -> str:
    """Say, in words, what a value of this kind must look like (None: any base64 data: URL)."""
    if kind is None:
        return (
            "an http(s) URL with a host (e.g. https://example.com/brief.pdf) or a base64 data: URL"
        )
    return (
        f"an http(s) URL with a host (e.g. {_EXAMPLES[kind]}) or a data:{kind}/... URL "
        f"({_FORMAT_NAMES[kind]}; prefect_venice.media.to_data_url makes one from a local file)"
    )


def describe_media_value(value: str) -> str:
    """Return a short, safe rendering of an input media value for messages.

    A data: URL shows only its header and length, never its payload; a URL
    shows at most its first characters and never its query string (which may
    hold a signature).
    """
    if value[:5].lower() == "data:":
        header, comma, payload = value.partition(",")
        shown = header[:_SHOWN_CHARACTERS]
        more = "..." if len(header) > _SHOWN_CHARACTERS else ""
        if not comma:
            return f"'{shown}{more}' ({len(value)} characters)"
        return f"'{shown}{more},...' ({len(payload)} characters of data)"
    base, question, _ = value.partition("?")
    shown = base[:_SHOWN_CHARACTERS]
    suffix = "..." if len(base) > _SHOWN_CHARACTERS or question else ""
    return repr(shown + suffix)


def _bad_character(value: str) -> str | None:
    """Name the first whitespace or control character in `value`, or None."""
    for index, char in enumerate(value):
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            label = "a space" if char == " " else f"the character {char!r}"
            return f"{label} at position {index}"
    return None


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _http_problem(value: str, kind: MediaKind | None) -> str | None:
    shown = describe_media_value(value)
    expected = expected_media_form(kind)
    bad = _bad_character(value)
    if bad:
        return (
            f"{shown} contains {bad}; a URL may not hold spaces or control characters "
            f"(percent-encode them, e.g. %20). Expected {expected}."
        )
    try:
        parts = urlsplit(value)
        port = parts.port
        host = parts.hostname or ""
    except ValueError as error:
        return f"{shown} is not a valid URL ({error}). Expected {expected}."
    if not host:
        return f"{shown} has no host. Expected {expected}."
    if ":" in host:
        valid = _is_ip_address(host)
    else:
        valid = bool(_HOST.fullmatch(host)) and any(char.isalnum() for char in host)
    if not valid:
        return f"{shown} has an invalid host {host!r}. Expected {expected}."
    if port == 0:
        return f"{shown} has port 0. Expected {expected}."
    return None


def _data_problem(value: str, kind: MediaKind | None, *, check_content: bool) -> str | None:
    header, comma, payload = value.partition(",")
    shown = describe_media_value(value)
    example = (
        f"data:{ACCEPTED_TYPES[kind][0]};base64,<data>" if kind else "data:<type>;base64,<data>"
    )
    if not comma:
        return f"{shown} has no ',' before its data; a data: URL looks like {example}."
    params = header[5:].split(";")
    declared = _normalise(params[0])
    if not declared or "/" not in declared:
        return f"{shown} names no media type; a data: URL looks like {example}."
    if kind is not None:
        accepted = ACCEPTED_TYPES[kind]
        if not declared.startswith(f"{kind}/"):
            return (
                f"{shown} holds {declared}, not {'a' if kind == 'video' else 'an'} {kind}; "
                f"expected {expected_media_form(kind)}."
            )
        if declared not in accepted:
            return (
                f"{shown}: {declared} is not one of the {kind} types the API takes; "
                f"accepted: {', '.join(accepted)}."
            )
    if params[-1].strip().lower() != "base64" or len(params) < 2:
        return f"{shown} is not base64-encoded (its header lacks ';base64'); use {example}."
    if not payload:
        return f"{shown} carries no data."
    if not _BASE64.fullmatch(payload):
        found = _NOT_BASE64.search(payload)
        where = (
            f"{found.group()!r} at position {found.start()} of the data"
            if found
            else "'=' padding before the end"
        )
        return f"{shown} is not valid base64: {where}."
    if len(payload) % 4:
        return (
            f"{shown} is not valid base64: {len(payload)} characters is not a multiple of 4 "
            "(was it cut short?)."
        )
    if not check_content or kind is None:
        return None
    try:
        head = base64.b64decode(payload[:_SNIFF_CHARACTERS], validate=True)
    except (binascii.Error, ValueError):
        return f"{shown} is not valid base64."
    sniffed = sniff_mime_type(head)
    if not _matches(declared, sniffed):
        what = f"looks like {sniffed}" if sniffed else f"is not {declared} (it starts {head[:8]!r})"
        return f"{shown} says {declared}, but its content {what}; the bytes must prove the type."
    return None


def media_url_problem(
    value: str, kind: MediaKind | None, *, check_content: bool = True
) -> str | None:
    """Return why `value` is not an input media URL the API takes for `kind`, or None if it is.

    Accepted: an http(s) URL with a host and no spaces or control characters,
    or a base64 `data:` URL of one of `ACCEPTED_TYPES[kind]` whose first bytes
    prove that type (only the first few dozen characters are decoded; the
    rest is checked for the base64 alphabet). `kind=None` accepts any media
    type (reference documents). The answer never contains a data: payload.
    """
    lowered = value[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return _http_problem(value, kind)
    if lowered.startswith("data:"):
        return _data_problem(value, kind, check_content=check_content)
    expected = expected_media_form(kind)
    shown = describe_media_value(value)
    if not value.strip():
        return f"is {'empty' if not value else 'blank'}. Expected {expected}."
    scheme = _SCHEME.match(value)
    if scheme and len(scheme.group(1)) > 1:  # "C:" is a Windows drive, not a scheme
        return f"{shown} uses the {scheme.group(1).lower()}: scheme. Expected {expected}."
    return f"{shown} is not a URL. Expected {expected}."


def _guess_from_name(name: str) -> str | None:
    guessed, _ = mimetypes.guess_type(name)
    return _normalise(guessed) if guessed else None


def _is_url_like(source: str) -> bool:
    """Tell whether `source` names a URL scheme rather than a local path."""
    if source[:8].lower().startswith(("http://", "https://", "data:")):
        return True
    scheme = _SCHEME.match(source)
    return scheme is not None and len(scheme.group(1)) > 1 and not _is_file(Path(source))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or holding a NUL, names no file
        return False


def to_data_url(
    source: str | os.PathLike[str] | bytes, kind: MediaKind = "image", *, name: str = ""
) -> str:
    """Return a value for image_url/audio_url/video_url from a URL, a local file or bytes.

    URLs are checked, then returned unchanged: an http(s) URL needs a host and
    no spaces or control characters; a data: URL needs a base64 payload of a
    type the API takes for `kind` (that its bytes prove the type is checked by
    `validate_request` before anything is sent). Files and bytes become data:
    URLs: a file larger than the API accepts is refused before reading, and
    the content must prove its type by its first bytes; a file name alone
    does not. Raises InputMediaError naming the expected forms.
    """
    limit = _LIMITS[kind]
    if isinstance(source, str) and _is_url_like(source):
        problem = media_url_problem(source, kind, check_content=False)
        if problem:
            raise InputMediaError(f"{kind}: {problem}")
        return source
    if isinstance(source, bytes):
        data, label = source, name or "bytes"
        if len(data) > limit:
            raise _too_large(label, len(data), kind)
    else:
        path = Path(source)
        label = name or path.name
        if not _is_file(path):
            raise InputMediaError(
                f"{kind} file {label!r} does not exist or is not a file. "
                f"Pass an existing file, or {expected_media_form(kind)}."
            )
        size = path.stat().st_size
        if size > limit:
            raise _too_large(label, size, kind)
        data = path.read_bytes()
    if not data:
        raise InputMediaError(f"{kind} file {label!r} is empty.")
    mime = sniff_mime_type(data[:_SNIFF_BYTES])
    accepted = ACCEPTED_TYPES[kind]
    if mime not in accepted:
        named = _guess_from_name(label)
        if mime is not None:
            what = f"looks like {mime}"
        elif named:
            what = (
                f"is named like {named}, but its content is not a {_FORMAT_NAMES[kind]} file "
                f"(it starts {data[:8]!r}); the content must prove the type, a name is not enough"
            )
        else:
            what = f"is not a {_FORMAT_NAMES[kind]} file (it starts {data[:8]!r})"
        raise InputMediaError(f"{kind} file {label!r} {what}; accepted: {', '.join(accepted)}.")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _too_large(label: str, size: int, kind: MediaKind) -> InputMediaError:
    limit = _LIMITS[kind]
    return InputMediaError(
        f"{kind} file {label!r} is {size / 1e6:.1f} MB; the API accepts at most "
        f"{limit / 1e6:.0f} MB for {kind} input."
    )
