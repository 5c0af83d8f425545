"""Unit tests of the pure parts: models vs swagger, errors, retry, polling, media, writer."""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_venice import errors
from prefect_venice.download import VideoWriter
from prefect_venice.errors import InputMediaError, InvalidVideoError, WaitTimeoutError
from prefect_venice.media import IMAGE_MAX_BYTES, sniff_mime_type, to_data_url
from prefect_venice.models import (
    CompleteRequest,
    Processing,
    QueuedJob,
    QueueRequest,
    QuoteRequest,
    RetrieveRequest,
)
from prefect_venice.polling import PollPolicy, WaitClock
from prefect_venice.retry import RetryPolicy

# The repository's copy of the vendor's spec (source and date: tests/spec/README.md).
SWAGGER = Path(__file__).resolve().parents[1] / "spec" / "swagger.yaml"
MP4_HEAD = b"\x00\x00\x00\x18ftypisom"


# Models against swagger.yaml ----------------------------------------------------


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    spec = yaml.safe_load(SWAGGER.read_text())
    return spec["components"]["schemas"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("QueueVideoRequest", QueueRequest),
        ("QuoteVideoRequest", QuoteRequest),
        ("RetrieveVideoRequest", RetrieveRequest),
        ("CompleteVideoRequest", CompleteRequest),
    ],
)
def test_request_models_match_swagger_field_by_field(
    schemas: dict[str, Any], schema: str, model: type[Any]
) -> None:
    spec = schemas[schema]
    assert set(model.model_fields) == set(spec["properties"])
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert required == set(spec["required"])


def test_optional_fields_are_omitted_from_the_payload() -> None:
    request = QueueRequest(model="m", prompt="p", duration="5s", aspect_ratio="16:9")
    assert request.to_payload() == {
        "model": "m",
        "prompt": "p",
        "duration": "5s",
        "aspect_ratio": "16:9",
    }
    assert RetrieveRequest(model="m", queue_id="q").to_payload() == {"model": "m", "queue_id": "q"}


def test_processing_reads_the_documented_answer() -> None:
    status = Processing.model_validate(
        {"status": "PROCESSING", "average_execution_time": 145000, "execution_duration": 53200}
    )
    assert (status.average_execution_time_ms, status.execution_duration_ms) == (145000, 53200)


def test_queued_job_hides_its_link_but_round_trips_it() -> None:
    link = "https://private-share.venice.ai/v1/share/read/abcdef123456"
    job = QueuedJob.model_validate({"model": "m", "queue_id": "q", "download_url": link})
    assert link not in repr(job) and link not in job.model_dump_json()
    assert job.download_url is not None and job.download_url.get_secret_value() == link


# Errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 410, 413, 422, 429, 500, 503])
def test_each_documented_status_has_its_own_class(status: int) -> None:
    cls = errors.error_for_status(status)
    assert cls not in (errors.VeniceError, errors.CallerError, errors.AccountError)
    assert cls.action and cls.__doc__


def test_errors_pickle_with_their_fields() -> None:
    error = errors.ServerError("boom", status=500, server_message="sm", queue_id="q")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.server_message, copy.queue_id, str(copy)) == (
        500,
        "sm",
        "q",
        str(error),
    )


def test_retryable_flags_follow_who_must_act() -> None:
    assert errors.ServiceUnavailableError("x").retryable
    assert errors.RateLimitError("x").retryable
    assert not errors.BadRequestError("x").retryable
    assert not errors.OutcomeUnknownError("x").retryable


# Retry policy -------------------------------------------------------------------


def test_queue_retries_only_429_and_500() -> None:
    policy = RetryPolicy()
    assert [s for s in (400, 429, 500, 503) if policy.retries_status("queue", s)] == [429, 500]
    assert policy.retries_status("retrieve", 503)


def test_backoff_is_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, rng=random.Random(0))
    delays = [policy.backoff(attempt) for attempt in range(10) for _ in range(20)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert max(delays) > 2.0  # later attempts reach well past the base


def test_rate_limit_wait_prefers_the_reset_header() -> None:
    policy = RetryPolicy(clock=lambda: 1000.0)
    assert policy.rate_limit_wait({"x-ratelimit-reset-requests": "1012.5"}) == 12.5
    assert policy.rate_limit_wait({"retry-after": "7"}) == 7.0
    assert policy.rate_limit_wait({}) is None


# Polling ----------------------------------------------------------------------------


def status(average_s: float, done_s: float) -> Processing:
    return Processing(
        average_execution_time_ms=average_s * 1000, execution_duration_ms=done_s * 1000
    )


def test_poll_waits_half_the_remaining_estimate() -> None:
    policy = PollPolicy(min_interval=1, max_interval=60, jitter=0)
    assert policy.next_delay(status(100, 40)) == 30
    assert policy.next_delay(status(100, 99)) == 1  # clamped to min_interval
    assert policy.next_delay(status(1000, 0)) == 60  # clamped to max_interval


def test_poll_backs_off_once_the_estimate_is_exceeded() -> None:
    policy = PollPolicy(min_interval=2, max_interval=60, jitter=0, overdue_factor=2)
    assert [policy.next_delay(status(10, 20), n) for n in range(1, 5)] == [4, 8, 16, 32]


def test_wait_clock_times_out_naming_the_job() -> None:
    now = [0.0]
    clock = WaitClock(
        "job-1", max_wait_seconds=10, policy=PollPolicy(), on_progress=None, clock=lambda: now[0]
    )
    assert clock.after_processing(status(100, 5)) <= 10
    now[0] = 11.0
    with pytest.raises(WaitTimeoutError, match=r"job-1 was still processing after 11\.0 s"):
        clock.after_processing(status(100, 16))


# Media --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n0000", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a", "image/gif"),
        (b"ID3\x04", "audio/mpeg"),
        (b"\xff\xfb\x90\x00", "audio/mpeg"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"hello", None),
    ],
)
def test_mime_type_is_sniffed_from_magic_bytes(head: bytes, mime: str | None) -> None:
    assert sniff_mime_type(head) == mime


def test_a_file_becomes_a_data_url_with_its_real_type(tmp_path: Path) -> None:
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    assert to_data_url(misnamed).startswith("data:image/png;base64,iVBORw0KGgo")


def test_urls_pass_through() -> None:
    for url in ("https://example.com/a.png", "data:image/png;base64,AAAA"):
        assert to_data_url(url) == url


def test_an_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(IMAGE_MAX_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(InputMediaError, match="at most 18 MB"):
        to_data_url(big)


def test_audio_where_an_image_is_expected_is_refused(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    song.write_bytes(b"ID3\x04" + b"\0" * 10)
    with pytest.raises(InputMediaError, match="audio/mpeg"):
        to_data_url(song, "image")
    assert to_data_url(song, "audio").startswith("data:audio/mpeg;base64,")


# Video writer -------------------------------------------------------------------------


def write(destination: Path, chunks: list[bytes], expected: int | None = None) -> None:
    with VideoWriter(destination, expected_length=expected) as writer:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()


def test_writer_renames_a_checked_file_into_place(tmp_path: Path) -> None:
    destination = tmp_path / "sub" / "v.mp4"
    with VideoWriter(destination, expected_length=len(MP4_HEAD) + 4) as writer:
        writer.write(MP4_HEAD[:3])
        writer.write(MP4_HEAD[3:] + b"data")
        saved = writer.commit()
    assert destination.read_bytes() == MP4_HEAD + b"data"
    assert saved.size_bytes == len(MP4_HEAD) + 4
    assert os.listdir(destination.parent) == ["v.mp4"]
    assert destination.stat().st_mode & 0o777 != 0o600


@pytest.mark.parametrize(
    ("chunks", "expected", "reason"),
    [
        ([], None, "empty"),
        ([MP4_HEAD], 100, "truncated"),
        ([b"<html>not a video</html>"], None, "not an MP4"),
    ],
)
def test_writer_refuses_bad_files_and_leaves_nothing(
    tmp_path: Path, chunks: list[bytes], expected: int | None, reason: str
) -> None:
    destination = tmp_path / "v.mp4"
    with pytest.raises(InvalidVideoError, match=reason):
        write(destination, chunks, expected)
    assert os.listdir(tmp_path) == []


def test_writer_keeps_an_existing_file_when_the_new_one_fails(tmp_path: Path) -> None:
    destination = tmp_path / "v.mp4"
    destination.write_bytes(b"old")
    with pytest.raises(RuntimeError), VideoWriter(destination) as writer:
        writer.write(MP4_HEAD)
        raise RuntimeError("connection dropped")
    assert destination.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_every_public_name_has_a_docstring() -> None:
    import prefect_venice

    for name in prefect_venice.__all__:
        if name in ("VeniceCredentials", "DEFAULT_BASE_URL", "RetrieveResult"):
            continue
        assert re.search(r"\w", getattr(prefect_venice, name).__doc__ or ""), name
