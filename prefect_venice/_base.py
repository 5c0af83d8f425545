"""The one place that builds requests and interprets answers, for both clients."""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from ._redact import install_log_filter, redact, redact_url, register_secret
from .download import VideoWriter, resolve_destination
from .errors import (
    BillingAccessError,
    BillingCursorError,
    InvalidBaseURLError,
    InvalidRequestError,
    InvalidVideoError,
    LinkExhaustedError,
    LinkGoneError,
    NetworkError,
    OutcomeUnknownError,
    ServerError,
    VeniceError,
    VideoLinkMissingError,
    error_for_status,
)
from .history import TRACKER, JobShape
from .models import (
    Balance,
    CompleteRequest,
    CompleteResult,
    Processing,
    Progress,
    QueuedJob,
    QueueRequest,
    Quote,
    QuoteRequest,
    ReadyAtLink,
    RetrieveRequest,
    UsageEntry,
    UsagePage,
    VideoModel,
    VideoSaved,
)
from .pacing import PACED_ENDPOINTS, Pacer
from .polling import PollPolicy, WaitClock
from .retry import NOT_SENT, Endpoint, RetryPolicy
from .validation import find_model, validate_request

__all__ = [
    "BALANCE_PATH",
    "DEFAULT_BASE_URL",
    "USAGE_HISTORY_PATH",
    "BaseVeniceClient",
    "LinkTransfer",
    "UsageWalk",
    "check_base_url",
]

DEFAULT_BASE_URL = "https://api.venice.ai/api/v1"

_ssl_lock = threading.Lock()
_ssl_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def shared_ssl_context() -> ssl.SSLContext:
    """Return this process's TLS context for Venice, built once (httpx's default trust).

    httpx builds a context, loading the whole CA bundle, for every client it makes:
    about 37 ms of CPU each, twice per VeniceClient. Every client of the process
    shares this one instead; as in httpx, SSL_CERT_FILE or SSL_CERT_DIR replace
    certifi's bundle.
    """
    key = (os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)
    with _ssl_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            context = httpx.create_ssl_context()
            _ssl_contexts[key] = context
        return context


DEFAULT_TIMEOUT = 30.0
USER_AGENT = "prefect-venice/0.1"

_PATHS: dict[Endpoint, str] = {
    "models": "/models",
    "quote": "/video/quote",
    "queue": "/video/queue",
    "retrieve": "/video/retrieve",
    "complete": "/video/complete",
}
BALANCE_PATH = "/billing/balance"
USAGE_HISTORY_PATH = "/billing/usage-history"
#: Sent with every billing GET: the usage history answers CSV to `Accept: text/csv`.
BILLING_HEADERS = {"Accept": "application/json"}
#: swagger getBillingUsageHistory: pageSize is 10 to 1000, default 1000.
USAGE_PAGE_SIZES = range(10, 1001)
USAGE_CURRENCIES = ("USD", "DIEM", "BUNDLED_CREDITS")
_M = TypeVar("_M", bound=BaseModel)
_SERVER_MESSAGE_LIMIT = 500


def secret_value(value: SecretStr | str) -> str:
    """Return the plain string inside a SecretStr (or the string itself)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _describe(endpoint: Endpoint, link: str | None) -> str:
    if endpoint == "link_get":
        return f"GET {redact_url(link or '')}"
    if endpoint == "link_delete":
        return f"DELETE {redact_url(link or '')}"
    method = "GET" if endpoint == "models" else "POST"
    return f"{method} {_PATHS[endpoint]}"


def server_message(body: bytes) -> str | None:
    """Venice's own explanation from an error body, shortened and with secrets removed."""
    if not body:
        return None
    try:
        data: Any = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
    else:
        text = _message_from_json(data)
    text = redact(" ".join(text.split()))
    if len(text) > _SERVER_MESSAGE_LIMIT:
        text = text[: _SERVER_MESSAGE_LIMIT - 3] + "..."
    return text or None


def _message_from_json(data: Any) -> str:
    if not isinstance(data, dict):
        return str(data)
    error = data.get("error")
    parts: list[str] = []
    if isinstance(error, dict):
        parts.append(str(error.get("message") or error.get("code") or ""))
        if error.get("recommended_model"):
            parts.append(f"(recommended model: {error['recommended_model']})")
    elif error:
        parts.append(str(error))
    if data.get("details"):
        parts.append(f"details: {json.dumps(data['details'], sort_keys=True)}")
    if data.get("suggested_prompt"):
        parts.append(f"(suggested prompt: {data['suggested_prompt']})")
    return " ".join(p for p in parts if p) or json.dumps(data, sort_keys=True)


def error_from_response(
    endpoint: Endpoint,
    response: httpx.Response,
    *,
    queue_id: str | None = None,
    link: str | None = None,
) -> VeniceError:
    """Build the error for a non-success answer (its body must already be read)."""
    status = response.status_code
    message = server_message(response.content)
    cls = error_for_status(status)
    job = f" for job {queue_id}" if queue_id else ""
    said = f": {message.rstrip('.')}" if message else ""
    text = f"Venice answered {status} to {_describe(endpoint, link)}{job}{said}."
    if endpoint == "queue" and status in (429, 500):
        text += " No job was created, so nothing was charged."
    return cls(text, status=status, server_message=message, queue_id=queue_id)


def error_from_exception(
    endpoint: Endpoint,
    error: httpx.HTTPError,
    *,
    queue_id: str | None = None,
    link: str | None = None,
    attempts: int = 1,
) -> VeniceError:
    """Wrap an httpx exception without its message, which may hold a full URL."""
    kind = type(error).__name__
    where = _describe(endpoint, link)
    tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    if endpoint == "queue" and not isinstance(
        error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    ):
        return OutcomeUnknownError(
            f"The queue request was sent but its answer never arrived ({kind}); "
            "a job may have been created and charged.",
        )
    return NetworkError(
        f"{where}{(' for job ' + queue_id) if queue_id else ''} failed{tries}: {kind}.",
        queue_id=queue_id,
    )


def without_userinfo(url: str) -> str:
    """Return url with any `user:password@` in its authority replaced by a placeholder."""
    scheme, sep, rest = url.partition("//")
    if not sep:
        scheme, rest = "", url
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    cut = min(ends, default=len(rest))
    authority = rest[:cut]
    if "@" in authority:
        authority = "<credentials redacted>@" + authority.rsplit("@", 1)[1]
    return scheme + sep + authority + rest[cut:]


def check_base_url(base_url: str) -> str:
    """Return base_url without a trailing slash, or raise InvalidBaseURLError.

    The API root must be an absolute http(s) URL with a host. Anything else
    (`ftp://x`, `localhost:8000`, an empty string) would only fail later as a
    network error that retries for many seconds; the message shows the value
    with any credentials in it redacted.
    """
    value = base_url.strip() if isinstance(base_url, str) else ""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        host = None
    if host and parts.scheme.lower() in ("http", "https"):
        return value.rstrip("/")
    shown = redact(without_userinfo(str(base_url)))
    if len(shown) > 200:
        shown = shown[:197] + "..."
    raise InvalidBaseURLError(
        f"base_url {shown!r} is not an absolute http(s) URL with a host "
        "(scheme://host[:port]/path); nothing was sent."
    )


def content_type(response: httpx.Response) -> str:
    """Return the media type of an answer, lower-cased, without parameters."""
    value: str = response.headers.get("content-type", "")
    return value.split(";")[0].strip().lower()


def expected_length(response: httpx.Response) -> int | None:
    """Content-Length when it describes the bytes we will see (no content encoding)."""
    if response.headers.get("content-encoding", "identity") not in ("", "identity"):
        return None
    raw = response.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


class BaseVeniceClient:
    """State and answer interpretation shared by VeniceClient and AsyncVeniceClient."""

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        chunk_size: int | None = None,
        pacing: bool = True,
    ) -> None:
        key = secret_value(api_key)
        if not key:
            raise VeniceError("No Venice API key given.", retryable=False)
        self._api_key = SecretStr(key)
        register_secret(key, kind="key")
        install_log_filter()
        self.base_url = check_base_url(base_url)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self.chunk_size = chunk_size
        """Bytes per piece read from a video body; None (the default): pieces as they
        arrive from the socket, with no re-chunking copy."""
        self._models: list[VideoModel] | None = None
        # GETs this client sent per private link, keyed by a digest of the link (a link
        # allows only a few; a 429 after some of them means it is used up).
        self._link_gets: dict[str, int] = {}
        # Venice's per-key limits on queue and retrieve, spent from the headers' account
        # that every client of this key on the machine shares (see prefect_venice.pacing).
        self._pacers: dict[str, Pacer] = (
            {e: Pacer.for_endpoint(key, self.base_url, e) for e in PACED_ENDPOINTS}
            if pacing
            else {}
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={without_userinfo(self.base_url)!r})"

    # What the httpx clients are built from ------------------------------------

    def _api_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "User-Agent": USER_AGENT,
        }

    def _link_headers(self) -> dict[str, str]:
        # Deliberately no Authorization: the key must never reach the link host.
        return {"User-Agent": USER_AGENT}

    # Requests -------------------------------------------------------------------

    @staticmethod
    def _path(endpoint: Endpoint) -> str:
        return _PATHS[endpoint]

    @staticmethod
    def _retrieve_body(job: QueuedJob, delete_media_on_completion: bool) -> dict[str, Any]:
        return RetrieveRequest(
            model=job.model,
            queue_id=job.queue_id,
            delete_media_on_completion=delete_media_on_completion or None,
        ).to_payload()

    @staticmethod
    def _complete_body(job: QueuedJob) -> dict[str, Any]:
        return CompleteRequest(model=job.model, queue_id=job.queue_id).to_payload()

    @staticmethod
    def _quote_body(request: QuoteRequest | QueueRequest) -> dict[str, Any]:
        quote = request.to_quote() if isinstance(request, QueueRequest) else request
        return quote.to_payload()

    @staticmethod
    def _link(download_url: SecretStr | str) -> str:
        url = secret_value(download_url)
        if not url.startswith(("http://", "https://")):
            raise VideoLinkMissingError("The download_url is not an http(s) URL.")
        register_secret(url)
        return url

    # Pacing -----------------------------------------------------------------------

    def _slot_delay(
        self, endpoint: Endpoint, ticket: object = None, queue_id: str | None = None
    ) -> float:
        """Reserve a request of the endpoint's per-key allowance: 0, or seconds to wait first.

        A retrieve of a job whose wait ranks its polls (PollPolicy.prioritize) goes
        through the pacer's frontier with its chance of being done, under `ticket`.
        """
        pacer = self._pacers.get(endpoint)
        if pacer is None:
            return 0.0
        if endpoint == "retrieve" and queue_id is not None and ticket is not None:
            job = TRACKER.get(queue_id)
            if job is not None and job.prioritize and job.priority is not None and not job.done:
                return pacer.frontier.delay(ticket, job.priority(TRACKER.clock()))
        return pacer.reserve()

    def _slot_done(self, endpoint: Endpoint, ticket: object) -> None:
        """Forget the call holding `ticket`: it no longer waits for a slot."""
        pacer = self._pacers.get(endpoint)
        if pacer is not None:
            pacer.frontier.leave(ticket)

    def _observe(self, endpoint: Endpoint, outcome: httpx.Response | httpx.HTTPError) -> None:
        """Let the pacer read an answer's rate-limit headers (or learn that none came)."""
        pacer = self._pacers.get(endpoint)
        if pacer is not None:
            pacer.observe(outcome.headers if isinstance(outcome, httpx.Response) else None)

    # Retry decisions ------------------------------------------------------------

    def _decide(
        self,
        endpoint: Endpoint,
        attempt: int,
        outcome: httpx.Response | httpx.HTTPError,
        *,
        queue_id: str | None = None,
        link: str | None = None,
        final: Callable[[httpx.Response | httpx.HTTPError, int], VeniceError] | None = None,
    ) -> float:
        """Return the delay before retry number attempt+1, or raise the final error.

        `outcome` is a failed answer (its body already read) or the httpx error.
        `final(outcome, attempts)`, when given, builds the final error instead of the
        endpoint's usual one. Call this outside any `except` block: an error raised
        there would chain to the httpx error, which holds the request with its key or
        private link.
        """
        last = attempt + 1 >= self.retry.attempts_for(endpoint)
        if isinstance(outcome, httpx.HTTPError):
            retryable = isinstance(outcome, httpx.TransportError) and (
                self.retry.retries_transport_error(endpoint, outcome)
            )
            if last or not retryable:
                if final is not None:
                    raise final(outcome, attempt + 1) from None
                raise error_from_exception(
                    endpoint, outcome, queue_id=queue_id, link=link, attempts=attempt + 1
                ) from None
            return self.retry.backoff(attempt)
        if last or not self.retry.retries_status(endpoint, outcome.status_code):
            if final is not None:
                raise final(outcome, attempt + 1)
            raise error_from_response(endpoint, outcome, queue_id=queue_id, link=link)
        return self.retry.delay_after_status(outcome.status_code, outcome.headers, attempt)

    def _decide_billing(
        self,
        path: str,
        attempt: int,
        outcome: httpx.Response | httpx.HTTPError,
        walk: UsageWalk | None = None,
    ) -> float:
        """Return the delay before retrying a billing GET, or raise its final error.

        Billing GETs are free and change nothing, so they follow the retry rules of
        the other free GET, /models. Call this outside any `except` block.
        """

        def final(failed: httpx.Response | httpx.HTTPError, attempts: int) -> VeniceError:
            if isinstance(failed, httpx.Response):
                return billing_error(path, failed, walk)
            tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
            return NetworkError(f"GET {path} failed after {tries}: {type(failed).__name__}.")

        return self._decide("models", attempt, outcome, final=final)

    @staticmethod
    def _usage_walk(
        start: datetime | None, end: datetime | None, page_size: int, currency: str | None
    ) -> UsageWalk:
        return UsageWalk(start, end, page_size=page_size, currency=currency)

    @staticmethod
    def _balance_from(response: httpx.Response) -> Balance:
        return _parse(Balance, _json(response, "balance"), "balance")

    def _wait_clock(
        self,
        job: QueuedJob,
        max_wait_seconds: float,
        poll: PollPolicy | None,
        on_progress: Callable[[Progress], None] | None,
        shape: JobShape | QueueRequest | None = None,
    ) -> WaitClock:
        if isinstance(shape, QueueRequest):
            shape = JobShape.of(shape)
        if shape is not None and shape.model != job.model:
            shape = None  # not this job's shape: learn nothing wrong from it
        TRACKER.describe(self.base_url, job.queue_id, job.model, shape)
        return WaitClock(
            job.queue_id,
            max_wait_seconds=max_wait_seconds,
            policy=poll or self.poll,
            on_progress=on_progress,
            retry=self.retry,
            shape=shape,
            api=self.base_url,
        )

    # What the poll schedule learns from ---------------------------------------------

    def _note_queued(self, request: QueueRequest, job: QueuedJob) -> None:
        """Remember the shape and queue time of a job just queued (for its wait's schedule)."""
        TRACKER.queued(self.base_url, job.queue_id, JobShape.of(request))

    def _note_retrieved(
        self, job: QueuedJob, sent: float, result: Processing | VideoSaved | ReadyAtLink
    ) -> None:
        """Feed a retrieve answer to the tracker: the job's progress, or its completion."""
        if isinstance(result, Processing):
            TRACKER.processing(
                self.base_url,
                job.queue_id,
                job.model,
                sent,
                result.execution_duration_ms / 1000,
                result.average_execution_time_ms / 1000,
            )
        else:
            TRACKER.finished(self.base_url, job.queue_id, job.model, sent)

    # Answers --------------------------------------------------------------------

    def _remember_models(self, response: httpx.Response) -> list[VideoModel]:
        data = _json(response, "models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ServerError("GET /models answered without a `data` list.")
        # Skip entries that are not video models or do not parse, rather than
        # failing every call over one odd entry in a list of a hundred.
        models: list[VideoModel] = []
        for item in items:
            try:
                model = VideoModel.model_validate(item)
            except ValidationError:
                continue
            if model.type == "video":
                models.append(model)
        self._models = models
        return models

    def _find_and_validate(
        self, models: list[VideoModel], request: QueueRequest | QuoteRequest
    ) -> VideoModel:
        model = find_model(models, request.model)
        validate_request(request, model)
        return model

    @staticmethod
    def _quote_from(response: httpx.Response) -> Quote:
        return _parse(Quote, _json(response, "quote"), "quote")

    @staticmethod
    def _job_from(response: httpx.Response) -> QueuedJob:
        try:
            job: QueuedJob | None = QueuedJob.model_validate(json.loads(response.content))
        except (ValueError, ValidationError):
            # Raised below, outside this block: the validation error quotes the
            # answer, download_url included, and would be chained as __context__.
            job = None
        if job is None:
            # The job was created (200) but we cannot read its id: an unknown outcome.
            raise OutcomeUnknownError(
                "Venice accepted the queue request but its answer could not be read."
            )
        if job.download_url is not None:
            register_secret(job.download_url.get_secret_value())
        return job

    @staticmethod
    def _complete_from(response: httpx.Response) -> bool:
        return _parse(CompleteResult, _json(response, "complete"), "complete").success

    @staticmethod
    def _status_from(response: httpx.Response, queue_id: str) -> Processing | ReadyAtLink:
        data = _json(response, "retrieve")
        # Matched exactly as documented: a client that folds case once missed both.
        status = data.get("status") if isinstance(data, dict) else None
        if status == "COMPLETED":
            return ReadyAtLink()
        if status == "PROCESSING":
            return _parse(Processing, data, "retrieve")
        raise ServerError(
            f"POST /video/retrieve for job {queue_id} answered an unknown status {status!r}.",
            queue_id=queue_id,
            retryable=False,
        )

    @staticmethod
    def _is_video(response: httpx.Response, queue_id: str) -> bool:
        """Return True for an MP4 retrieve answer, False for JSON; refuse anything else unread."""
        kind = content_type(response)
        if kind == "video/mp4":
            return True
        if kind == "application/json":
            return False
        raise ServerError(
            f"POST /video/retrieve for job {queue_id} answered {kind or 'no content type'!r}, "
            "neither JSON status nor video/mp4; nothing was saved.",
            queue_id=queue_id,
            retryable=False,
        )

    @staticmethod
    def _check_link_answer(response: httpx.Response, queue_id: str | None) -> None:
        kind = content_type(response)
        if kind.startswith(("application/json", "text/")):
            raise InvalidVideoError(
                f"The private link answered {kind!r} instead of an MP4; nothing was saved.",
                queue_id=queue_id,
            )

    def _link_transfer(
        self, url: str, destination: str | os.PathLike[str], queue_id: str | None
    ) -> LinkTransfer:
        target = resolve_destination(destination, queue_id or "video")
        writer = VideoWriter(target, queue_id=queue_id, source="link")
        return LinkTransfer(self, url, writer, queue_id)

    def _writer(
        self,
        response: httpx.Response,
        destination: str | os.PathLike[str],
        queue_id: str | None,
        source: Literal["retrieve", "link"],
    ) -> VideoWriter:
        target = resolve_destination(destination, queue_id or "video")
        return VideoWriter(
            target, expected_length=expected_length(response), queue_id=queue_id, source=source
        )


_CONTENT_RANGE = re.compile(r"bytes[ \t]+([0-9]+)-([0-9]+)/([0-9]+)", re.IGNORECASE | re.ASCII)
_UNSATISFIED_RANGE = re.compile(r"bytes[ \t]+\*/([0-9]+)", re.IGNORECASE | re.ASCII)

BodyPlan = Literal["body", "error", "skip"]
"""What a download does with an answer's body: save it, read it as an error, or leave it."""


class LinkTransfer:
    """One private-link download across its GETs: what to ask for and what each answer means.

    A link serves only a few GETs, so a cut transfer is not started again from
    byte 0: the bytes received stay in the one VideoWriter of this download and
    the next GET asks for `Range: bytes=<received>-` (unless the host said
    `Accept-Ranges: none`). A 206 whose `Content-Range` continues exactly where
    the file stops (same total, same ETag) is appended; a 200 starts over from
    zero; anything inconsistent throws the partial file away and starts over
    without a range. The checksum and the final size and `ftyp` checks cover the
    whole file.

    A 410 from the link, or a 429 after this client already fetched it, ends the
    download at once with an error that says the link is used up, expired or
    revoked. Shared by both clients: they only do the I/O, in this order per
    attempt: `request_headers()`, the GET, `on_answer(response)`, the body as
    planned, then `finished(outcome)` and, if not finished, `decide(attempt, outcome)`.
    """

    def __init__(
        self, client: BaseVeniceClient, url: str, writer: VideoWriter, queue_id: str | None
    ) -> None:
        self._client = client
        self.url = url
        self.writer = writer
        self.queue_id = queue_id
        self.total: int | None = None
        """Size of the whole file, once an answer said it."""
        self.ranges: bool | None = None
        """Whether a resumed GET may ask for a byte range: True once the host advertised
        `Accept-Ranges: bytes` or answered 206, False once it said `none` or answered a
        range inconsistently, None (unknown: ask; a host without ranges answers 200)."""
        self.etag: str | None = None
        self.gets = 0
        """GETs this download sent."""
        self._key = hashlib.sha256(url.encode()).hexdigest()
        self._plan: BodyPlan = "error"
        self._answered = False
        self._unusable: str | None = None

    # Before each GET ------------------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """Headers for the next GET: a byte range when resuming is possible."""
        self._plan, self._answered, self._unusable = "error", False, None
        # Ranges count bytes as stored: ask for the file itself, never a compressed form.
        headers = {"Accept-Encoding": "identity"}
        received = self.writer.received
        if received and self.ranges is not False:
            headers["Range"] = f"bytes={received}-"
            if self.etag is not None:
                # The host answers the whole file (200) if it changed meanwhile.
                headers["If-Range"] = self.etag
        return headers

    # Each answer ------------------------------------------------------------------

    def on_answer(self, response: httpx.Response) -> BodyPlan:
        """Count the GET and say what to do with the body; raise for a non-video answer."""
        self._count_get()
        self._answered = True
        if response.status_code == 206:
            self._plan = self._on_partial(response)
        elif response.is_success:
            self._client._check_link_answer(response, self.queue_id)
            self._on_whole(response)
            self._plan = "body"
        else:
            self._plan = "error"
        return self._plan

    def _on_whole(self, response: httpx.Response) -> None:
        if self.writer.received:
            self.writer.truncate_to(0)  # a whole file again: start over
        self.total = expected_length(response)
        self.writer.expected_length = self.total
        accepted = [t.strip().lower() for t in response.headers.get("accept-ranges", "").split(",")]
        self.ranges = True if "bytes" in accepted else False if "none" in accepted else None
        etag = response.headers.get("etag")
        # Only a strong validator may guard a range (RFC 9110, 13.1.5).
        self.etag = etag if etag and not etag.startswith("W/") else None

    def _on_partial(self, response: httpx.Response) -> BodyPlan:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if match is None:
            self._restart("206 without a usable Content-Range")
            return "skip"
        first, last, total = (int(group) for group in match.groups())
        problem = self._partial_problem(response, first, last, total)
        if problem is not None:
            self._restart(f"206 with {problem}")
            return "skip"
        self._client._check_link_answer(response, self.queue_id)
        self.total = total
        self.writer.expected_length = total
        self.ranges = True
        return "body"

    def _partial_problem(
        self, response: httpx.Response, first: int, last: int, total: int
    ) -> str | None:
        """Why a 206 cannot continue the file (None: it can)."""
        received = self.writer.received
        length = expected_length(response)
        etag = response.headers.get("etag")
        if first != received:
            return f"bytes from {first} where {received} had arrived"
        if not first <= last < total:
            return "an impossible Content-Range"
        if self.total is not None and total != self.total:
            return f"a total of {total} bytes instead of {self.total}"
        if response.headers.get("content-encoding", "identity") not in ("", "identity"):
            return "an encoded part"
        if length is not None and length != last - first + 1:
            return "a Content-Length that does not match its Content-Range"
        if self.etag is not None and etag is not None and etag != self.etag:
            return "a different version of the file (ETag)"
        return None

    def finished(self, outcome: httpx.Response | httpx.HTTPError) -> bool:
        """Whether the whole file is in the writer, ready for commit()."""
        if isinstance(outcome, httpx.HTTPError):
            return False
        received = self.writer.received
        if outcome.status_code == 416:
            # Asked for bytes past the end: complete if the end is exactly what we hold.
            match = _UNSATISFIED_RANGE.fullmatch(outcome.headers.get("content-range", "").strip())
            total = int(match.group(1)) if match else None
            if received and total == received and self.total in (None, total):
                self.writer.expected_length = total
                return True
            self._restart("416 for a range the file does not end at")
            return False
        if self._plan != "body":
            return False
        return self.total is None or received >= self.total

    # Between GETs ------------------------------------------------------------------

    def decide(self, attempt: int, outcome: httpx.Response | httpx.HTTPError) -> float:
        """Return the delay before the next GET, or raise the final error.

        Call it outside any `except` block (see BaseVeniceClient._decide).
        """
        retry = self._client.retry
        last = attempt + 1 >= retry.attempts_for("link_get")
        if isinstance(outcome, httpx.HTTPError):
            if not self._answered and not isinstance(outcome, NOT_SENT):
                self._count_get()  # sent, then cut off before any answer
            if last or not isinstance(outcome, httpx.TransportError):
                error = error_from_exception(
                    "link_get", outcome, queue_id=self.queue_id, link=self.url, attempts=attempt + 1
                )
                raise type(error)(
                    error.message + self._progress(), queue_id=self.queue_id
                ) from None
            return retry.backoff(attempt)
        status = outcome.status_code
        if status == 410:
            raise self._gone(outcome)
        if status == 429:
            earlier = self._client._link_gets.get(self._key, 0) - 1
            if earlier > 0 or last:
                raise self._exhausted(outcome, earlier)
            # The first GET this client made: maybe a brief limit, so one short wait.
            return min(
                retry.max_link_rate_limit_wait,
                retry.delay_after_status(429, outcome.headers, attempt),
            )
        if self._plan == "body" or self._unusable is not None:
            # The answer ended short without an error, or could not be continued.
            if last:
                raise self._incomplete()
            return 0.0
        return self._client._decide(
            "link_get", attempt, outcome, queue_id=self.queue_id, link=self.url
        )

    # Helpers ----------------------------------------------------------------------------

    def _count_get(self) -> None:
        self.gets += 1
        gets = self._client._link_gets
        gets[self._key] = gets.get(self._key, 0) + 1

    def _restart(self, why: str) -> None:
        self._unusable = why
        self.writer.truncate_to(0)
        self.ranges = False

    def _where(self) -> str:
        job = f" for job {self.queue_id}" if self.queue_id else ""
        return f"The private link{job} (GET {redact_url(self.url)})"

    def _progress(self) -> str:
        received = self.writer.received
        if not received:
            return ""
        of = f" of {self.total}" if self.total is not None else ""
        return f" {received}{of} bytes had arrived; nothing was saved."

    def _gone(self, response: httpx.Response) -> LinkGoneError:
        earlier = self._client._link_gets.get(self._key, 0) - 1
        said = server_message(response.content)
        return LinkGoneError(
            f"{self._where()} answered 410 {self._after(earlier)}: it has expired, "
            f"been used up or been revoked{self._host_said(said)}.",
            status=410,
            server_message=said,
            queue_id=self.queue_id,
        )

    def _exhausted(self, response: httpx.Response, earlier: int) -> LinkExhaustedError:
        said = server_message(response.content)
        return LinkExhaustedError(
            f"{self._where()} answered 429 {self._after(earlier)}: it allows only a few "
            "downloads and appears to be used up"
            f"{'' if earlier > 0 else ' (perhaps by an earlier run)'}{self._host_said(said)}.",
            status=429,
            server_message=said,
            queue_id=self.queue_id,
        )

    def _incomplete(self) -> InvalidVideoError:
        received, total = self.writer.received, self.total
        if self._unusable is not None:
            what = f"answered {self._unusable}"
        else:
            what = f"sent {received} of {total} bytes"
        return InvalidVideoError(
            f"{self._where()} {what} on its last allowed GET ({self.gets} this download); "
            "nothing was saved.",
            queue_id=self.queue_id,
        )

    @staticmethod
    def _after(earlier: int) -> str:
        if earlier <= 0:
            return "to the first GET from this client"
        return f"after {earlier} earlier GET{'s' if earlier != 1 else ''} from this client"

    @staticmethod
    def _host_said(said: str | None) -> str:
        return f" (the host said: {said.rstrip('.')})" if said else ""


def billing_error(
    path: str, response: httpx.Response, walk: UsageWalk | None = None
) -> VeniceError:
    """Build the error for a non-success answer of a billing GET (its body already read).

    The spec lists only 401 ("Authentication failed") for a refused key on /billing/*;
    an INFERENCE key, which may call only inference endpoints, is refused there too.
    Both 401 and 403 become BillingAccessError, an AuthenticationError. A 400 to a
    continuation page is a rejected cursor (BillingCursorError).
    """
    status = response.status_code
    message = server_message(response.content)
    said = f": {message.rstrip('.')}" if message else ""
    text = f"Venice answered {status} to GET {path}{said}."
    cls = error_for_status(status)
    if status in (401, 403):
        cls = BillingAccessError
        text += (
            " The key was refused for billing: it is not valid, or it is an INFERENCE key, "
            "which may call only inference endpoints."
        )
    elif status == 400 and walk is not None and walk.cursor is not None:
        cls = BillingCursorError
        text += (
            f" Venice rejected the cursor of page {walk.pages + 1} after {walk.read} "
            "entries had been read (it expired, was altered or belongs to another key)."
        )
    return cls(text, status=status, server_message=message)


def utc_text(moment: datetime) -> str:
    """Return moment in ISO 8601 UTC with a Z suffix, as the billing endpoints take it."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


class UsageWalk:
    """One walk through GET /billing/usage-history, page by page, shared by both clients.

    The first request carries the filters; each answer's `nextCursor` fetches the
    next page, sent alone (the spec refuses filters beside a cursor). The clients do
    the I/O: while not `done`, GET with `params()`, then `take(response)`.
    """

    def __init__(
        self,
        start: datetime | None,
        end: datetime | None,
        *,
        page_size: int = 1000,
        currency: str | None = None,
    ) -> None:
        for name, moment in (("start", start), ("end", end)):
            if moment is not None and (
                not isinstance(moment, datetime) or moment.utcoffset() is None
            ):
                raise InvalidRequestError(
                    f"{name} must be a timezone-aware datetime, such as "
                    "datetime(2026, 6, 1, tzinfo=timezone.utc); nothing was sent."
                )
        if start is not None and end is not None and end <= start:
            raise InvalidRequestError(
                f"end ({utc_text(end)}) must be later than start ({utc_text(start)}); "
                "nothing was sent."
            )
        if isinstance(page_size, bool) or page_size not in USAGE_PAGE_SIZES:
            raise InvalidRequestError(
                f"page_size must be a whole number from {USAGE_PAGE_SIZES.start} to "
                f"{USAGE_PAGE_SIZES.stop - 1}, not {page_size!r}; nothing was sent."
            )
        if currency is not None and currency not in USAGE_CURRENCIES:
            raise InvalidRequestError(
                f"currency must be one of {', '.join(USAGE_CURRENCIES)} or None, "
                f"not {currency!r}; nothing was sent."
            )
        self._first: dict[str, str] = {"pageSize": str(page_size)}
        if start is not None:
            self._first["startTimestamp"] = utc_text(start)
        if end is not None:
            self._first["endTimestamp"] = utc_text(end)
        if currency is not None:
            self._first["currency"] = currency
        self.cursor: str | None = None
        """The cursor the next request sends (None: the first page)."""
        self.done = False
        self.pages = 0
        """Pages read so far."""
        self.read = 0
        """Entries read so far."""
        self._cursors: set[str] = set()

    def params(self) -> dict[str, str]:
        """Query parameters of the next page: the filters first, then the cursor alone."""
        return {"cursor": self.cursor} if self.cursor is not None else dict(self._first)

    def take(self, response: httpx.Response) -> list[UsageEntry]:
        """Read one successful answer: its entries, and where the walk goes next."""
        page = _parse(UsagePage, _json(response, "usage-history"), "usage-history")
        self.pages += 1
        self.read += len(page.data)
        cursor = page.next_cursor
        if cursor is not None and cursor in self._cursors:
            # A service that hands out a cursor twice would keep this walk going forever.
            raise ServerError(
                f"GET {USAGE_HISTORY_PATH} repeated a cursor on page {self.pages}; "
                "the walk was stopped.",
                retryable=False,
            )
        if cursor is not None:
            self._cursors.add(cursor)
        self.cursor = cursor
        self.done = cursor is None
        return page.data


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise ServerError(f"Venice's {what} answer is not valid JSON.", retryable=False) from None


def _parse(model: type[_M], data: Any, what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ServerError(
            f"Venice's {what} answer does not match the documented schema: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}.",
            retryable=False,
        ) from None
