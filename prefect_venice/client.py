"""VeniceClient and AsyncVeniceClient: thin I/O shells over the shared _base logic."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from ._aionet import AsyncioClient
from ._base import (
    BALANCE_PATH,
    BILLING_HEADERS,
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    USAGE_HISTORY_PATH,
    BaseVeniceClient,
    UsageWalk,
    shared_ssl_context,
)
from .errors import (
    BadRequestError,
    NotFoundError,
    VeniceError,
    VideoLinkMissingError,
)
from .history import JobShape
from .models import (
    Balance,
    Processing,
    Progress,
    QueuedJob,
    QueueRequest,
    Quote,
    QuoteRequest,
    ReadyAtLink,
    UsageEntry,
    VideoModel,
    VideoSaved,
)
from .polling import PollPolicy
from .retry import Endpoint, RetryPolicy
from .validation import find_model

__all__ = ["DEFAULT_BASE_URL", "AsyncVeniceClient", "VeniceClient"]

Destination = str | os.PathLike[str]


def _missing_link(job: QueuedJob) -> VideoLinkMissingError:
    return VideoLinkMissingError(
        f"Job {job.queue_id} is COMPLETED at a private link, but this job carries no download_url.",
        queue_id=job.queue_id,
    )


class VeniceClient(BaseVeniceClient):
    """Synchronous Venice video client.

    It owns two httpx clients: one for the API origin that sends the bearer key,
    and one with no Authorization header for private download links, so the key
    can never reach the link host. Use it as a context manager or call close().

    Example:
        ```python
        with VeniceClient(os.environ["VENICE_API_KEY"]) as client:
            request = QueueRequest(model="wan-2.5-preview-text-to-video",
                                   prompt="A gondola at sunset", duration="5s")
            print(client.quote(request).usd)
            job = client.queue(request)
            saved = client.wait_for_video(job, "out.mp4")
        ```

    """

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        link_transport: httpx.BaseTransport | None = None,
        chunk_size: int | None = None,
        pacing: bool = True,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            poll=poll,
            chunk_size=chunk_size,
            pacing=pacing,
        )
        self._api = httpx.Client(
            base_url=self.base_url,
            headers=self._api_headers(),
            timeout=self.timeout,
            transport=transport,
            verify=shared_ssl_context(),
        )
        self._links = httpx.Client(
            headers=self._link_headers(),
            timeout=self.timeout,
            transport=link_transport,
            follow_redirects=True,
            verify=shared_ssl_context(),
        )

    def __enter__(self) -> VeniceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close both connection pools."""
        self._api.close()
        self._links.close()

    # I/O with retries -------------------------------------------------------------

    def _call(
        self,
        endpoint: Endpoint,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        queue_id: str | None = None,
    ) -> httpx.Response:
        method = "GET" if endpoint == "models" else "POST"
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            self._wait_for_slot(endpoint)
            try:
                outcome = self._api.request(method, self._path(endpoint), json=json, params=params)
            except httpx.HTTPError as exc:
                outcome = exc
            self._observe(endpoint, outcome)
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            self.retry.sleep(self._decide(endpoint, attempt, outcome, queue_id=queue_id))
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_for_slot(self, endpoint: Endpoint, queue_id: str | None = None) -> None:
        # Plain sleep, not the retry policy's: a policy's sleep may take other slots too.
        ticket = object()
        try:
            while (delay := self._slot_delay(endpoint, ticket, queue_id)) > 0:
                time.sleep(delay)
        finally:
            self._slot_done(endpoint, ticket)

    def _save(
        self,
        response: httpx.Response,
        destination: Destination,
        queue_id: str | None,
        source: Literal["retrieve", "link"],
    ) -> VideoSaved:
        with self._writer(response, destination, queue_id, source) as writer:
            for chunk in response.iter_bytes(self.chunk_size):
                writer.write(chunk)
            return writer.commit()

    # Models and validation --------------------------------------------------------

    def list_video_models(self, *, refresh: bool = False) -> list[VideoModel]:
        """GET /models?type=video (free), cached for the life of this client."""
        if self._models is None or refresh:
            return self._remember_models(self._call("models", params={"type": "video"}))
        return self._models

    def get_video_model(self, model_id: str) -> VideoModel:
        """Return the listed model with this id; UnknownModelError names the closest ids."""
        return find_model(self.list_video_models(), model_id)

    def validate(self, request: QueueRequest | QuoteRequest) -> VideoModel:
        """Check request against its model's constraints; raises InvalidRequestError."""
        return self._find_and_validate(self.list_video_models(), request)

    # Paid and free video calls ------------------------------------------------------

    def quote(self, request: QuoteRequest | QueueRequest, *, validate: bool = True) -> Quote:
        """POST /video/quote: the price in USD (free). A QueueRequest is priced by its inputs."""
        if validate:
            self.validate(request)
        return self._quote_from(self._call("quote", json=self._quote_body(request)))

    def queue(self, request: QueueRequest, *, validate: bool = True) -> QueuedJob:
        """POST /video/queue, the only paid call. Retried only on 429/500 answers.

        A timeout or dropped connection after sending raises OutcomeUnknownError
        and is never resent.
        """
        if validate:
            self.validate(request)
        job = self._job_from(self._call("queue", json=request.to_payload()))
        self._note_queued(request, job)
        return job

    def retrieve(
        self, job: QueuedJob, destination: Destination, *, delete_media_on_completion: bool = False
    ) -> Processing | VideoSaved | ReadyAtLink:
        """POST /video/retrieve once: the status, or the MP4 streamed to destination."""
        body = self._retrieve_body(job, delete_media_on_completion)
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            self._wait_for_slot("retrieve", job.queue_id)
            sent = time.monotonic()
            try:
                with self._api.stream("POST", self._path("retrieve"), json=body) as response:
                    self._observe("retrieve", response)
                    if response.is_success:
                        result: Processing | VideoSaved | ReadyAtLink
                        if self._is_video(response, job.queue_id):
                            result = self._save(response, destination, job.queue_id, "retrieve")
                        else:
                            response.read()
                            result = self._status_from(response, job.queue_id)
                        self._note_retrieved(job, sent, result)
                        return result
                    response.read()
                    outcome = response
            except httpx.HTTPError as exc:
                outcome = exc
                self._observe("retrieve", exc)
            self.retry.sleep(self._decide("retrieve", attempt, outcome, queue_id=job.queue_id))
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_for_video(
        self,
        job: QueuedJob,
        destination: Destination,
        *,
        max_wait_seconds: float = 1800,
        on_progress: Callable[[Progress], None] | None = None,
        delete_media_on_completion: bool = False,
        poll: PollPolicy | None = None,
        shape: JobShape | QueueRequest | None = None,
    ) -> VideoSaved:
        """Poll until the MP4 is saved at destination (inline or from the private link).

        With delete_media_on_completion, the media is deleted on Venice through
        /video/complete only after the file is safely in place. A poll that fails
        with a retryable error (5xx, 429, a dropped connection), even after the
        client's own retries, does not end the wait: polling backs off and goes on
        until max_wait_seconds, then WaitTimeoutError names the last error.
        Non-retryable errors (404, 401, ...) end the wait at once.

        Polls follow what earlier jobs of the job's shape took (see
        prefect_venice.polling); a job this client queued is known by its shape, and
        `shape` (the QueueRequest, or a JobShape) names it for a job queued elsewhere.
        """
        clock = self._wait_clock(job, max_wait_seconds, poll, on_progress, shape)
        if (first := clock.first_delay()) > 0:
            self.retry.sleep(first)
        while True:
            # The retrieve flag is never sent: it would delete the media before a
            # dropped transfer could be retried. complete() runs once the file is saved.
            try:
                result = self.retrieve(job, destination)
            except VeniceError as error:
                # Transient (after the client's own retries): keep waiting until the
                # deadline. Anything else is raised again at once.
                self.retry.sleep(clock.after_transient_error(error))
                continue
            if isinstance(result, ReadyAtLink):
                if job.download_url is None:
                    raise _missing_link(job)
                result = self.download(job.download_url, destination, queue_id=job.queue_id)
            if isinstance(result, VideoSaved):
                if delete_media_on_completion:
                    self.complete(job)
                return result
            self.retry.sleep(clock.after_processing(result))

    def complete(self, job: QueuedJob) -> bool:
        """POST /video/complete: delete the media on Venice; False if it was already gone."""
        try:
            response = self._call("complete", json=self._complete_body(job), queue_id=job.queue_id)
        except (BadRequestError, NotFoundError):
            return False
        return self._complete_from(response)

    # Billing ------------------------------------------------------------------------

    def balance(self) -> Balance:
        """GET /billing/balance: what the account has left (free; needs an ADMIN key).

        A key without billing access (an INFERENCE key) or an invalid key raises
        BillingAccessError, an AuthenticationError: the spec answers 401 for both.
        """
        return self._balance_from(self._get_billing(BALANCE_PATH, {}))

    def usage_history(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        page_size: int = 1000,
        currency: str | None = None,
    ) -> Iterator[UsageEntry]:
        """GET /billing/usage-history: every entry from start (inclusive) to end (exclusive).

        Entries come oldest first, page after page (`page_size` entries a request,
        10 to 1000), walking Venice's cursors until the last page; `currency`
        (USD, DIEM or BUNDLED_CREDITS) keeps only entries in that currency. start
        and end must be timezone-aware; either may be None (no bound). A charge's
        `amount` is negative (`UsageEntry.charged` is what was paid) and a video
        job's entry names its queue id as `UsageEntry.request_id`.

        The arguments are checked at once (InvalidRequestError, nothing sent); the
        requests go out as the entries are consumed. Needs an ADMIN key
        (BillingAccessError otherwise). A cursor that Venice rejects mid-walk (it
        expired) raises BillingCursorError: read again from the first page.
        """
        return self._walk_usage(self._usage_walk(start, end, page_size, currency))

    def _walk_usage(self, walk: UsageWalk) -> Iterator[UsageEntry]:
        while not walk.done:
            yield from walk.take(self._get_billing(USAGE_HISTORY_PATH, walk.params(), walk))

    def _get_billing(
        self, path: str, params: dict[str, str], walk: UsageWalk | None = None
    ) -> httpx.Response:
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            try:
                outcome = self._api.get(path, params=params, headers=BILLING_HEADERS)
            except httpx.HTTPError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            self.retry.sleep(self._decide_billing(path, attempt, outcome, walk))
        raise AssertionError("unreachable")  # pragma: no cover

    # Private links ------------------------------------------------------------------

    def download(
        self,
        download_url: SecretStr | str,
        destination: Destination,
        *,
        queue_id: str | None = None,
    ) -> VideoSaved:
        """GET the private link (no Authorization header) and save the MP4 atomically.

        A link serves only a few GETs (RetryPolicy.link_attempts per call). A cut
        transfer keeps what arrived and resumes with `Range: bytes=<received>-`;
        a host that answers the whole file again (200) starts over. The checksum
        and checks cover the whole file, which appears at destination only once
        complete. 410, or 429 after this client already fetched the link, is final
        and says the link is used up, expired or revoked (LinkGoneError,
        LinkExhaustedError); 404 is final too.
        """
        transfer = self._link_transfer(self._link(download_url), destination, queue_id)
        with transfer.writer as writer:
            for attempt in itertools.count():
                outcome: httpx.Response | httpx.HTTPError
                try:
                    with self._links.stream(
                        "GET", transfer.url, headers=transfer.request_headers()
                    ) as response:
                        plan = transfer.on_answer(response)
                        if plan == "body":
                            for chunk in response.iter_bytes(self.chunk_size):
                                writer.write(chunk)
                        elif plan == "error":
                            response.read()
                        outcome = response
                except httpx.HTTPError as exc:
                    outcome = exc
                if transfer.finished(outcome):
                    return writer.commit()
                self.retry.sleep(transfer.decide(attempt, outcome))
        raise AssertionError("unreachable")  # pragma: no cover

    def revoke(self, download_url: SecretStr | str) -> bool:
        """DELETE the private link so it stops working; False if it was already gone."""
        url = self._link(download_url)
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            try:
                outcome = self._links.delete(url)
            except httpx.HTTPError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response):
                if outcome.is_success:
                    return True
                if outcome.status_code in (404, 410):
                    return False
            self.retry.sleep(self._decide("link_delete", attempt, outcome, link=url))
        raise AssertionError("unreachable")  # pragma: no cover


class AsyncVeniceClient(BaseVeniceClient):
    """Asynchronous twin of VeniceClient: the same methods as coroutines.

    Create one per event loop (and per Prefect task): httpx.AsyncClient must not
    be shared across loops.
    """

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        link_transport: httpx.AsyncBaseTransport | None = None,
        chunk_size: int | None = None,
        pacing: bool = True,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            poll=poll,
            chunk_size=chunk_size,
            pacing=pacing,
        )
        self._api = AsyncioClient(
            base_url=self.base_url,
            headers=self._api_headers(),
            timeout=self.timeout,
            transport=transport,
            verify=shared_ssl_context(),
        )
        self._links = AsyncioClient(
            headers=self._link_headers(),
            timeout=self.timeout,
            transport=link_transport,
            follow_redirects=True,
            verify=shared_ssl_context(),
        )

    async def __aenter__(self) -> AsyncVeniceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._api.aclose()
        await self._links.aclose()

    # I/O with retries -------------------------------------------------------------

    async def _call(
        self,
        endpoint: Endpoint,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        queue_id: str | None = None,
    ) -> httpx.Response:
        method = "GET" if endpoint == "models" else "POST"
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            await self._wait_for_slot(endpoint)
            try:
                outcome = await self._api.request(
                    method, self._path(endpoint), json=json, params=params
                )
            except httpx.HTTPError as exc:
                outcome = exc
            self._observe(endpoint, outcome)
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            await self.retry.async_sleep(
                self._decide(endpoint, attempt, outcome, queue_id=queue_id)
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_for_slot(self, endpoint: Endpoint, queue_id: str | None = None) -> None:
        # Plain sleep, not the retry policy's: a policy's sleep may take other slots too.
        ticket = object()
        try:
            while True:
                delay = self._slot_delay(endpoint, ticket, queue_id)
                if delay <= 0:
                    return
                await asyncio.sleep(delay)
        finally:
            self._slot_done(endpoint, ticket)

    async def _save(
        self,
        response: httpx.Response,
        destination: Destination,
        queue_id: str | None,
        source: Literal["retrieve", "link"],
    ) -> VideoSaved:
        # A small video is written inline (a write to a local disk is cheaper than a
        # thread hop); a large one by the writer's thread, awaited off the loop.
        with self._writer(response, destination, queue_id, source) as writer:
            async for chunk in response.aiter_bytes(self.chunk_size):
                await writer.awrite(chunk)
            return writer.commit()

    # Models and validation --------------------------------------------------------

    async def list_video_models(self, *, refresh: bool = False) -> list[VideoModel]:
        """GET /models?type=video (free), cached for the life of this client."""
        if self._models is None or refresh:
            return self._remember_models(await self._call("models", params={"type": "video"}))
        return self._models

    async def get_video_model(self, model_id: str) -> VideoModel:
        """Return the listed model with this id; UnknownModelError names the closest ids."""
        return find_model(await self.list_video_models(), model_id)

    async def validate(self, request: QueueRequest | QuoteRequest) -> VideoModel:
        """Check request against its model's constraints; raises InvalidRequestError."""
        return self._find_and_validate(await self.list_video_models(), request)

    # Paid and free video calls ------------------------------------------------------

    async def quote(self, request: QuoteRequest | QueueRequest, *, validate: bool = True) -> Quote:
        """POST /video/quote: the price in USD (free). A QueueRequest is priced by its inputs."""
        if validate:
            await self.validate(request)
        return self._quote_from(await self._call("quote", json=self._quote_body(request)))

    async def queue(self, request: QueueRequest, *, validate: bool = True) -> QueuedJob:
        """POST /video/queue, the only paid call. Retried only on 429/500 answers.

        A timeout or dropped connection after sending raises OutcomeUnknownError
        and is never resent.
        """
        if validate:
            await self.validate(request)
        job = self._job_from(await self._call("queue", json=request.to_payload()))
        self._note_queued(request, job)
        return job

    async def retrieve(
        self, job: QueuedJob, destination: Destination, *, delete_media_on_completion: bool = False
    ) -> Processing | VideoSaved | ReadyAtLink:
        """POST /video/retrieve once: the status, or the MP4 streamed to destination."""
        body = self._retrieve_body(job, delete_media_on_completion)
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            await self._wait_for_slot("retrieve", job.queue_id)
            sent = time.monotonic()
            try:
                async with self._api.stream("POST", self._path("retrieve"), json=body) as response:
                    self._observe("retrieve", response)
                    if response.is_success:
                        result: Processing | VideoSaved | ReadyAtLink
                        if self._is_video(response, job.queue_id):
                            result = await self._save(
                                response, destination, job.queue_id, "retrieve"
                            )
                        else:
                            await response.aread()
                            result = self._status_from(response, job.queue_id)
                        self._note_retrieved(job, sent, result)
                        return result
                    await response.aread()
                    outcome = response
            except httpx.HTTPError as exc:
                outcome = exc
                self._observe("retrieve", exc)
            await self.retry.async_sleep(
                self._decide("retrieve", attempt, outcome, queue_id=job.queue_id)
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait_for_video(
        self,
        job: QueuedJob,
        destination: Destination,
        *,
        max_wait_seconds: float = 1800,
        on_progress: Callable[[Progress], None] | None = None,
        delete_media_on_completion: bool = False,
        poll: PollPolicy | None = None,
        shape: JobShape | QueueRequest | None = None,
    ) -> VideoSaved:
        """Poll until the MP4 is saved at destination (inline or from the private link).

        With delete_media_on_completion, the media is deleted on Venice through
        /video/complete only after the file is safely in place. A poll that fails
        with a retryable error (5xx, 429, a dropped connection), even after the
        client's own retries, does not end the wait: polling backs off and goes on
        until max_wait_seconds, then WaitTimeoutError names the last error.
        Non-retryable errors (404, 401, ...) end the wait at once.

        Polls follow what earlier jobs of the job's shape took (see
        prefect_venice.polling); a job this client queued is known by its shape, and
        `shape` (the QueueRequest, or a JobShape) names it for a job queued elsewhere.
        """
        clock = self._wait_clock(job, max_wait_seconds, poll, on_progress, shape)
        if (first := clock.first_delay()) > 0:
            await self.retry.async_sleep(first)
        while True:
            # The retrieve flag is never sent: it would delete the media before a
            # dropped transfer could be retried. complete() runs once the file is saved.
            try:
                result = await self.retrieve(job, destination)
            except VeniceError as error:
                # Transient (after the client's own retries): keep waiting until the
                # deadline. Anything else is raised again at once.
                await self.retry.async_sleep(clock.after_transient_error(error))
                continue
            if isinstance(result, ReadyAtLink):
                if job.download_url is None:
                    raise _missing_link(job)
                result = await self.download(job.download_url, destination, queue_id=job.queue_id)
            if isinstance(result, VideoSaved):
                if delete_media_on_completion:
                    await self.complete(job)
                return result
            await self.retry.async_sleep(clock.after_processing(result))

    async def complete(self, job: QueuedJob) -> bool:
        """POST /video/complete: delete the media on Venice; False if it was already gone."""
        try:
            response = await self._call(
                "complete", json=self._complete_body(job), queue_id=job.queue_id
            )
        except (BadRequestError, NotFoundError):
            return False
        return self._complete_from(response)

    # Billing ------------------------------------------------------------------------

    async def balance(self) -> Balance:
        """GET /billing/balance: what the account has left (free; needs an ADMIN key).

        A key without billing access (an INFERENCE key) or an invalid key raises
        BillingAccessError, an AuthenticationError: the spec answers 401 for both.
        """
        return self._balance_from(await self._get_billing(BALANCE_PATH, {}))

    def usage_history(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        page_size: int = 1000,
        currency: str | None = None,
    ) -> AsyncIterator[UsageEntry]:
        """Async twin of VeniceClient.usage_history: `async for entry in ...`, oldest first.

        The arguments are checked at once (InvalidRequestError, nothing sent); each
        page is requested as the entries are consumed. BillingAccessError for a key
        without billing access; BillingCursorError when a cursor is refused mid-walk.
        """
        return self._walk_usage(self._usage_walk(start, end, page_size, currency))

    async def _walk_usage(self, walk: UsageWalk) -> AsyncIterator[UsageEntry]:
        while not walk.done:
            response = await self._get_billing(USAGE_HISTORY_PATH, walk.params(), walk)
            for entry in walk.take(response):
                yield entry

    async def _get_billing(
        self, path: str, params: dict[str, str], walk: UsageWalk | None = None
    ) -> httpx.Response:
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            try:
                outcome = await self._api.get(path, params=params, headers=BILLING_HEADERS)
            except httpx.HTTPError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            await self.retry.async_sleep(self._decide_billing(path, attempt, outcome, walk))
        raise AssertionError("unreachable")  # pragma: no cover

    # Private links ------------------------------------------------------------------

    async def download(
        self,
        download_url: SecretStr | str,
        destination: Destination,
        *,
        queue_id: str | None = None,
    ) -> VideoSaved:
        """GET the private link (no Authorization header) and save the MP4 atomically.

        A link serves only a few GETs (RetryPolicy.link_attempts per call). A cut
        transfer keeps what arrived and resumes with `Range: bytes=<received>-`;
        a host that answers the whole file again (200) starts over. The checksum
        and checks cover the whole file, which appears at destination only once
        complete. 410, or 429 after this client already fetched the link, is final
        and says the link is used up, expired or revoked (LinkGoneError,
        LinkExhaustedError); 404 is final too.
        """
        transfer = self._link_transfer(self._link(download_url), destination, queue_id)
        with transfer.writer as writer:
            for attempt in itertools.count():
                outcome: httpx.Response | httpx.HTTPError
                try:
                    async with self._links.stream(
                        "GET", transfer.url, headers=transfer.request_headers()
                    ) as response:
                        plan = transfer.on_answer(response)
                        if plan == "body":
                            async for chunk in response.aiter_bytes(self.chunk_size):
                                await writer.awrite(chunk)
                        elif plan == "error":
                            await response.aread()
                        outcome = response
                except httpx.HTTPError as exc:
                    outcome = exc
                if transfer.finished(outcome):
                    return writer.commit()
                await self.retry.async_sleep(transfer.decide(attempt, outcome))
        raise AssertionError("unreachable")  # pragma: no cover

    async def revoke(self, download_url: SecretStr | str) -> bool:
        """DELETE the private link so it stops working; False if it was already gone."""
        url = self._link(download_url)
        for attempt in itertools.count():
            outcome: httpx.Response | httpx.HTTPError
            try:
                outcome = await self._links.delete(url)
            except httpx.HTTPError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response):
                if outcome.is_success:
                    return True
                if outcome.status_code in (404, 410):
                    return False
            await self.retry.async_sleep(self._decide("link_delete", attempt, outcome, link=url))
        raise AssertionError("unreachable")  # pragma: no cover
