"""Every error prefect-venice raises, grouped by who must act on it."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccountError",
    "AuthenticationError",
    "BadRequestError",
    "BillingAccessError",
    "BillingCursorError",
    "BudgetExceededError",
    "CallerError",
    "ConsentRequiredError",
    "ContentViolationError",
    "DestinationError",
    "InputMediaError",
    "InsufficientBalanceError",
    "InvalidBaseURLError",
    "InvalidRequestError",
    "InvalidVideoError",
    "JobFailedAfterQueueError",
    "LinkExhaustedError",
    "LinkGoneError",
    "NetworkError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RegionRestrictedError",
    "ServerError",
    "ServiceError",
    "ServiceUnavailableError",
    "SpendLimitError",
    "UnconfirmedQueueError",
    "UnknownModelError",
    "VeniceError",
    "VideoLinkMissingError",
    "WaitTimeoutError",
    "error_for_status",
]


class VeniceError(Exception):
    """Base class: something went wrong talking to Venice or handling its answer.

    Every error carries the HTTP `status` (None for local errors), the server's
    own `server_message`, whether retrying the same call can help (`retryable`),
    and `action`: one sentence saying what to do. `str(error)` is the message
    followed by that sentence. No message ever contains the API key or a whole
    private download link.
    """

    action: ClassVar[str] = "See the message above."
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        retryable: bool | None = None,
        queue_id: str | None = None,
    ) -> None:
        # Only `message` goes into args, so the default pickling protocol
        # (cls(*args) then __dict__) rebuilds the error exactly: Prefect pickles
        # exceptions into task states.
        super().__init__(message)
        self.message = message
        self.status = status
        self.server_message = server_message
        self.queue_id = queue_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} {self.action}".strip()


# Caller errors: the request or its inputs must change -------------------------


class CallerError(VeniceError):
    """The request itself is wrong; resending it unchanged will fail again."""


class InvalidBaseURLError(CallerError):
    """The client's base_url is not an absolute http(s) URL with a host (nothing was sent)."""

    action = (
        "Pass the API root as an absolute URL, such as https://api.venice.ai/api/v1 "
        "(or the local emulator's base_url)."
    )


class InvalidRequestError(CallerError):
    """A request failed local validation against the model's constraints (nothing was sent)."""

    action = "Change the request to use one of the allowed values; nothing was sent or charged."


class UnknownModelError(InvalidRequestError):
    """The model id is not in Venice's list of video models."""

    action = "Use one of the listed video model ids; nothing was sent or charged."


class InputMediaError(InvalidRequestError):
    """A local image or audio file cannot be used (missing, wrong type or too large)."""

    action = "Pass a smaller file of a supported type, or an http(s) URL; nothing was sent."


class BudgetExceededError(CallerError):
    """The quoted price is above the caller's budget, so nothing was queued."""

    action = "Raise the budget or choose a cheaper duration, resolution or model."


class SpendLimitError(BudgetExceededError):
    """A credentials block's spend cap for the period does not cover this quote."""

    action = "Wait for the next period, or raise spend_limit_usd on the credentials block."


class BadRequestError(CallerError):
    """400: Venice rejected the request parameters."""

    action = "Check the request against the model's constraints (GET /models?type=video)."


class BillingCursorError(BadRequestError):
    """400 to a usage-history continuation: the cursor expired, was altered or is another key's."""

    action = "Read the usage history again from the first page; entries already read will repeat."


class NotFoundError(CallerError):
    """404: the job or its media is unknown, expired or deleted."""

    action = (
        "Check the model and queue_id; media that expired or was deleted cannot be fetched again."
    )


class ConsentRequiredError(CallerError):
    """409: the model needs provider consent attestations (`consents`) before queuing."""

    action = "Read the provider's policy and resend with the `consents` field set."


class LinkGoneError(CallerError):
    """410: the private download link expired, was fully used or was revoked."""

    action = "Links are short-lived and single-purpose; queue a new generation for another file."


class LinkExhaustedError(LinkGoneError):
    """429 from a private link: its few GETs appear to be used up.

    Venice's guide: repeated fetches of the same link show up as 429. Waiting does
    not give the link new GETs, so once this client has fetched the link a 429 is
    final at once (a first GET that meets 429 gets one short wait). The message
    says how many GETs this client made; `status` is 429.
    """

    action = (
        "Stop fetching this link: use a copy saved earlier, or queue a new generation "
        "for another file."
    )


class PayloadTooLargeError(CallerError):
    """413: the request body (usually an inline image or audio) is too large."""

    action = "Reduce the size of the image or audio, or pass it as an http(s) URL."


class ContentViolationError(CallerError):
    """422: the prompt or media violates Venice's or the provider's content policy."""

    action = "Change the prompt or input media."


class DestinationError(CallerError):
    """Where the video should be saved cannot take it (checked before anything is paid)."""

    action = "Choose another output folder, file name or storage key."


class VideoLinkMissingError(CallerError):
    """The job finished at a private link, but the queue answer's download_url is not at hand."""

    action = (
        "Pass the job exactly as returned by queue() (its download_url is only sent once); "
        "without it this video cannot be fetched."
    )


class JobFailedAfterQueueError(VeniceError):
    """A job was queued and paid for, then a later step (wait, save, ...) failed."""

    action = "Retry this flow run: it resumes the same job without paying again."


class WaitTimeoutError(CallerError):
    """The video was not ready within max_wait_seconds; the job may still finish."""

    action = "Wait longer, or resume polling later with the same queue_id (no new charge)."


# Account errors: the account, key or plan must change -------------------------


class AccountError(VeniceError):
    """The API key, balance, region or rate limit stands in the way."""


class AuthenticationError(AccountError):
    """401: the API key was refused (or the model needs a Pro account)."""

    action = "Check the API key (VENICE_API_KEY or the credentials block) and the account plan."


class BillingAccessError(AuthenticationError):
    """401 (or 403) from /billing/*: the key is invalid, or an INFERENCE key (no billing access)."""

    action = (
        "Check the key: the balance and usage history need an ADMIN API key (an INFERENCE "
        "key may call only inference endpoints, so it can still make videos)."
    )


class InsufficientBalanceError(AccountError):
    """402: the account balance does not cover the generation."""

    action = "Add funds to the Venice account, then queue again."


class RegionRestrictedError(AccountError):
    """403: the model is unavailable in the caller's region."""

    action = "Choose another model; this one is not offered in your region."


class RateLimitError(AccountError):
    """429: too many requests; retried automatically until the retry budget ran out."""

    action = "Slow down: poll less often, run fewer jobs at once, or wait for the limit to reset."
    retryable = True


# Service errors: Venice failed; waiting and retrying may help -----------------


class ServiceError(VeniceError):
    """Venice failed to serve a well-formed request."""

    retryable = True


class ServerError(ServiceError):
    """500: inference or processing failed on Venice's side."""

    action = "Retry later with backoff; contact Venice support if it persists."


class ServiceUnavailableError(ServiceError):
    """503: the model is at capacity."""

    action = "Retry later with backoff."


class InvalidVideoError(ServiceError):
    """The delivered file is not a complete MP4 (empty, truncated or not MP4); it was discarded."""

    action = "Retrieve or download the video again."


# Network errors: the answer never arrived --------------------------------------


class NetworkError(VeniceError):
    """The connection failed or timed out before a complete answer arrived."""

    action = "Check the network and the base URL, then retry."
    retryable = True


class OutcomeUnknownError(NetworkError):
    """A paid /video/queue call was sent but its answer never came: a job may exist."""

    action = (
        "Do NOT queue again blindly: check your Venice dashboard or queue for a new job "
        "before re-queuing, or you may pay twice."
    )
    retryable = False


class UnconfirmedQueueError(OutcomeUnknownError):
    """An earlier attempt sent the paid queue request for this job key and recorded no answer."""

    action = (
        "Do not queue this video again blindly: check Venice's usage history for a charge at "
        "the time the message gives; if there is none, clear the record with "
        "`prefect-venice jobs forget KEY` and run again."
    )


_STATUS_ERRORS: dict[int, type[VeniceError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: RegionRestrictedError,
    404: NotFoundError,
    409: ConsentRequiredError,
    410: LinkGoneError,
    413: PayloadTooLargeError,
    422: ContentViolationError,
    429: RateLimitError,
    500: ServerError,
    503: ServiceUnavailableError,
}


def error_for_status(status: int) -> type[VeniceError]:
    """Return the error class for an HTTP status (ServerError/BadRequestError for the rest)."""
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    return ServerError if status >= 500 else BadRequestError
