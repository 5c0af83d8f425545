"""Clients of either flavour over scoped httpx.MockTransports, for edge cases the emulator lacks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from core_support import FAST_POLL, SleepLog, Venice, fast_retry

from prefect_venice import AsyncVeniceClient, VeniceClient

MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64
"""A small body that passes the client's MP4 checks (ftyp box first)."""

Handler = Callable[[httpx.Request], httpx.Response]


def mock_venice(
    flavour: str,
    api: Handler | None = None,
    link: Handler | None = None,
    *,
    retry: dict[str, Any] | None = None,
    **options: Any,
) -> Venice:
    """A sync or async client whose API and link hosts are the given handlers."""

    def unused(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request to {request.url.host}")

    sleeps = SleepLog(cap=0.002)
    cls = AsyncVeniceClient if flavour == "async" else VeniceClient
    client = cls(
        "k" * 16,
        base_url="https://api.test/api/v1",
        transport=httpx.MockTransport(api or unused),
        link_transport=httpx.MockTransport(link or unused),
        retry=fast_retry(sleeps, **(retry or {})),
        poll=options.pop("poll", FAST_POLL),
        # Small reads: a cut body then loses no bytes inside httpx's chunk buffer.
        chunk_size=options.pop("chunk_size", 1000),
        # These tests time waits and count calls: the shared per-key pacing stays out.
        pacing=options.pop("pacing", False),
        **options,
    )
    return Venice(client, sleeps)


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that yields `data` in pieces and then fails as a dropped connection would."""

    def __init__(self, data: bytes, piece: int = 4096) -> None:
        self.data = data
        self.piece = piece

    def _pieces(self) -> list[bytes]:
        return [self.data[i : i + self.piece] for i in range(0, len(self.data), self.piece)]

    def __iter__(self) -> Any:
        yield from self._pieces()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces():
            yield piece
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")
