"""The ledger: calls and statuses per endpoint, one record per queue id, charges and balance."""

from __future__ import annotations

import time

import httpx
import pytest
from emulator_support import (
    api,
    freeze_clock,
    private_body,
    queue,
    queue_body,
    ref,
    wait_until_done,
)

from prefect_venice.emulator import Emulator


def test_fresh_ledger_is_empty(emulator: Emulator) -> None:
    assert emulator.ledger() == {
        "calls": {},
        "statuses": {},
        "jobs": {},
        "queue_calls_total": 0,
        "charged_usd_total": 0.0,
        "balance_usd": 100.0,
        "link_auth_seen": False,
    }


def test_ledger_is_served_without_auth(emulator: Emulator) -> None:
    with api(emulator) as client:
        queue(client)
    served = httpx.get(emulator.ledger_url)
    assert served.status_code == 200
    assert served.json() == emulator.ledger()


def test_ledger_counts_a_whole_job(emulator: Emulator) -> None:
    with api(emulator) as client:
        client.get("/models", params={"type": "video"})
        quote = client.post("/video/quote", json=queue_body()).json()["quote"]
        queued_at = time.monotonic()
        job = queue(client)
        done = wait_until_done(client, job)
        elapsed = time.monotonic() - queued_at
        assert done.headers["content-type"] == "video/mp4"
        client.post("/video/complete", json=ref(job))
    ledger = emulator.ledger()
    retrieves = ledger["calls"]["retrieve"]
    assert ledger["calls"] == {
        "models": 1,
        "quote": 1,
        "queue": 1,
        "retrieve": retrieves,
        "complete": 1,
    }
    assert ledger["statuses"]["retrieve"] == {"200": retrieves}
    record = dict(ledger["jobs"][job["queue_id"]])
    # The job's run time (real seconds) is drawn; it is positive and the job ran that long.
    assert 0 < record.pop("run_seconds") <= elapsed
    assert record == {
        "model": job["model"],
        "charged_usd": quote,
        "queue_calls": 1,
        "retrieve_calls": retrieves,
        "complete_calls": 1,
        "status": "COMPLETED",
        "media_deleted": True,
        "private": False,
        "link_gets": 0,
        "link_deleted": False,
        "link_auth_seen": False,
    }
    assert ledger["queue_calls_total"] == 1
    assert ledger["charged_usd_total"] == quote
    assert ledger["balance_usd"] == pytest.approx(100 - quote)


def test_ledger_counts_failed_queue_calls(emulator: Emulator) -> None:
    with api(emulator) as client:
        client.post("/video/queue", json=queue_body(duration="7s"))
        client.post("/video/queue", json=queue_body())
    ledger = emulator.ledger()
    assert ledger["calls"]["queue"] == 2
    assert ledger["queue_calls_total"] == 2
    assert ledger["statuses"]["queue"] == {"400": 1, "200": 1}
    assert len(ledger["jobs"]) == 1


def test_ledger_counts_link_calls(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = client.post("/video/queue", json=private_body()).json()
        wait_until_done(client, job)
    httpx.get(job["download_url"])
    httpx.delete(job["download_url"])
    ledger = emulator.ledger()
    assert ledger["calls"]["link_get"] == 1
    assert ledger["calls"]["link_delete"] == 1
    record = ledger["jobs"][job["queue_id"]]
    assert record["private"] is True
    assert record["link_gets"] == 1
    assert record["link_deleted"] is True


def test_ledger_status_follows_the_job_without_polling(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = freeze_clock(monkeypatch)
    with api(emulator) as client:
        job = queue(client)
    assert emulator.ledger()["jobs"][job["queue_id"]]["status"] == "PROCESSING"
    clock.advance(10)  # past the end of any job at the test scale
    record = emulator.ledger()["jobs"][job["queue_id"]]
    assert record["status"] == "COMPLETED"
    assert record["retrieve_calls"] == 0


def test_reset_ledger_keeps_jobs_and_balance(emulator: Emulator) -> None:
    with api(emulator) as client:
        job = queue(client)
        balance = emulator.ledger()["balance_usd"]
        emulator.reset_ledger()
        assert emulator.ledger()["calls"] == {}
        assert emulator.ledger()["balance_usd"] == balance
        assert client.post("/video/retrieve", json=ref(job)).status_code == 200
    assert emulator.ledger()["jobs"][job["queue_id"]]["retrieve_calls"] == 1


def test_set_balance(emulator: Emulator) -> None:
    emulator.set_balance(3.5)
    assert emulator.ledger()["balance_usd"] == 3.5
