"""Real, decodable MP4 files built in pure Python; the padding is streamed, never held."""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

FPS = 24
# Frames repeat in a one-second loop: the sample table points every second's
# samples at the same 24 stored frames, so a 30 s video costs no more header
# bytes than a 1 s one while a decoder still sees FPS * seconds frames.
DISTINCT_FRAMES = FPS
_CHUNK = 64 * 1024
_ZEROS = bytes(_CHUNK)

# Internal (stored) picture sizes per aspect ratio: tiny RGB24 frames whose row
# length is a multiple of 16 bytes, so no decoder has to guess at row padding.
_INTERNAL_SIZE = {
    "16:9": (64, 36),
    "9:16": (32, 56),
    "1:1": (48, 48),
    "4:3": (64, 48),
    "3:4": (48, 64),
    "21:9": (96, 40),
}

# Realistic bit rates (bits per second) used to pad a video to a plausible size.
_BITRATE = {
    "256p": 300_000,
    "360p": 600_000,
    "480p": 1_000_000,
    "540p": 1_500_000,
    "580p": 1_500_000,
    "720p": 2_500_000,
    "1080p": 5_000_000,
    "1440p": 8_000_000,
    "2160p": 16_000_000,
    "4k": 16_000_000,
}


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def display_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Return the width and height to show for a resolution ("720p") and a ratio ("16:9")."""
    digits = "".join(ch for ch in resolution if ch.isdigit())
    short = int(digits) if digits else 720
    if resolution.lower() == "4k":
        short = 2160
    a, _, b = aspect_ratio.partition(":")
    try:
        num, den = int(a), int(b)
    except ValueError:
        num, den = 16, 9
    if num >= den:
        return (short * num // den) // 2 * 2, short
    return short, (short * den // num) // 2 * 2


def _frame(width: int, height: int, index: int) -> bytes:
    """One RGB24 frame: a colour wash that shifts per frame and a white bar sweeping across."""
    pixels = bytearray(width * height * 3)
    bar = (index * width) // DISTINCT_FRAMES
    for y in range(height):
        row = y * width * 3
        green = (y * 255) // max(height - 1, 1)
        for x in range(width):
            at = row + x * 3
            if bar <= x < bar + max(width // 8, 1):
                pixels[at : at + 3] = b"\xff\xff\xff"
            else:
                pixels[at] = (index * 10) % 256
                pixels[at + 1] = green
                pixels[at + 2] = (x * 255) // max(width - 1, 1)
    return bytes(pixels)


def expected_pixel(width: int, height: int, index: int, x: int, y: int) -> tuple[int, int, int]:
    """Return the RGB value stored at (x, y) of frame `index`, so tests can check decoding."""
    at = (y * width + x) * 3
    frame = _frame(width, height, index % DISTINCT_FRAMES)
    return frame[at], frame[at + 1], frame[at + 2]


def internal_size(aspect_ratio: str) -> tuple[int, int]:
    """Return the stored picture size for an aspect ratio (16:9 when unknown)."""
    return _INTERNAL_SIZE.get(aspect_ratio, _INTERNAL_SIZE["16:9"])


@functools.lru_cache(maxsize=64)
def build_header(seconds: int, resolution: str, aspect_ratio: str) -> bytes:
    """Build ftyp + moov + mdat of a raw RGB24 video of `seconds` at 24 fps; cached per shape."""
    width, height = internal_size(aspect_ratio)
    shown_w, shown_h = display_size(resolution, aspect_ratio)
    frame_bytes = width * height * 3
    frames = max(seconds, 1) * FPS
    distinct = min(frames, DISTINCT_FRAMES)
    mdat = _box(b"mdat", *(_frame(width, height, i) for i in range(distinct)))
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isom", b"iso2", b"mp41")
    duration_ms = frames * 1000 // FPS

    def moov(mdat_payload_at: int) -> bytes:
        offsets = [mdat_payload_at + (i % distinct) * frame_bytes for i in range(frames)]
        sample_entry = _box(
            b"raw ",
            bytes(6),
            struct.pack(">H", 1),  # data reference index
            bytes(16),
            struct.pack(">HH", width, height),
            struct.pack(">II", 0x00480000, 0x00480000),
            bytes(4),
            struct.pack(">H", 1),  # frames per sample
            bytes([9]) + b"Emulator" + bytes(32 - 9),
            struct.pack(">Hh", 24, -1),  # depth 24 = RGB24, no colour table
        )
        stbl = _box(
            b"stbl",
            _full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
            _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, 1)),
            _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1)),
            _full_box(b"stsz", 0, 0, struct.pack(">II", frame_bytes, frames)),
            _full_box(b"stco", 0, 0, struct.pack(f">I{frames}I", frames, *offsets)),
        )
        minf = _box(
            b"minf",
            _full_box(b"vmhd", 0, 1, bytes(8)),
            _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
            stbl,
        )
        mdia = _box(
            b"mdia",
            _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, FPS, frames, 0x55C4, 0)),
            _full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00"),
            minf,
        )
        tkhd = _full_box(
            b"tkhd",
            0,
            3,
            struct.pack(">IIII", 0, 0, 1, 0),
            struct.pack(">I", duration_ms),
            bytes(8),
            struct.pack(">hhhH", 0, 0, 0, 0),
            _MATRIX,
            struct.pack(">II", shown_w << 16, shown_h << 16),
        )
        mvhd = _full_box(
            b"mvhd",
            0,
            0,
            struct.pack(">IIII", 0, 0, 1000, duration_ms),
            struct.pack(">IH", 0x00010000, 0x0100),
            bytes(10),
            _MATRIX,
            bytes(24),
            struct.pack(">I", 2),
        )
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    # The moov size does not depend on the offsets' values, so one dry run fixes the layout.
    moov_len = len(moov(0))
    return ftyp + moov(len(ftyp) + moov_len + 8) + mdat


def realistic_size(seconds: int, resolution: str) -> int:
    """Bytes a real encoder would produce for this duration and resolution, roughly."""
    return _BITRATE.get(resolution, 2_500_000) * max(seconds, 1) // 8


@dataclass(frozen=True)
class VideoFile:
    """A video whose decodable head is cached and whose padding is streamed on demand."""

    header: bytes
    size: int

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Yield bytes `start` up to `stop` (exclusive; default: the end) of the file in pieces.

        The padding is never allocated in one piece, whatever the range: a part that
        starts deep inside it costs no more memory than the whole file does.
        """
        end = self.size if stop is None else min(stop, self.size)
        start = max(start, 0)
        at = 0
        for piece in (self.header, self._free_box_head()):
            piece_end = at + len(piece)
            if start < piece_end and at < end:
                # A whole piece slices to itself: no copy on a full download.
                yield piece[max(start - at, 0) : min(end, piece_end) - at]
            at = piece_end
        left = end - max(start, at)
        while left > 0:
            size = min(left, _CHUNK)
            yield _ZEROS if size == _CHUNK else _ZEROS[:size]
            left -= size

    def _free_box_head(self) -> bytes:
        """Return the size and type of the `free` box that pads the file (empty if none)."""
        padding = self.size - len(self.header)
        if padding <= 0:
            return b""
        if padding < 2**32:
            return struct.pack(">I", padding) + b"free"
        return struct.pack(">I", 1) + b"free" + struct.pack(">Q", padding)


def make_video(
    seconds: int, resolution: str, aspect_ratio: str, size: int | None = None
) -> VideoFile:
    """Describe a video of `seconds` at `resolution`, padded to `size` (or realistic) bytes."""
    header = build_header(seconds, resolution, aspect_ratio)
    target = realistic_size(seconds, resolution) if size is None else size
    # A `free` box needs 8 bytes; a smaller gap cannot be expressed, so it is dropped.
    if target - len(header) < 8:
        target = len(header)
    return VideoFile(header=header, size=target)
