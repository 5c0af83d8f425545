"""Contract tests against the REAL Venice API: our models and client still fit the service.

They run only where VENICE_API_KEY is set (`.venv/bin/pytest -m contract tests/contract`);
everywhere else they are skipped. Listing models and quoting are free. The one paid test
(a single shortest, cheapest video) also needs VENICE_CONTRACT_PAID=1 and refuses to
queue above VENICE_CONTRACT_MAX_USD (default $0.50). VENICE_BASE_URL points them at
another deployment of the API.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from prefect_venice import DEFAULT_BASE_URL, VeniceClient
from prefect_venice.errors import InvalidRequestError
from prefect_venice.models import QueuedJob, QueueRequest, VideoModel

API_KEY = os.environ.get("VENICE_API_KEY", "")
BASE_URL = os.environ.get("VENICE_BASE_URL", DEFAULT_BASE_URL)
PAID = os.environ.get("VENICE_CONTRACT_PAID") == "1"
MAX_USD = float(os.environ.get("VENICE_CONTRACT_MAX_USD", "0.50"))
PREFERRED_MODEL = "wan-2.5-preview-text-to-video"
QUOTED_CANDIDATES = 6
"""Text-to-video models quoted to find the cheapest one (quotes are free)."""

pytestmark = [
    pytest.mark.contract,
    pytest.mark.skipif(
        not API_KEY,
        reason="contract tests call the real Venice API: set VENICE_API_KEY to run them",
    ),
]


class CountingTransport(httpx.BaseTransport):
    """Passes every request on and counts those to /video/queue, the paid endpoint."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.queue_calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/video/queue"):
            self.queue_calls += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def client(transport: CountingTransport) -> Iterator[VeniceClient]:
    with VeniceClient(API_KEY, base_url=BASE_URL, timeout=60.0, transport=transport) as venice:
        yield venice


def _number(value: str) -> float:
    """The leading number of "5s", "720p" or "1.5s"; unknown shapes sort last."""
    match = re.match(r"\d+(\.\d+)?", value)
    return float(match.group()) if match else float("inf")


def cheapest_shape(model: VideoModel) -> QueueRequest:
    """The shortest, lowest-resolution request the model's constraints allow."""
    constraints = model.constraints
    assert constraints is not None, f"{model.id} lists no constraints"
    return QueueRequest(
        model=model.id,
        prompt="A paper boat drifting on a calm canal, soft morning light",
        duration=min(constraints.durations, key=_number),
        resolution=min(constraints.resolutions, key=_number) if constraints.resolutions else None,
        aspect_ratio=constraints.aspect_ratios[0] if constraints.aspect_ratios else None,
        audio=False if constraints.audio_configurable else None,
    )


def text_to_video_models(client: VeniceClient) -> list[VideoModel]:
    models = [
        model
        for model in client.list_video_models()
        if model.constraints is not None
        and model.constraints.model_type == "text-to-video"
        and model.constraints.durations
    ]
    assert models, "Venice lists no text-to-video model with durations"
    # The preferred model first: it is the one the docs and the flow default to.
    return sorted(models, key=lambda model: model.id != PREFERRED_MODEL)


def test_every_listed_video_model_and_its_constraints_parse() -> None:
    response = httpx.get(
        f"{BASE_URL}/models",
        params={"type": "video"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60.0,
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["data"]
    assert items, "GET /models?type=video listed nothing"

    failures: list[str] = []
    for item in items:
        try:
            model = VideoModel.model_validate(item)
        except ValidationError as exc:
            failures.append(f"{item.get('id')}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
            continue
        if model.constraints is None:
            failures.append(f"{model.id}: no model_spec.constraints")
    assert not failures, f"{len(failures)} of {len(items)} models do not parse: {failures}"


def test_the_client_lists_every_model_the_api_lists(client: VeniceClient) -> None:
    listed = client.list_video_models()

    assert listed
    assert all(model.type == "video" for model in listed)
    assert len({model.id for model in listed}) == len(listed)


def test_a_cheap_request_is_quoted_for_free(
    client: VeniceClient, transport: CountingTransport
) -> None:
    request = cheapest_shape(text_to_video_models(client)[0])

    quote = client.quote(request)

    assert 0 < quote.usd < 100, quote
    assert transport.queue_calls == 0


def test_a_bad_request_is_refused_by_our_validation_before_any_paid_call(
    client: VeniceClient, transport: CountingTransport
) -> None:
    model = text_to_video_models(client)[0]
    assert model.constraints is not None
    good = cheapest_shape(model)
    bad = good.model_copy(update={"duration": "7777s"})

    with pytest.raises(InvalidRequestError) as caught:
        client.queue(bad)

    assert transport.queue_calls == 0, "a request that fails validation reached /video/queue"
    for allowed in model.constraints.durations:
        assert allowed in str(caught.value)


@pytest.mark.skipif(
    not PAID, reason="paid: set VENICE_API_KEY and VENICE_CONTRACT_PAID=1 to generate one video"
)
def test_one_cheapest_video_end_to_end(
    client: VeniceClient, transport: CountingTransport, tmp_path: Path
) -> None:
    candidates = [cheapest_shape(m) for m in text_to_video_models(client)[:QUOTED_CANDIDATES]]
    priced = sorted((client.quote(request).usd, request) for request in candidates)
    usd, request = priced[0]
    if usd > MAX_USD:
        pytest.skip(
            f"the cheapest candidate ({request.model}) costs ${usd:.4f}, above "
            f"VENICE_CONTRACT_MAX_USD=${MAX_USD:.2f}; nothing was queued"
        )

    job: QueuedJob = client.queue(request)
    try:
        saved = client.wait_for_video(job, tmp_path, max_wait_seconds=1200)
        assert saved.path.is_file()
        assert saved.size_bytes == saved.path.stat().st_size > 0
        with saved.path.open("rb") as video:
            assert video.read(8)[4:8] == b"ftyp"
    finally:
        # Clean up whatever happened: the link (private models) and the media on Venice.
        if job.download_url is not None:
            client.revoke(job.download_url)
        client.complete(job)
    assert transport.queue_calls == 1
