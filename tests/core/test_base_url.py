"""A base_url that cannot work is refused when the client is built, not retried for seconds."""

from __future__ import annotations

import httpx
import pytest

from prefect_venice import AsyncVeniceClient, CallerError, VeniceClient
from prefect_venice.errors import InvalidBaseURLError

KEY = "sk-test-" + "k" * 24


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError("nothing may be sent for a bad base_url")


@pytest.mark.parametrize("cls", [VeniceClient, AsyncVeniceClient])
@pytest.mark.parametrize(
    "base_url",
    ["ftp://x", "localhost:8000", "", "   ", "http://", "https://:8000/api/v1", "http://h:port"],
)
def test_a_base_url_without_http_scheme_and_host_fails_at_once(
    cls: type[VeniceClient] | type[AsyncVeniceClient], base_url: str
) -> None:
    with pytest.raises(InvalidBaseURLError) as caught:
        cls(KEY, base_url=base_url, transport=httpx.MockTransport(never_called))
    error = caught.value
    assert isinstance(error, CallerError)
    assert not error.retryable
    assert error.status is None
    text = str(error)
    assert repr(base_url) in text
    assert "https://api.venice.ai/api/v1" in text  # the expected form
    assert "http(s)" in text


@pytest.mark.parametrize(
    "base_url",
    ["user:hunter2-secret@localhost:8000", "ftp://user:hunter2-secret@example.com/api/v1"],
)
def test_credentials_in_a_bad_base_url_never_reach_the_message(base_url: str) -> None:
    with pytest.raises(InvalidBaseURLError) as caught:
        VeniceClient(KEY, base_url=base_url)
    text = str(caught.value)
    assert "hunter2-secret" not in text
    assert "user:" not in text
    assert "<credentials redacted>@" in text
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_the_api_key_given_as_base_url_by_mistake_is_redacted() -> None:
    with pytest.raises(InvalidBaseURLError) as caught:
        VeniceClient(KEY, base_url=KEY)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("base_url", "kept"),
    [
        ("https://api.venice.ai/api/v1/", "https://api.venice.ai/api/v1"),
        ("http://127.0.0.1:8000/api/v1", "http://127.0.0.1:8000/api/v1"),
        ("HTTPS://API.VENICE.AI/api/v1", "HTTPS://API.VENICE.AI/api/v1"),
        ("http://[::1]:8000/api/v1", "http://[::1]:8000/api/v1"),
    ],
)
def test_good_base_urls_are_kept_without_the_trailing_slash(base_url: str, kept: str) -> None:
    with VeniceClient(KEY, base_url=base_url) as client:
        assert client.base_url == kept


def test_the_client_repr_hides_credentials_in_the_base_url() -> None:
    with VeniceClient(KEY, base_url="https://user:hunter2-secret@proxy.example/api/v1") as client:
        assert "hunter2-secret" not in repr(client)
        assert "proxy.example" in repr(client)
