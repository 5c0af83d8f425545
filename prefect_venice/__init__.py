"""prefect-venice: Venice.ai video generation for Prefect 3 (the core never imports Prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import DEFAULT_BASE_URL
from .client import AsyncVeniceClient, VeniceClient
from .errors import (
    AccountError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CallerError,
    ConsentRequiredError,
    ContentViolationError,
    DestinationError,
    InputMediaError,
    InsufficientBalanceError,
    InvalidRequestError,
    InvalidVideoError,
    JobFailedAfterQueueError,
    LinkGoneError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    RateLimitError,
    RegionRestrictedError,
    ServerError,
    ServiceError,
    ServiceUnavailableError,
    SpendLimitError,
    UnconfirmedQueueError,
    UnknownModelError,
    VeniceError,
    VideoLinkMissingError,
    WaitTimeoutError,
)
from .media import to_data_url
from .models import (
    Processing,
    Progress,
    QueuedJob,
    QueueRequest,
    Quote,
    QuoteRequest,
    ReadyAtLink,
    RetrieveResult,
    VideoConstraints,
    VideoModel,
    VideoSaved,
)
from .polling import PollPolicy
from .retry import RetryPolicy


def _map_checkout_folders() -> None:
    """Let a Python started in the checkout's root find blocks/, tasks/ and flows/.

    The installed package maps the root's `blocks/`, `tasks/` and `flows/` into
    `prefect_venice` (pyproject's package-dir). A Python whose path starts with the
    checkout's root (`python -c ...`, or `prefect server start` there, which imports
    from the working directory) finds this folder first, without them, and failed
    with "No module named 'prefect_venice.blocks'". Here, and only in a checkout
    that has those folders beside this one, they are added to the package's path.
    """
    here = Path(__file__).parent
    root = here.parent
    if (here / "blocks").exists() or not (root / "pyproject.toml").is_file():
        return  # an installed package, or not this project's checkout
    if all((root / name / "__init__.py").is_file() for name in ("blocks", "tasks", "flows")):
        __path__.append(str(root))


_map_checkout_folders()

if TYPE_CHECKING:
    from prefect_venice.blocks import VeniceCredentials

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "AccountError",
    "AsyncVeniceClient",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CallerError",
    "ConsentRequiredError",
    "ContentViolationError",
    "DestinationError",
    "InputMediaError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "InvalidVideoError",
    "JobFailedAfterQueueError",
    "LinkGoneError",
    "NetworkError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PollPolicy",
    "Processing",
    "Progress",
    "QueueRequest",
    "QueuedJob",
    "Quote",
    "QuoteRequest",
    "RateLimitError",
    "ReadyAtLink",
    "RegionRestrictedError",
    "RetrieveResult",
    "RetryPolicy",
    "ServerError",
    "ServiceError",
    "ServiceUnavailableError",
    "SpendLimitError",
    "UnconfirmedQueueError",
    "UnknownModelError",
    "VeniceClient",
    "VeniceCredentials",
    "VeniceError",
    "VideoConstraints",
    "VideoLinkMissingError",
    "VideoModel",
    "VideoSaved",
    "WaitTimeoutError",
    "to_data_url",
]


#: Names served on first use by `__getattr__`: they need Prefect, the rest of the core does not.
_LAZY = ("VeniceCredentials",)


def __getattr__(name: str) -> Any:
    # The credentials block needs Prefect; importing it lazily keeps
    # `import prefect_venice` (the client, the emulator, the CLI) Prefect-free.
    if name == "VeniceCredentials":
        from prefect_venice.blocks import VeniceCredentials

        return VeniceCredentials
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Listing the lazy names lets `inspect.getmembers(prefect_venice)` find them, which is
    # how `prefect block register -m prefect_venice` finds the block. Listing imports nothing.
    return sorted({*globals(), *_LAZY})
