"""The baseline for the batch benchmark: a batch of videos with plain asyncio and httpx.

What a competent engineer writes from Venice's guide without this package: quote every
request and check the total, queue them all, poll each job at a fixed interval until
the MP4 arrives, stream it to disk, call /video/complete. Venice allows 40 queue and
120 retrieve calls per minute per key, so both go through a client-side sliding-window
limiter with those numbers, and a 429 waits for its Retry-After before trying again
(a 429 on /video/queue creates no job, so retrying it pays nothing twice). At most
`max_requests` requests per endpoint are under way at once: an AsyncClient's connection
pool spends CPU in proportion to the requests waiting in it (see docs/benchmarks.md), so
an unbounded gather of hundreds of calls runs slower, not faster.

No journal, no resume, no validation, no checksum, no events: only the calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx


class WindowLimiter:
    """At most `limit` calls in any `window` seconds (a sliding log of send times)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more call fits, and count it."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            while True:
                now = loop.time()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                await asyncio.sleep(self._sent[0] + self.window - now)


class Batch:
    """One batch run against one API key."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        poll_interval: float,
        limiters: dict[str, WindowLimiter],
        max_requests: int,
    ) -> None:
        self.client = client
        self.poll_interval = poll_interval
        self.limiters = limiters
        # Requests under way per endpoint. A request takes its slot first and its place in
        # the rate window second, then goes out at once: the server counts arrivals.
        self.slots = {
            path: asyncio.Semaphore(max_requests)
            for path in ("/video/quote", "/video/queue", "/video/retrieve", "/video/complete")
        }

    @contextlib.asynccontextmanager
    async def request(self, path: str, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST `body` to `path` (streamed), inside the endpoint's slots and rate window."""
        async with self.slots[path]:
            limiter = self.limiters.get(path)
            if limiter is not None:
                await limiter.acquire()
            async with self.client.stream("POST", path, json=body) as response:
                yield response

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body and return the JSON answer; a 429 waits and tries again."""
        while True:
            async with self.request(path, body) as response:
                await response.aread()
            if response.status_code == 429:
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                continue
            response.raise_for_status()
            return response.json()

    async def make(self, request: dict[str, Any], destination: Path) -> Path:
        """Queue one video, poll it, stream it to `destination`, then complete it."""
        queued = await self.post("/video/queue", request)
        job = {"model": queued["model"], "queue_id": queued["queue_id"]}
        while True:
            await asyncio.sleep(self.poll_interval)
            async with self.request("/video/retrieve", job) as response:
                if response.status_code == 429:
                    await response.aread()
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                response.raise_for_status()
                if response.headers.get("content-type", "").startswith("video/mp4"):
                    partial = destination.with_suffix(".part")
                    with partial.open("wb") as handle:
                        async for chunk in response.aiter_bytes(64 * 1024):
                            handle.write(chunk)
                    partial.replace(destination)
                    break
                await response.aread()  # {"status": "PROCESSING", ...}: poll again
        await self.post("/video/complete", job)
        return destination


async def make_videos(
    base_url: str,
    api_key: str,
    requests: list[dict[str, Any]],
    output_dir: Path,
    *,
    max_usd: float,
    poll_interval: float,
    limit_window: float,
    queue_per_window: int = 40,
    retrieve_per_window: int = 120,
    max_requests: int = 5,
) -> list[Path]:
    """Quote all, check the budget, then make every video concurrently; return the files.

    `output_dir` must exist.
    """
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60.0,
        limits=httpx.Limits(
            max_connections=4 * max_requests, max_keepalive_connections=4 * max_requests
        ),
    ) as client:
        batch = Batch(
            client,
            poll_interval=poll_interval,
            limiters={
                # A 10 % margin on the window: the server counts arrivals, not send times.
                "/video/queue": WindowLimiter(queue_per_window, limit_window * 1.1),
                "/video/retrieve": WindowLimiter(retrieve_per_window, limit_window * 1.1),
            },
            max_requests=max_requests,
        )
        quotes = await asyncio.gather(
            *(batch.post("/video/quote", _quote_body(r)) for r in requests)
        )
        total = sum(float(q["quote"]) for q in quotes)
        if total > max_usd:
            raise RuntimeError(f"The quotes add up to ${total:.2f}, above ${max_usd:.2f}")
        return await asyncio.gather(
            *(
                batch.make(request, output_dir / f"video-{index}.mp4")
                for index, request in enumerate(requests)
            )
        )


def _quote_body(request: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "duration", "resolution", "aspect_ratio", "audio")
    return {key: request[key] for key in keys if key in request}
