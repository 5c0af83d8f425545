"""The request log: every answered request with its wall-clock time, and peak rates from it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from emulator_support import (
    EmulatorFactory,
    api,
    private_body,
    queue,
    queue_body,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator, FaultConfig, ledger, peak_per_window

SECRET_KEY = "sk-emulator-very-secret-0123456789"


def entry(endpoint: str, at: float) -> dict[str, Any]:
    return {"endpoint": endpoint, "method": "POST", "status": 200, "time": at, "queue_id": None}


def test_fresh_log_is_empty(emulator: Emulator) -> None:
    assert emulator.requests() == []


def test_log_holds_each_call_in_order(emulator: Emulator) -> None:
    with api(emulator) as client:
        client.get("/models", params={"type": "video"})
        client.post("/video/quote", json=queue_body())
        job = queue(client)
        client.post("/video/complete", json=ref(job))
    log = emulator.requests()
    assert [(e["endpoint"], e["method"], e["status"]) for e in log] == [
        ("models", "GET", 200),
        ("quote", "POST", 200),
        ("queue", "POST", 200),
        ("complete", "POST", 200),
    ]
    assert [e["queue_id"] for e in log] == [None, None, job["queue_id"], job["queue_id"]]


def test_log_times_are_wall_clock_and_in_order(emulator: Emulator) -> None:
    before = time.time()
    with api(emulator) as client:
        for _ in range(5):
            client.post("/video/quote", json=queue_body())
    after = time.time()
    times = [e["time"] for e in emulator.requests()]
    assert len(times) == 5
    assert times == sorted(times)
    assert before <= times[0] and times[-1] <= after


def test_log_records_refusals_and_unauthorised_calls(emulator: Emulator) -> None:
    httpx.post(f"{emulator.base_url}/video/quote", json=queue_body())
    with api(emulator) as client:
        client.post("/video/queue", json=queue_body(duration="7s"))
    statuses = [(e["endpoint"], e["status"]) for e in emulator.requests()]
    assert statuses == [("quote", 401), ("queue", 400)]


def test_dropped_answer_is_logged_as_dropped_with_its_job(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_first=1))
    with api(emulator) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/video/queue", json=queue_body())
    (logged,) = emulator.requests()
    (queue_id,) = emulator.ledger()["jobs"]
    assert logged["status"] == "dropped"
    assert logged["queue_id"] == queue_id


def test_link_calls_are_logged_with_their_job(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = client.post("/video/queue", json=private_body()).json()
        wait_until_done(client, job)
    emulator.reset_ledger()
    httpx.get(job["download_url"], headers={"Range": "bytes=10-"})
    httpx.delete(job["download_url"])
    log = emulator.requests()
    assert [(e["endpoint"], e["method"], e["status"]) for e in log] == [
        ("link_get", "GET", 206),
        ("link_delete", "DELETE", 204),
    ]
    assert {e["queue_id"] for e in log} == {job["queue_id"]}


def test_log_holds_no_api_key_and_no_link_token(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(api_key=SECRET_KEY)
    with api(emulator) as client:
        job = client.post("/video/queue", json=private_body()).json()
        wait_until_done(client, job)
    token = job["download_url"].rsplit("/", 1)[-1]
    httpx.get(job["download_url"])
    httpx.get(job["download_url"], headers={"Authorization": f"Bearer {SECRET_KEY}"})
    served = httpx.get(emulator.requests_url).text
    assert "link_get" in served
    assert SECRET_KEY not in served
    assert token not in served
    assert token not in json.dumps(emulator.requests())


def test_log_is_served_without_auth(emulator: Emulator) -> None:
    with api(emulator) as client:
        queue(client)
    served = httpx.get(emulator.requests_url)
    assert served.status_code == 200
    assert served.json() == {"requests": emulator.requests()}


def test_reading_the_log_or_the_ledger_is_not_logged(emulator: Emulator) -> None:
    httpx.get(emulator.requests_url)
    httpx.get(emulator.ledger_url)
    assert emulator.requests() == []


def test_reset_ledger_empties_the_log(emulator: Emulator) -> None:
    with api(emulator) as client:
        queue(client)
        emulator.reset_ledger()
        client.post("/video/quote", json=queue_body())
    assert [e["endpoint"] for e in emulator.requests()] == ["quote"]


def test_log_keeps_only_the_most_recent_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "REQUEST_LOG_SIZE", 3)
    record = ledger.Ledger()
    for at in range(5):
        record.request(ledger.RequestRecord("quote", "POST", 200, float(at), None))
    assert [e["time"] for e in record.requests_snapshot()] == [2.0, 3.0, 4.0]


def test_default_log_size_is_a_hundred_thousand() -> None:
    assert ledger.Ledger().requests.maxlen == 100_000


def test_peak_of_no_calls_is_zero() -> None:
    assert peak_per_window([], "queue") == 0


def test_peak_counts_only_the_named_endpoint() -> None:
    entries = [entry("queue", 1.0), entry("retrieve", 1.5), entry("queue", 2.0)]
    assert peak_per_window(entries, "queue") == 2
    assert peak_per_window(entries, "retrieve") == 1


def test_peak_window_slides_across_minute_boundaries() -> None:
    # 30 calls late in one minute and 30 early in the next: 60 within one sliding minute.
    entries = [entry("queue", 50 + i * 0.3) for i in range(30)]
    entries += [entry("queue", 61 + i * 0.3) for i in range(30)]
    assert peak_per_window(entries, "queue") == 60


def test_calls_a_whole_window_apart_do_not_share_it() -> None:
    entries = [entry("queue", at) for at in (0.0, 60.0, 120.0)]
    assert peak_per_window(entries, "queue") == 1
    assert peak_per_window(entries, "queue", window=60.001) == 2


def test_peak_does_not_depend_on_the_order_of_entries() -> None:
    entries = [entry("queue", at) for at in (100.0, 0.0, 30.0, 59.0, 70.0)]
    assert peak_per_window(entries, "queue") == 3
    assert peak_per_window(entries, "queue", window=10.0) == 1


def test_peak_of_a_live_log(emulator: Emulator) -> None:
    with api(emulator) as client:
        for _ in range(4):
            client.post("/video/quote", json=queue_body())
        queue(client)
    assert peak_per_window(emulator.requests(), "quote") == 4
    assert peak_per_window(emulator.requests(), "queue") == 1
