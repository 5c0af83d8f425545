"""The VeniceCredentials block: an API key and endpoint, and the clients built from them."""

from __future__ import annotations

import os
from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, HttpUrl, SecretStr

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

    api_key: SecretStr | None = Field(
        default=None,
        description=(
            "Venice API key; when empty, the VENICE_API_KEY environment variable of the "
            "process running the flow is used."
        ),
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Root URL of the Venice API, e.g. a local emulator's URL for tests.",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to wait for a single HTTP answer from Venice.",
    )

    def resolve_api_key(self) -> SecretStr:
        """Return the stored API key, or the one in VENICE_API_KEY; fail clearly if neither."""
        if self.api_key is not None and self.api_key.get_secret_value():
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
