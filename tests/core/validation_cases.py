# One bad input a line: the table reads better than a wrapped one.
# ruff: noqa: E501
"""Bad and good request inputs, shared by the client's and the emulator's validation tests.

Every bad input is a set of field overrides on a valid image-to-video request
(`base_fields`), the fragments the client's refusal must contain, and whether
the emulator (an independent reading of the spec) refuses it too. Media are
real files: PyAV encodes the images, sounds and videos.
"""

from __future__ import annotations

import base64
import fractions
import functools
import io
import wave
from dataclasses import dataclass, field
from typing import Any

import av

IMAGE_MODEL = "wan-2.5-preview-image-to-video"
SCRIPT = b'#!/bin/sh\nrm -rf "$HOME"\necho done\n'
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
OGG = b"OggS\x00\x02" + bytes(20)


def _image(codec: str, pix_fmt: str) -> bytes:
    context: Any = av.CodecContext.create(codec, "w")
    context.width = context.height = 16
    context.pix_fmt = pix_fmt
    context.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame(16, 16, "rgb24").reformat(format=pix_fmt)
    packets = list(context.encode(frame)) + list(context.encode(None))
    return b"".join(bytes(packet) for packet in packets)


def _container(fmt: str, codec: str, *, pix_fmt: str = "yuv420p") -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        if codec == "libmp3lame":
            stream = out.add_stream(codec, rate=44100)
            sound = av.AudioFrame(format="s16p", layout="mono", samples=1152)
            for plane in sound.planes:
                plane.update(bytes(plane.buffer_size))
            sound.sample_rate = 44100
            frames: list[Any] = [sound]
        else:
            stream = out.add_stream(codec, rate=24)
            stream.width = stream.height = 16
            stream.pix_fmt = pix_fmt
            frames = []
            for index in range(3):
                picture = av.VideoFrame(16, 16, "rgb24").reformat(format=pix_fmt)
                picture.pts = index
                frames.append(picture)
        for item in [*frames, None]:
            for packet in stream.encode(item):
                out.mux(packet)
    return buffer.getvalue()


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(1600))
    return buffer.getvalue()


def _without_id3(mp3: bytes) -> bytes:
    """The MP3 from its first frame on: a file with no ID3 tag, only frame sync proves it."""
    assert mp3.startswith(b"ID3")
    size = (mp3[6] << 21) | (mp3[7] << 14) | (mp3[8] << 7) | mp3[9]
    return mp3[10 + size :]


@functools.cache
def real_media() -> dict[str, bytes]:
    """Real files of every accepted format, by short name."""
    mp3 = _container("mp3", "libmp3lame")
    return {
        "png": _image("png", "rgb24"),
        "jpeg": _image("mjpeg", "yuvj420p"),
        "webp": _image("libwebp", "yuv420p"),
        "gif": _container("gif", "gif", pix_fmt="rgb8"),
        "wav": _wav(),
        "mp3": mp3,
        "mp3-frames": _without_id3(mp3),
        "mp4": _container("mp4", "libx264"),
        "mov": _container("mov", "libx264"),
        "webm": _container("webm", "libvpx"),
    }


MIME_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "mp3-frames": "audio/mpeg",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}


def data_url(mime: str, content: bytes) -> str:
    """A base64 data: URL declaring `mime` around `content`."""
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def real(name: str, mime: str | None = None) -> str:
    """A data: URL of a real file of format `name`, declared as its own type or as `mime`."""
    return data_url(mime or MIME_TYPES[name], real_media()[name])


def base_fields() -> dict[str, Any]:
    """A valid request for the image-to-video model, with a real PNG."""
    return {
        "model": IMAGE_MODEL,
        "prompt": "The cat turns its head and blinks",
        "duration": "5s",
        "resolution": "720p",
        "image_url": real("png"),
    }


def fields_with(overrides: dict[str, Any]) -> dict[str, Any]:
    """`base_fields` with `overrides` applied; an override of None removes the field."""
    fields = base_fields()
    fields.update(overrides)
    return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True)
class BadInput:
    """One bad input and what its refusal must say."""

    id: str
    overrides: dict[str, Any] = field(hash=False)
    fragments: tuple[str, ...]
    emulator: bool
    """True when the emulator answers 400 too (it checks where the spec is explicit)."""


def _bad(id: str, emulator: bool, *fragments: str, **overrides: Any) -> BadInput:
    return BadInput(id, overrides, fragments, emulator)


IMAGE_FORM = "data:image/... URL"


@functools.cache
def bad_inputs() -> tuple[BadInput, ...]:
    """Every bad input the client refuses before any paid call."""
    png, jpeg, gif = real("png"), real("jpeg"), real("gif")
    mp3, wav, mp4, webm = real("mp3"), real("wav"), real("mp4"), real("webm")
    text = data_url("text/plain", b"hello, this is not a picture")
    return (
        # image_url: the declared type must be an image the API takes ...
        _bad("image-text", True, "image_url", "text/plain", "not an image", IMAGE_FORM, image_url=text),
        _bad("image-pdf", True, "image_url", "application/pdf", IMAGE_FORM, image_url=data_url("application/pdf", PDF)),
        _bad("image-audio", True, "image_url", "audio/mpeg", "not an image", image_url=mp3),
        _bad("image-video", True, "image_url", "video/mp4", "not an image", image_url=mp4),
        _bad("image-svg", False, "image_url", "image/svg+xml", "image/png, image/jpeg", image_url=data_url("image/svg+xml", b"<svg/>")),
        _bad("image-bmp", False, "image_url", "image/bmp", "accepted", image_url=data_url("image/bmp", b"BM" + bytes(40))),
        # ... and the bytes must prove it
        _bad("image-script-as-png", False, "image_url", "says image/png", "#!/bin/s", "bytes must prove", image_url=data_url("image/png", SCRIPT)),
        _bad("image-jpeg-as-png", False, "image_url", "says image/png", "looks like image/jpeg", image_url=real("jpeg", "image/png")),
        _bad("image-mp3-as-gif", False, "image_url", "says image/gif", "looks like audio/mpeg", image_url=real("mp3", "image/gif")),
        _bad("image-zeros-as-png", False, "image_url", "is not image/png", image_url="data:image/png;base64,AAAA"),
        # ... and the data: URL must be well formed
        _bad("image-bad-base64", True, "image_url", "not valid base64", "'!'", image_url="data:image/png;base64,iVBOR!w0KGgo="),
        _bad("image-cut-base64", False, "image_url", "not a multiple of 4", image_url=png[:-3]),
        _bad("image-no-data", True, "image_url", "carries no data", image_url="data:image/png;base64,"),
        _bad("image-not-base64", True, "image_url", "lacks ';base64'", image_url="data:image/png,rawbytes"),
        _bad("image-no-comma", True, "image_url", "no ','", image_url="data:image/png;base64"),
        _bad("image-no-type", True, "image_url", "names no media type", image_url="data:;base64,iVBORw0KGgo="),
        # image_url: an http(s) URL with a host, nothing else
        _bad("image-http-no-host", True, "image_url", "'http://'", "has no host", "http(s) URL with a host", image_url="http://"),
        _bad("image-https-empty-host", True, "image_url", "has no host", image_url="https:///cat.png"),
        _bad("image-port-no-host", True, "image_url", "has no host", image_url="https://:443/cat.png"),
        _bad("image-bad-port", True, "image_url", "not a valid URL", "Port", image_url="https://example.com:99999/a.png"),
        _bad("image-space", True, "image_url", "a space at position 22", "percent-encode", image_url="https://example.com/my cat.png"),
        _bad("image-newline", True, "image_url", "'\\n'", image_url="https://example.com/cat.png\n"),
        _bad("image-nul", True, "image_url", "'\\x00'", image_url="https://exa\x00mple.com/cat.png"),
        _bad("image-ftp", True, "image_url", "ftp: scheme", IMAGE_FORM, image_url="ftp://example.com/cat.png"),
        _bad("image-file", True, "image_url", "file: scheme", "to_data_url", image_url="file:///home/me/cat.png"),
        _bad("image-javascript", True, "image_url", "javascript: scheme", image_url="javascript:alert(1)"),
        _bad("image-path", True, "image_url", "is not a URL", "to_data_url", image_url="/home/me/cat.png"),
        _bad("image-bare-name", True, "image_url", "is not a URL", image_url="cat.png"),
        _bad("image-no-scheme", True, "image_url", "is not a URL", image_url="www.example.com/cat.png"),
        _bad("image-empty", True, "image_url", "is empty", image_url=""),
        _bad("image-blank", True, "image_url", "is blank", image_url="   "),
        # the other single media fields, by kind
        _bad("end-image-video", True, "end_image_url", "video/webm", "not an image", end_image_url=webm),
        _bad("end-image-gif-is-png", False, "end_image_url", "says image/gif", "looks like image/png", end_image_url=real("png", "image/gif")),
        _bad("audio-image", True, "audio_url", "image/png", "not an audio", "data:audio/... URL", audio_url=png),
        _bad("audio-text", True, "audio_url", "text/plain", "WAV or MP3", audio_url=text),
        _bad("audio-ogg", False, "audio_url", "audio/ogg", "audio/mpeg, audio/wav", audio_url=data_url("audio/ogg", OGG)),
        _bad("audio-mp3-as-wav", False, "audio_url", "says audio/wav", "looks like audio/mpeg", audio_url=real("mp3", "audio/wav")),
        _bad("audio-script-as-mp3", False, "audio_url", "says audio/mpeg", "#!/bin/s", audio_url=data_url("audio/mpeg", SCRIPT)),
        _bad("audio-ftp", True, "audio_url", "ftp: scheme", "data:audio/... URL", audio_url="ftp://example.com/a.mp3"),
        _bad("video-image", True, "video_url", "image/gif", "not a video", "MP4, MOV or WebM", video_url=gif),
        _bad("video-avi", False, "video_url", "video/x-msvideo", "video/mp4, video/quicktime, video/webm", video_url=data_url("video/x-msvideo", b"RIFF\0\0\0\0AVI LIST")),
        _bad("video-webm-as-mp4", False, "video_url", "says video/mp4", "looks like video/webm", video_url=real("webm", "video/mp4")),
        _bad("video-no-host", True, "video_url", "has no host", "data:video/... URL", video_url="http://"),
        # reference lists, elements and keyframes, by kind, naming the item
        _bad("reference-image-text", False, "reference_image_urls[1]", "text/plain", reference_image_urls=[jpeg, text]),
        _bad("reference-image-ftp", True, "reference_image_urls[0]", "ftp: scheme", reference_image_urls=["ftp://example.com/a.png"]),
        _bad("reference-audio-image", False, "reference_audio_urls[0]", "image/png", "not an audio", reference_audio_urls=[png]),
        _bad("reference-video-javascript", True, "reference_video_urls[0]", "javascript: scheme", reference_video_urls=["javascript:void(0)"]),
        _bad("reference-document-bad-base64", True, "reference_document_urls[0]", "not valid base64", reference_document_urls=["data:application/pdf;base64,JVBER i0x"]),
        _bad("scene-image-no-host", True, "scene_image_urls[0]", "has no host", scene_image_urls=["https://"]),
        _bad("element-frontal-audio", False, "elements[0].frontal_image_url", "audio/wav", "not an image", elements=[{"frontal_image_url": wav}]),
        _bad("element-reference-file", True, "elements[0].reference_image_urls[0]", "file: scheme", elements=[{"reference_image_urls": ["file:///x.png"]}]),
        _bad("element-video-image", False, "elements[1].video_url", "image/jpeg", "not a video", elements=[{"video_url": mp4}, {"video_url": jpeg}]),
        _bad("keyframe-text", False, "keyframes[0].image_url", "text/plain", keyframes=[{"image_url": text, "frame_index": 0}]),
        _bad("keyframe-negative-frame", True, "keyframes[0].frame_index", "at least 0", keyframes=[{"image_url": png, "frame_index": -1}]),
        _bad("keyframe-repeated-frame", True, "keyframes[1].frame_index", "unique", keyframes=[{"image_url": png, "frame_index": 24}, {"image_url": jpeg, "frame_index": 24}]),
        _bad("keyframe-past-the-end", True, "keyframes[0].frame_index", "121", "120", keyframes=[{"image_url": png, "frame_index": 121}]),
        _bad("too-many-reference-images", True, "reference_image_urls", "31 items", "at most 30", reference_image_urls=[png] * 31),
        # prompts
        _bad("prompt-blank", True, "prompt", "blank (only whitespace)", prompt=" \n\t  "),
        _bad("prompt-empty", True, "prompt", "must not be empty", prompt=""),
        _bad("prompt-missing", True, "prompt", "is required", prompt=None),
        _bad("prompt-not-text", True, "prompt", "must be a string", prompt=123),
        _bad("prompt-nul", False, "prompt", "U+0000", "position 7", "newline and tab", prompt="A cat, \x00then a dog"),
        _bad("prompt-escape", False, "prompt", "U+001B", prompt="\x1b[31mRed\x1b[0m sunset"),
        _bad("prompt-delete", False, "prompt", "U+007F", prompt="Sunset\x7f"),
        _bad("prompt-c1-control", False, "prompt", "U+0085", prompt="Sunset\x85over the sea"),
        _bad("prompt-bare-carriage-return", False, "prompt", "U+000D", prompt="Sunset\rover the sea"),
        _bad("prompt-surrogate", False, "prompt", "unpaired surrogate", prompt="Sunset \ud800"),
        _bad("prompt-too-long", True, "prompt", "20001 characters", "at most 20000", prompt="x" * 20_001),
        _bad("prompt-over-model-limit", True, "prompt", "2501 characters", "at most 2500", prompt="x" * 2501),
        _bad("negative-nul", False, "negative_prompt", "U+0000", negative_prompt="blur\x00"),
        _bad("negative-backspace", False, "negative_prompt", "U+0008", negative_prompt="blur\x08noise"),
        _bad("negative-too-long", True, "negative_prompt", "20001 characters", negative_prompt="y" * 20_001),
        # the form pydantic checks, in plain words
        _bad("unknown-field", False, "durration", "did you mean 'duration'", durration="5s"),
        _bad("upscale-factor", False, "upscale_factor", "3 is not allowed", "1, 2 or 4", upscale_factor=3),
        _bad("audio-not-bool", True, "audio", "true or false", audio="maybe"),
    )  # fmt: skip
