"""The emulator's /billing/balance and /billing/usage-history, read over raw HTTP."""

from __future__ import annotations

import base64
import csv
import io
import re
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from emulator_support import (
    PRIVATE,
    T2V,
    EmulatorFactory,
    api,
    private_body,
    queue,
    queue_body,
)

from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.emulator.cli import build_parser, config_from_args

HISTORY = "/billing/usage-history"
BALANCE = "/billing/balance"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def history(client: httpx.Client, **params: Any) -> dict[str, Any]:
    """One usage-history page as JSON; fails the test unless the answer is 200."""
    response = client.get(HISTORY, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    page: dict[str, Any] = response.json()
    return page


def walk(client: httpx.Client, **filters: Any) -> list[list[dict[str, Any]]]:
    """Every page of a walk, following nextCursor with the cursor alone."""
    pages = [history(client, **filters)]
    while pages[-1]["nextCursor"] is not None:
        pages.append(history(client, cursor=pages[-1]["nextCursor"]))
    return [page["data"] for page in pages]


def queue_many(client: httpx.Client, count: int, **overrides: Any) -> list[dict[str, Any]]:
    return [queue(client, **overrides) for _ in range(count)]


def quiet(factory: EmulatorFactory, **overrides: Any) -> Emulator:
    """An emulator without rate limits or lockout, for tests that make many calls."""
    return factory(rate_limits_enabled=False, lockout_enabled=False, **overrides)


# Balance ---------------------------------------------------------------------------


def test_balance_is_the_starting_balance_less_the_charges(emulator: Emulator) -> None:
    with api(emulator) as client:
        quotes = [client.post("/video/quote", json=queue_body()).json()["quote"] for _ in "ab"]
        queue_many(client, 2)
        answer = client.get(BALANCE)
    assert answer.status_code == 200
    body = answer.json()
    assert body["balances"]["usd"] == pytest.approx(100 - sum(quotes))
    assert body == {
        "canConsume": True,
        "consumptionCurrency": "USD",
        "balances": {"diem": None, "usd": body["balances"]["usd"]},
        "diemEpochAllocation": 0,
    }


def test_balance_cannot_consume_at_zero(emulator: Emulator) -> None:
    emulator.set_balance(0)
    with api(emulator) as client:
        body = client.get(BALANCE).json()
    assert body["canConsume"] is False and body["balances"]["usd"] == 0


@pytest.mark.parametrize("path", [BALANCE, HISTORY])
def test_billing_needs_the_key(emulator: Emulator, path: str) -> None:
    assert httpx.get(emulator.base_url + path).status_code == 401
    with api(emulator, key="wrong") as client:
        assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", [BALANCE, HISTORY])
def test_an_inference_key_makes_videos_but_reads_no_billing(
    emulator_factory: EmulatorFactory, path: str
) -> None:
    emulator = emulator_factory(inference_api_key="inference-only")
    with api(emulator, key="inference-only") as client:
        queue(client)
        refused = client.get(path)
    assert refused.status_code == 401
    assert "INFERENCE" in refused.json()["error"]
    with api(emulator) as client:
        assert client.get(path).status_code == 200


# One entry per paid queue ----------------------------------------------------------


def test_each_paid_queue_is_one_entry_naming_its_job_and_model(emulator: Emulator) -> None:
    with api(emulator) as client:
        before = time.time()
        public = queue(client)
        private = client.post("/video/queue", json=private_body()).json()
        after = time.time()
        entries = history(client)["data"]
    jobs = emulator.ledger()["jobs"]
    assert [e["inferenceDetails"]["requestId"] for e in entries] == [
        public["queue_id"],
        private["queue_id"],
    ]
    for entry, job in zip(entries, (public, private), strict=True):
        charged = jobs[job["queue_id"]]["charged_usd"]
        assert entry["amount"] == -charged
        assert entry["pricePerUnitUsd"] == charged and entry["units"] == 1
        assert entry["currency"] == "USD"
        assert entry["sku"] == f"{job['model']}-video-unit"
        assert entry["notes"] == "API Inference"
        assert entry["inferenceDetails"]["promptTokens"] is None
        assert TIMESTAMP.fullmatch(entry["timestamp"]), entry["timestamp"]
        stamp = _epoch(entry["timestamp"])
        assert before - 0.002 <= stamp <= after + 0.002


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_refused_and_failed_queue_calls_leave_no_entry(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory, faults=FaultConfig(rate_500={"queue": 1.0}))
    with api(emulator) as client:
        assert client.post("/video/queue", json=queue_body()).status_code == 500
        emulator.configure_faults(FaultConfig())
        assert client.post("/video/queue", json=queue_body(duration="7s")).status_code == 400
        emulator.set_balance(0)
        assert client.post("/video/queue", json=queue_body()).status_code == 402
        assert history(client) == {"data": [], "nextCursor": None}


def test_a_queue_answer_lost_after_the_charge_is_still_an_entry(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(faults=FaultConfig(queue_drop_after_create_first=1))
    with api(emulator) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/video/queue", json=queue_body())
        entries = history(client)["data"]
    (queue_id,) = emulator.ledger()["jobs"]
    assert [e["inferenceDetails"]["requestId"] for e in entries] == [queue_id]


# Charges that differ from the quote ------------------------------------------------


def test_charge_markup_charges_more_than_the_quote(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(charge_markup=0.5)
    with api(emulator) as client:
        quote = client.post("/video/quote", json=queue_body()).json()["quote"]
        job = queue(client)
        (entry,) = history(client)["data"]
        usd = client.get(BALANCE).json()["balances"]["usd"]
    charged = round(quote * 1.5, 4)
    assert entry["amount"] == -charged
    assert emulator.ledger()["jobs"][job["queue_id"]]["charged_usd"] == charged
    assert usd == pytest.approx(100 - charged)


def test_charge_markup_per_model_and_changed_while_running(emulator: Emulator) -> None:
    with api(emulator) as client:
        quote = client.post("/video/quote", json=queue_body()).json()["quote"]
        other = client.post("/video/quote", json=private_body()).json()["quote"]
        queue(client)  # charged as quoted
        emulator.set_charge_markup({T2V: -0.2})  # the price fell after the quote
        queue(client)
        assert client.post("/video/queue", json=private_body()).status_code == 200
        emulator.set_charge_markup(0)
        queue(client)
        amounts = [(e["sku"], -e["amount"]) for e in history(client)["data"]]
    assert amounts[0] == (f"{T2V}-video-unit", quote)
    assert amounts[1] == (f"{T2V}-video-unit", round(quote * 0.8, 4))
    assert amounts[2] == (f"{PRIVATE}-video-unit", other)  # another model: as quoted
    assert amounts[3] == (f"{T2V}-video-unit", quote)


def test_a_marked_up_charge_above_the_balance_is_refused(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(charge_markup={"*": 1.0})
    with api(emulator) as client:
        quote = client.post("/video/quote", json=queue_body()).json()["quote"]
        emulator.set_balance(quote * 1.5)
        assert client.post("/video/queue", json=queue_body()).status_code == 402
        assert history(client)["data"] == []


# Pages and cursors -----------------------------------------------------------------


def test_pages_walk_every_entry_once_in_ascending_order(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        jobs = queue_many(client, 25)
        pages = walk(client, pageSize=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    entries = [entry for page in pages for entry in page]
    assert [e["inferenceDetails"]["requestId"] for e in entries] == [j["queue_id"] for j in jobs]
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps)


def test_a_full_last_page_has_no_cursor(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 20)
        assert [len(page) for page in walk(client, pageSize=10)] == [10, 10]


def test_page_size_defaults_to_1000(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 12)
        page = history(client)
    assert len(page["data"]) == 12 and page["nextCursor"] is None


def test_the_cursor_is_opaque_and_within_the_spec(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 11)
        cursor = history(client, pageSize=10)["nextCursor"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor) and len(cursor) <= 512
    # The emulator's cursors are base64url JSON and a 22-character signature: no key inside.
    payload = cursor[:-22]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert emulator.api_key not in decoded and emulator.api_key not in cursor


def test_pages_walked_stay_the_same_while_usage_is_recorded(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        first_jobs = queue_many(client, 15)
        first = history(client, pageSize=10)
        queue_many(client, 3)  # recorded during the walk
        second = history(client, cursor=first["nextCursor"])
    ids = [e["inferenceDetails"]["requestId"] for e in first["data"] + second["data"]]
    assert ids[:15] == [job["queue_id"] for job in first_jobs]
    assert len(ids) == 18  # the walk goes on into the new entries, none repeated
    assert len(set(ids)) == 18


def test_start_is_inclusive_and_end_exclusive_and_windows_tile(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        for _ in range(12):
            queue(client)
            time.sleep(0.003)  # distinct milliseconds
        everything = history(client)["data"]
        stamps = [e["timestamp"] for e in everything]
        middle = stamps[5]
        before = [e for page in walk(client, endTimestamp=middle, pageSize=10) for e in page]
        after = [e for page in walk(client, startTimestamp=middle, pageSize=10) for e in page]
        only = history(client, startTimestamp=middle, endTimestamp=stamps[6])["data"]
    assert [e["timestamp"] for e in before] == stamps[:5]
    assert [e["timestamp"] for e in after] == stamps[5:]
    assert before + after == everything
    assert [e["timestamp"] for e in only] == [middle]


def test_the_cursor_carries_the_end_and_currency(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        for _ in range(25):
            queue(client)
        stamps = [e["timestamp"] for e in history(client)["data"]]
        end = next(s for s in stamps[20:] if s > stamps[19])
        bounded = [e for page in walk(client, endTimestamp=end, pageSize=10) for e in page]
        diem = walk(client, currency="DIEM", pageSize=10)
        usd = walk(client, currency="USD", pageSize=10)
    assert [e["timestamp"] for e in bounded] == [s for s in stamps if s < end]
    assert diem == [[]]
    assert sum(len(page) for page in usd) == 25


def test_fractional_and_second_precision_bounds(emulator: Emulator) -> None:
    with api(emulator) as client:
        queue(client)
        (entry,) = history(client)["data"]
        stamp = entry["timestamp"]  # e.g. 2026-06-15T19:05:10.504Z
        whole_second = stamp[:19] + "Z"
        micro = stamp[:23] + "001Z"
        assert len(history(client, startTimestamp=whole_second)["data"]) == 1
        assert history(client, startTimestamp=micro)["data"] == []
        assert len(history(client, endTimestamp=micro)["data"]) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pageSize": "9"}, "pageSize"),
        ({"pageSize": "1001"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"currency": "EUR"}, "currency"),
        ({"startTimestamp": "2026-06-01T00:00:00"}, "startTimestamp"),
        ({"startTimestamp": "2026-06-01T00:00:00+00:00"}, "startTimestamp"),
        ({"startTimestamp": "2026-06-01"}, "startTimestamp"),
        ({"endTimestamp": "2026-02-30T00:00:00Z"}, "endTimestamp"),
        ({"endTimestamp": "2026-06-01T00:00:00." + "0" * 40 + "Z"}, "endTimestamp"),
        (
            {"startTimestamp": "2026-06-01T00:00:00Z", "endTimestamp": "2026-06-01T00:00:00Z"},
            "endTimestamp",
        ),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "A" * 513}, "cursor"),
        ({"cursor": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "cursor"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    emulator: Emulator, params: dict[str, str], field: str
) -> None:
    with api(emulator) as client:
        answer = client.get(HISTORY, params=params)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert field in body["details"], body
    assert body["error"]


def test_a_cursor_sent_with_filters_is_400(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 11)
        cursor = history(client, pageSize=10)["nextCursor"]
        for extra in (
            {"pageSize": "10"},
            {"currency": "USD"},
            {"startTimestamp": "2026-01-01T00:00:00Z"},
            {"endTimestamp": "2099-01-01T00:00:00Z"},
        ):
            answer = client.get(HISTORY, params={"cursor": cursor, **extra})
            assert answer.status_code == 400, extra
            assert "nothing else" in answer.json()["error"]
        assert len(history(client, cursor=cursor)["data"]) == 1


def test_an_altered_cursor_is_400(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 11)
        cursor = history(client, pageSize=10)["nextCursor"]
        flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
        answer = client.get(HISTORY, params={"cursor": flipped})
    assert answer.status_code == 400
    assert "Restart the walk" in answer.json()["error"]


def test_a_cursor_from_before_a_ledger_reset_is_400(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 11)
        cursor = history(client, pageSize=10)["nextCursor"]
        emulator.reset_ledger()
        answer = client.get(HISTORY, params={"cursor": cursor})
        assert answer.status_code == 400
        assert history(client) == {"data": [], "nextCursor": None}


def test_an_expired_cursor_is_400(emulator_factory: EmulatorFactory) -> None:
    # 10 emulated seconds at the test scale of 0.004: 40 ms.
    emulator = quiet(emulator_factory, usage_cursor_lifetime_seconds=10)
    with api(emulator) as client:
        queue_many(client, 11)
        cursor = history(client, pageSize=10)["nextCursor"]
        time.sleep(0.1)
        answer = client.get(HISTORY, params={"cursor": cursor})
    assert answer.status_code == 400
    assert "expired" in answer.json()["error"]


def test_injected_500_on_the_history(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_500={"usage_history": 1.0}))
    with api(emulator) as client:
        assert client.get(HISTORY).status_code == 500
        assert client.get(BALANCE).status_code == 200
    assert emulator.ledger()["statuses"]["usage_history"] == {"500": 1}


def test_billing_calls_are_in_the_request_log(emulator: Emulator) -> None:
    with api(emulator) as client:
        client.get(BALANCE)
        client.get(HISTORY)
    logged = [(r["endpoint"], r["method"], r["status"]) for r in emulator.requests()]
    assert logged == [("balance", "GET", 200), ("usage_history", "GET", 200)]


# CSV export ------------------------------------------------------------------------


def test_csv_pages_follow_x_next_cursor(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 15)
        as_json = history(client)["data"]
        csv_headers = {"Accept": "text/csv"}
        first = client.get(HISTORY, params={"pageSize": "10"}, headers=csv_headers)
        cursor = first.headers["x-next-cursor"]
        second = client.get(HISTORY, params={"cursor": cursor}, headers=csv_headers)
    names = []
    for answer in (first, second):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        disposition = answer.headers["content-disposition"]
        match = re.fullmatch(
            r"attachment; filename=(billing-usage-history-\d{8}T\d{9}Z\.csv)", disposition
        )
        assert match, disposition
        names.append(match.group(1))
    assert "x-next-cursor" not in second.headers
    assert names == sorted(names) and names[0] != names[1]
    rows = [row for answer in (first, second) for row in csv.DictReader(io.StringIO(answer.text))]
    assert len(rows) == 15
    for row, entry in zip(rows, as_json, strict=True):
        assert row["timestamp"] == entry["timestamp"]
        assert float(row["amount"]) == entry["amount"]
        assert row["requestId"] == entry["inferenceDetails"]["requestId"]
        assert row["sku"] == entry["sku"] and row["currency"] == "USD"


def test_json_answers_carry_no_cursor_header(emulator_factory: EmulatorFactory) -> None:
    emulator = quiet(emulator_factory)
    with api(emulator) as client:
        queue_many(client, 11)
        answer = client.get(HISTORY, params={"pageSize": "10"})
    assert "x-next-cursor" not in answer.headers
    assert answer.json()["nextCursor"]


def test_errors_stay_json_when_csv_is_asked(emulator: Emulator) -> None:
    with api(emulator) as client:
        answer = client.get(HISTORY, params={"pageSize": "5"}, headers={"Accept": "text/csv"})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"


# The command line ------------------------------------------------------------------


def test_the_command_line_sets_the_markup_and_the_inference_key() -> None:
    args = build_parser().parse_args(
        ["--charge-markup=0.1", "--inference-key=k2", "--fail-rate-500", "usage_history=1"]
    )
    config = config_from_args(args)
    assert config.charge_markup == 0.1 and config.inference_api_key == "k2"
    assert config.faults.rate_500 == {"usage_history": 1.0}
    defaults = config_from_args(build_parser().parse_args([]))
    assert defaults.charge_markup == 0 and defaults.inference_api_key is None
