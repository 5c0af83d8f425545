"""What Venice charged: the client's billing calls and prefect_venice.billing, on the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from core_support import Venice, VeniceFactory
from pydantic import BaseModel
from test_client_endpoints import TEXT_MODEL, private_request, public_request

from prefect_venice import AuthenticationError, InvalidRequestError, ServerError
from prefect_venice.billing import (
    HALF_A_CENT,
    ChargeMismatch,
    SpendReport,
    aspend_report,
    aspent_between,
    charges_for,
    compare_with_quotes,
    spend_report,
    spent_between,
    total_charged,
)
from prefect_venice.emulator import Emulator, FaultConfig
from prefect_venice.errors import BillingAccessError, BillingCursorError, VeniceError
from prefect_venice.models import Balance, Balances, InferenceDetails, UsageEntry, UsagePage

# The repository's copy of the vendor's spec (source and date: tests/spec/README.md).
SWAGGER = Path(__file__).resolve().parents[1] / "spec" / "swagger.yaml"
UTC = timezone.utc


# Helpers ---------------------------------------------------------------------------


async def entries_of(venice: Venice, *args: Any, **kwargs: Any) -> list[UsageEntry]:
    """Walk usage_history with either client flavour and return every entry."""
    found = await venice.usage_history(*args, **kwargs)
    if venice.is_async:
        return [entry async for entry in found]
    return list(found)


async def report_of(
    venice: Venice,
    start: datetime | None,
    end: datetime | None,
    quotes: Mapping[str, float] | None = None,
) -> SpendReport:
    if venice.is_async:
        return await aspend_report(venice.client, start, end, quotes)  # type: ignore[arg-type]
    return spend_report(venice.client, start, end, quotes)  # type: ignore[arg-type]


async def spent(venice: Venice, start: datetime | None, end: datetime | None) -> float:
    if venice.is_async:
        return await aspent_between(venice.client, start, end)  # type: ignore[arg-type]
    return spent_between(venice.client, start, end)  # type: ignore[arg-type]


def queue_raw(emulator: Emulator, count: int) -> list[str]:
    """Queue `count` jobs over plain HTTP (no client) and return their queue ids."""
    body = public_request().to_payload()
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=10) as client:
        return [client.post("/video/queue", json=body).json()["queue_id"] for _ in range(count)]


def usage_requests(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r["endpoint"] == "usage_history"]


def entry(
    request_id: str | None,
    amount: float,
    *,
    currency: str = "USD",
    sku: str = "m-video-unit",
    at: str = "2026-06-15T19:05:10.504Z",
) -> UsageEntry:
    details = None
    if request_id is not None:
        details = {
            "completionTokens": None,
            "inferenceExecutionTime": None,
            "promptTokens": None,
            "requestId": request_id,
        }
    return UsageEntry.model_validate(
        {
            "amount": amount,
            "currency": currency,
            "inferenceDetails": details,
            "notes": "API Inference",
            "pricePerUnitUsd": abs(amount),
            "sku": sku,
            "timestamp": at,
            "units": 1,
        }
    )


@pytest.fixture
def quiet_emulator(emulator_factory: Any) -> Emulator:
    """An emulator without rate limits or lockout, for tests that queue many jobs."""
    emulator: Emulator = emulator_factory(rate_limits_enabled=False, lockout_enabled=False)
    return emulator


# The answer models against swagger ---------------------------------------------------


@pytest.fixture(scope="module")
def swagger() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SWAGGER.read_text())
    return document


def _balance_schema(swagger: dict[str, Any]) -> dict[str, Any]:
    answer = swagger["paths"]["/billing/balance"]["get"]["responses"]["200"]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return schema


def _history_schema(swagger: dict[str, Any]) -> dict[str, Any]:
    answer = swagger["paths"]["/billing/usage-history"]["get"]["responses"]["200"]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    # The operation's schema is the named component, inlined.
    assert schema == swagger["components"]["schemas"]["BillingUsageHistoryResponse"]
    return schema


@pytest.mark.parametrize(
    ("model", "where"),
    [
        (Balance, ("balance",)),
        (Balances, ("balance", "balances")),
        (UsagePage, ("history",)),
        (UsageEntry, ("history", "data")),
        (InferenceDetails, ("history", "data", "inferenceDetails")),
    ],
)
def test_billing_answer_models_match_swagger_field_by_field(
    swagger: dict[str, Any], model: type[BaseModel], where: tuple[str, ...]
) -> None:
    root, *path = where
    schema = _balance_schema(swagger) if root == "balance" else _history_schema(swagger)
    for name in path:
        schema = schema["properties"][name]
        if schema.get("type") == "array":
            schema = schema["items"]
    names = {field.alias or name for name, field in model.model_fields.items()}
    assert names == set(schema["properties"])
    required = {
        field.alias or name for name, field in model.model_fields.items() if field.is_required()
    }
    assert required == set(schema["required"])
    # Every spec field that may be null is Optional in the model, and no other.
    for name, field in model.model_fields.items():
        spec = schema["properties"][field.alias or name]
        nullable = spec.get("nullable") is True
        assert nullable == (type(None) in getattr(field.annotation, "__args__", ())), name


def test_the_swagger_examples_read_as_models(swagger: dict[str, Any]) -> None:
    balance = Balance.model_validate(_balance_schema(swagger)["example"])
    assert balance.can_consume and balance.consumption_currency == "DIEM"
    assert balance.balances.usd == 25 and balance.diem_epoch_allocation == 100
    example = dict(_history_schema(swagger)["example"])
    # yaml.safe_load reads the example timestamps as datetimes: give them back as text.
    example["data"] = [
        {**item, "timestamp": item["timestamp"].isoformat().replace("+00:00", "Z")}
        if isinstance(item["timestamp"], datetime)
        else item
        for item in example["data"]
    ]
    page = UsagePage.model_validate(example)
    image, text = page.entries
    assert image.charged == 0.1 and image.request_id is None
    assert text.request_id == "chatcmpl-4007fd29f42b7d3c4107f4345e8d174a"
    assert text.timestamp == datetime(2026, 6, 15, 19, 5, 10, 504000, tzinfo=UTC)
    assert page.next_cursor == "AZq3fK9tXhIVDm2j4vN8cQwYt1sB6uEoLxRgPzKaJdHfM5nC7yW0K3w"


# The client ------------------------------------------------------------------------


async def test_balance_is_what_is_left_after_the_charges(
    venice: Venice, emulator: Emulator
) -> None:
    quote = await venice.quote(public_request())
    await venice.queue(public_request())
    balance = await venice.balance()
    assert isinstance(balance, Balance)
    assert balance.balances.usd == pytest.approx(100 - quote.usd)
    assert balance.can_consume and balance.consumption_currency == "USD"


async def test_usage_history_walks_every_page(
    venice_factory: VeniceFactory, quiet_emulator: Emulator
) -> None:
    venice = venice_factory(quiet_emulator)
    queue_ids = queue_raw(quiet_emulator, 25)
    entries = await entries_of(venice, page_size=10)
    assert [e.request_id for e in entries] == queue_ids
    assert all(e.timestamp.tzinfo is not None and e.charged > 0 for e in entries)
    sent = usage_requests(quiet_emulator)
    assert len(sent) == 3 and all(r["status"] == 200 for r in sent)


async def test_usage_history_sends_requests_only_as_entries_are_read(
    venice_factory: VeniceFactory, quiet_emulator: Emulator
) -> None:
    venice = venice_factory(quiet_emulator)
    queue_raw(quiet_emulator, 15)
    walk = await venice.usage_history(page_size=10)
    assert usage_requests(quiet_emulator) == []
    first = await anext(walk) if venice.is_async else next(walk)
    assert first.request_id is not None
    assert len(usage_requests(quiet_emulator)) == 1


async def test_usage_history_between_start_and_end(
    venice_factory: VeniceFactory, quiet_emulator: Emulator
) -> None:
    venice = venice_factory(quiet_emulator)
    for _ in range(6):
        queue_raw(quiet_emulator, 1)
        await asyncio.sleep(0.003)  # distinct milliseconds
    everything = await entries_of(venice)
    start, end = everything[1].timestamp, everything[4].timestamp
    window = await entries_of(venice, start, end, page_size=10)
    assert window == everything[1:4]  # start inclusive, end exclusive
    # Another zone names the same instants.
    tokyo = timezone(timedelta(hours=9))
    assert await entries_of(venice, start.astimezone(tokyo), end.astimezone(tokyo)) == window
    assert await entries_of(venice, everything[-1].timestamp + timedelta(seconds=1)) == []


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"start": datetime(2026, 6, 1)}, "timezone-aware"),
        ({"end": datetime(2026, 6, 1)}, "timezone-aware"),
        (
            {"start": datetime(2026, 6, 2, tzinfo=UTC), "end": datetime(2026, 6, 1, tzinfo=UTC)},
            "later than start",
        ),
        ({"page_size": 9}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"currency": "EUR"}, "currency"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    venice: Venice, emulator: Emulator, arguments: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidRequestError, match=words):
        await venice.usage_history(**arguments)
    assert usage_requests(emulator) == []


@pytest.mark.parametrize("call", ["balance", "usage_history"])
async def test_an_inference_key_gets_a_clear_billing_access_error(
    venice_factory: VeniceFactory, emulator_factory: Any, call: str
) -> None:
    emulator = emulator_factory(inference_api_key="inference-only")
    venice = venice_factory(emulator, api_key="inference-only")
    await venice.queue(public_request())  # the key makes videos
    with pytest.raises(BillingAccessError) as caught:
        if call == "balance":
            await venice.balance()
        else:
            await entries_of(venice)
    error = caught.value
    assert isinstance(error, AuthenticationError)
    assert error.status == 401 and not error.retryable
    assert "INFERENCE" in str(error) and "ADMIN" in str(error)
    assert "inference-only" not in str(error)


async def test_a_wrong_key_is_a_billing_access_error(
    venice_factory: VeniceFactory, emulator: Emulator
) -> None:
    venice = venice_factory(emulator, api_key="not-the-key")
    with pytest.raises(BillingAccessError, match="401"):
        await venice.balance()


async def test_a_failing_history_is_retried_then_a_server_error(
    venice_factory: VeniceFactory, emulator_factory: Any
) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_500={"usage_history": 1.0}))
    venice = venice_factory(emulator)
    with pytest.raises(ServerError, match="500 to GET /billing/usage-history"):
        await entries_of(venice)
    assert len(usage_requests(emulator)) == venice.client.retry.max_attempts


async def test_a_cursor_rejected_mid_walk_says_to_start_again(
    venice_factory: VeniceFactory, emulator_factory: Any
) -> None:
    emulator = emulator_factory(rate_limits_enabled=False, usage_cursor_lifetime_seconds=0)
    venice = venice_factory(emulator)
    queue_raw(emulator, 12)
    read: list[UsageEntry] = []
    with pytest.raises(BillingCursorError) as caught:
        walk = await venice.usage_history(page_size=10)
        if venice.is_async:
            async for item in walk:
                read.append(item)
        else:
            read.extend(walk)
    assert len(read) == 10
    assert caught.value.status == 400
    assert "after 10 entries" in str(caught.value) and "first page" in str(caught.value)


# Charges against quotes, through the client ----------------------------------------


async def test_the_job_charged_more_than_its_quote_is_flagged(
    venice: Venice, emulator: Emulator
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    request, other = public_request(), private_request()
    quotes: dict[str, float] = {}
    first = await venice.queue(request)
    quotes[first.queue_id] = (await venice.quote(request)).usd
    quoted = (await venice.quote(request)).usd
    emulator.set_charge_markup({TEXT_MODEL: 0.2})  # the price rose after the quote
    raised = await venice.queue(request)
    quotes[raised.queue_id] = quoted
    unchanged = await venice.queue(other)  # another model keeps its price
    quotes[unchanged.queue_id] = (await venice.quote(other)).usd
    end = datetime.now(UTC) + timedelta(seconds=1)

    report = await report_of(venice, start, end, quotes)

    (mismatch,) = report.mismatches
    assert mismatch.queue_id == raised.queue_id
    assert mismatch.quoted_usd == quoted
    assert mismatch.charged_usd == round(quoted * 1.2, 4)
    assert mismatch.difference_usd == pytest.approx(round(quoted * 1.2, 4) - quoted)
    assert f"job {raised.queue_id}" in mismatch.describe()
    assert set(report.jobs) == set(quotes) and report.unquoted == []
    balance = await venice.balance()
    assert balance.balances.usd is not None
    assert report.charged_total == pytest.approx(100 - balance.balances.usd)
    assert report.charged_by_currency == {"USD": report.charged_total}
    assert await spent(venice, start, end) == report.charged_total


async def test_spent_between_counts_only_the_period(venice: Venice, emulator: Emulator) -> None:
    await venice.queue(public_request())
    await asyncio.sleep(0.01)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.01)
    job = await venice.queue(public_request(resolution="1080p"))
    charged = emulator.ledger()["jobs"][job.queue_id]["charged_usd"]
    assert await spent(venice, middle, None) == charged
    assert await spent(venice, None, None) == emulator.ledger()["charged_usd_total"]
    assert await spent(venice, middle + timedelta(hours=1), None) == 0


async def test_a_job_outside_the_period_read_is_reported_missing(
    venice: Venice, emulator: Emulator
) -> None:
    job = await venice.queue(public_request())
    later = datetime.now(UTC) + timedelta(hours=1)
    report = await report_of(venice, later, None, {job.queue_id: 0.3})
    (mismatch,) = report.mismatches
    assert mismatch.missing and mismatch.charged_usd is None
    assert "no charge" in mismatch.describe()


async def test_a_key_without_billing_access_cannot_report(
    venice_factory: VeniceFactory, emulator_factory: Any
) -> None:
    emulator = emulator_factory(inference_api_key="inference-only")
    venice = venice_factory(emulator, api_key="inference-only")
    with pytest.raises(BillingAccessError):
        await report_of(venice, None, None, {})


# compare_with_quotes and friends, on entries ----------------------------------------


def test_differences_above_half_a_cent_are_mismatches() -> None:
    entries = [entry("exact", -0.30), entry("half", -0.305), entry("over", -0.3051)]
    quotes = {"exact": 0.30, "half": 0.30, "over": 0.30}
    found = compare_with_quotes(entries, quotes)
    assert [m.queue_id for m in found] == ["over"]
    assert found[0].difference_usd == pytest.approx(0.0051)
    assert HALF_A_CENT == 0.005


def test_a_cheaper_charge_is_a_mismatch_too() -> None:
    (found,) = compare_with_quotes([entry("q", -0.25)], {"q": 0.30})
    assert found.difference_usd == pytest.approx(-0.05)
    assert found.describe() == "job q (m-video-unit): quoted $0.30, charged $0.25 (-$0.05)"


def test_the_tolerance_can_be_changed() -> None:
    entries = [entry("q", -0.31)]
    assert compare_with_quotes(entries, {"q": 0.30}, tolerance_usd=0.02) == []
    assert len(compare_with_quotes(entries, {"q": 0.30}, tolerance_usd=0.001)) == 1


def test_missing_charges_are_reported_unless_told_otherwise() -> None:
    entries = [entry("q1", -0.30)]
    (missing,) = compare_with_quotes(entries, {"q1": 0.30, "q2": 0.50})
    assert missing == ChargeMismatch("q2", 0.50, None)
    assert missing.missing and missing.difference_usd is None
    assert compare_with_quotes(entries, {"q2": 0.50}, include_missing=False) == []


def test_refunds_count_against_the_charge() -> None:
    entries = [entry("q", -0.50), entry("q", 0.20, at="2026-06-15T19:06:00.000Z")]
    charge = charges_for(entries)["q"]
    assert charge.charged == pytest.approx(0.30)
    assert len(charge.entries) == 2
    assert compare_with_quotes(entries, {"q": 0.30}) == []


def test_charges_for_picks_the_jobs_asked_for() -> None:
    entries = [
        entry("q1", -0.1),
        entry(None, -0.2, sku="some-llm-output-mtoken"),
        entry("chatcmpl-1", -0.05),
        entry("q2", -0.4, at="2026-06-15T19:07:00.000Z"),
    ]
    assert list(charges_for(entries, ["q2", "q1", "unknown"])) == ["q1", "q2"]
    assert list(charges_for(entries)) == ["q1", "chatcmpl-1", "q2"]
    charge = charges_for(entries)["q2"]
    assert charge.charged_at == datetime(2026, 6, 15, 19, 7, tzinfo=UTC)
    assert charge.describe() == "job q2 (m-video-unit): $0.40 at 2026-06-15 19:07:00 UTC"


def test_report_totals_keep_currencies_apart() -> None:
    entries = (
        entry("q1", -1.0),
        entry("q2", -0.5, currency="DIEM"),
        entry(None, -0.25, currency="DIEM"),
    )
    report = SpendReport(None, None, entries, {"q2": 0.40})
    assert report.charged_by_currency == {"USD": 1.0, "DIEM": 0.75}
    assert report.charged_total == 1.75
    assert report.quoted_total == 0.40
    assert [c.queue_id for c in report.unquoted] == ["q1"]
    (mismatch,) = report.mismatches
    assert mismatch.describe() == "job q2 (m-video-unit): quoted $0.40, charged 0.50 DIEM (+$0.10)"
    assert total_charged(entries, "USD") == 1.0
    assert total_charged(()) == 0.0


def test_billing_errors_are_venice_errors() -> None:
    assert issubclass(BillingAccessError, AuthenticationError)
    assert issubclass(BillingCursorError, VeniceError)
