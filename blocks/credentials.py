"""The VeniceCredentials block: an API key and endpoint, and the clients built from them."""

from __future__ import annotations

import os
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, HttpUrl, SecretStr, field_validator

from prefect_venice.client import DEFAULT_BASE_URL, AsyncVeniceClient, VeniceClient
from prefect_venice.errors import AuthenticationError

__all__ = ["VENICE_API_KEY_ENV", "VeniceCredentials"]

VENICE_API_KEY_ENV = "VENICE_API_KEY"


class VeniceCredentials(CredentialsBlock):
    """Block holding a Venice API key and endpoint for use in tasks and flows.

    Where no key is stored in the block, the `VENICE_API_KEY` environment
    variable of the process that runs the flow is used instead, so a worker can
    keep the key out of the Prefect database altogether.

    Args:
        api_key: Venice API key, sent only as a bearer header to `base_url`.
        base_url: Root of the Venice API (the local emulator's URL in tests).
        timeout: Seconds to wait for one HTTP answer.

    Examples:
        Load stored Venice credentials:
        ```python
        from prefect_venice import VeniceCredentials
        venice_credentials_block = VeniceCredentials.load("BLOCK_NAME")
        ```

        Get a Venice client:
        ```python
        from prefect_venice import VeniceCredentials
        venice_credentials_block = VeniceCredentials.load("BLOCK_NAME")
        with venice_credentials_block.get_client() as client:
            models = client.list_video_models()
        ```

    """

    _block_type_name = "Venice Credentials"
    _logo_url = HttpUrl("https://venice.ai/apple-touch-icon.png")
    _documentation_url = HttpUrl("https://docs.venice.ai/overview/guides/video-generation")

    # A plain SecretStr with an empty default: the UI shows one password box, with no
    # "null" toggle; empty means "use the worker's VENICE_API_KEY".
    api_key: SecretStr = Field(
        default=SecretStr(""),
        title="API key",
        description=(
            "Your Venice API key, sent only as a bearer header to the base URL. Leave it "
            "empty to keep the key out of Prefect: the VENICE_API_KEY environment variable "
            "of the process that runs the flow is used instead."
        ),
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="Base URL",
        description=(
            "Root URL of the Venice API. Keep the default for Venice; a local emulator's URL "
            "(e.g. http://127.0.0.1:8765/api/v1) for tests and demos."
        ),
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        title="Timeout (seconds)",
        description="Seconds to wait for a single HTTP answer from Venice.",
    )
    spend_limit_usd: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        title="Spend limit (USD per period)",
        description=(
            "Most that all runs using this block may spend per period together; each paid "
            "call reserves its quote first, on the Prefect server, and stops unpaid when it "
            "does not fit. Empty: no cap. Run parameters cannot raise or remove it."
        ),
    )
    spend_period: Literal["day", "week", "month"] = Field(
        default="day",
        title="Spend period",
        description="The period the spend limit covers: a calendar day, ISO week or month.",
    )
    spend_timezone: str = Field(
        default="UTC",
        title="Spend time zone",
        description="Where the period's days begin, e.g. UTC or Europe/Rome.",
    )

    @field_validator("spend_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone, e.g. UTC or Europe/Rome") from None
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _no_key_is_an_empty_key(cls, value: object) -> object:
        # Blocks saved before the field lost `| None` hold null: read it as "no key".
        return "" if value is None else value

    def resolve_api_key(self) -> SecretStr:
        """Return the stored API key, or the one in VENICE_API_KEY; fail clearly if neither."""
        if self.api_key.get_secret_value():
            return self.api_key
        from_env = os.environ.get(VENICE_API_KEY_ENV, "")
        if from_env:
            return SecretStr(from_env)
        raise AuthenticationError(
            "No Venice API key: the credentials block stores none and the "
            f"{VENICE_API_KEY_ENV} environment variable is not set."
        )

    def get_client(self, **options: Any) -> VeniceClient:
        """Return a synchronous Venice client; use it as a context manager to close it.

        `options` go to VeniceClient unchanged (e.g. `retry=` or `poll=` policies).
        """
        return VeniceClient(
            self.resolve_api_key(), base_url=self.base_url, timeout=self.timeout, **options
        )

    def get_async_client(self, **options: Any) -> AsyncVeniceClient:
        """Return an asynchronous Venice client; create one per task and event loop.

        `options` go to AsyncVeniceClient unchanged (e.g. `retry=` or `poll=` policies).
        """
        return AsyncVeniceClient(
            self.resolve_api_key(), base_url=self.base_url, timeout=self.timeout, **options
        )
