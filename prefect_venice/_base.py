"""The one place that builds requests and interprets answers, for both clients."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from ._redact import install_log_filter, redact, redact_url, register_secret
from .download import CHUNK_SIZE, VideoWriter, resolve_destination
from .errors import (
    InvalidBaseURLError,
    InvalidVideoError,
    NetworkError,
    OutcomeUnknownError,
    ServerError,
    VeniceError,
    VideoLinkMissingError,
    error_for_status,
)
from .models import (
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
    VideoModel,
)
from .polling import PollPolicy, WaitClock
from .retry import Endpoint, RetryPolicy
from .validation import find_model, validate_request

__all__ = ["DEFAULT_BASE_URL", "BaseVeniceClient", "check_base_url"]

DEFAULT_BASE_URL = "https://api.venice.ai/api/v1"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "prefect-venice/0.1"

_PATHS: dict[Endpoint, str] = {
    "models": "/models",
    "quote": "/video/quote",
    "queue": "/video/queue",
    "retrieve": "/video/retrieve",
    "complete": "/video/complete",
}
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
        chunk_size: int = CHUNK_SIZE,
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
        self._models: list[VideoModel] | None = None

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

    # Retry decisions ------------------------------------------------------------

    def _decide(
        self,
        endpoint: Endpoint,
        attempt: int,
        outcome: httpx.Response | httpx.HTTPError,
        *,
        queue_id: str | None = None,
        link: str | None = None,
    ) -> float:
        """Return the delay before retry number attempt+1, or raise the final error.

        `outcome` is a failed answer (its body already read) or the httpx error.
        Call this outside any `except` block: an error raised there would chain to
        the httpx error, which holds the request with its key or private link.
        """
        last = attempt + 1 >= self.retry.attempts_for(endpoint)
        if isinstance(outcome, httpx.HTTPError):
            retryable = isinstance(outcome, httpx.TransportError) and (
                self.retry.retries_transport_error(endpoint, outcome)
            )
            if last or not retryable:
                raise error_from_exception(
                    endpoint, outcome, queue_id=queue_id, link=link, attempts=attempt + 1
                ) from None
            return self.retry.backoff(attempt)
        if last or not self.retry.retries_status(endpoint, outcome.status_code):
            raise error_from_response(endpoint, outcome, queue_id=queue_id, link=link)
        return self.retry.delay_after_status(outcome.status_code, outcome.headers, attempt)

    def _wait_clock(
        self,
        job: QueuedJob,
        max_wait_seconds: float,
        poll: PollPolicy | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> WaitClock:
        return WaitClock(
            job.queue_id,
            max_wait_seconds=max_wait_seconds,
            policy=poll or self.poll,
            on_progress=on_progress,
            retry=self.retry,
        )

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
