"""What Venice actually charged: usage entries summed, tied to jobs and checked against quotes.

Venice's `GET /billing/usage-history` (an ADMIN key is needed) lists every charge.
A video job is charged once, when it is queued, at the price of that moment, so the
charge can differ from a quote taken earlier (prices change). The pieces here read
that history and say where it differs:

- `charges_for(entries, queue_ids)`: each job's charge (its entries, net of refunds),
  found by the entry's `inferenceDetails.requestId`, which is the job's queue id.
- `compare_with_quotes(entries, quotes)`: the jobs whose charge differs from their
  quote by more than half a cent, or that have no charge among the entries.
- `spent_between(client, start, end)` (and `aspent_between` for the async client):
  the total charged in a period.
- `spend_report(client, start, end, quotes)` (and `aspend_report`): all of it at
  once, from one walk of the history, for a report such as `prefect-venice spend`.

Amounts are read as Venice's example shows them: a charge is a negative `amount`;
`UsageEntry.charged` is what was paid. Totals add USD, DIEM and bundled credits at
face value (Venice prices DIEM and credits in dollars); `charged_by_currency` keeps
them apart. A key without billing access raises `BillingAccessError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .client import AsyncVeniceClient, VeniceClient
from .generation import format_usd
from .models import UsageEntry

__all__ = [
    "HALF_A_CENT",
    "ChargeMismatch",
    "JobCharge",
    "SpendReport",
    "aspend_report",
    "aspent_between",
    "charges_for",
    "compare_with_quotes",
    "spend_report",
    "spent_between",
    "total_charged",
]

HALF_A_CENT = 0.005
"""The largest difference between a quote and its charge that is not a mismatch (USD)."""

# Sums of float amounts drift in the last bits; amounts are rounded to this many places.
_PLACES = 6
# A difference within this of the tolerance is taken as equal to it (float noise).
_EPSILON = 1e-9


def _money(amount: float, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    text = format_usd(abs(amount))
    return f"{sign}{text}" if currency == "USD" else f"{sign}{text[1:]} {currency}"


def total_charged(entries: Iterable[UsageEntry], currency: str | None = None) -> float:
    """Return what the entries charged, net of refunds (only `currency`'s, if given)."""
    total = sum(e.charged for e in entries if currency is None or e.currency == currency)
    return round(total, _PLACES) + 0.0  # + 0.0: never "-0.0"


@dataclass(frozen=True)
class JobCharge:
    """What Venice charged for one video job: its usage entries, oldest first."""

    queue_id: str
    entries: tuple[UsageEntry, ...]

    @property
    def charged(self) -> float:
        """The job's net charge at face value (refunds subtracted)."""
        return total_charged(self.entries)

    @property
    def currency(self) -> str:
        """The currency of the charge ("USD", ...; several joined by "+")."""
        return "+".join(sorted({entry.currency for entry in self.entries}))

    @property
    def sku(self) -> str:
        """The product charged, e.g. `<model id>-video-unit`."""
        return self.entries[0].sku

    @property
    def charged_at(self) -> datetime:
        """When the (first) charge was recorded, in UTC."""
        return self.entries[0].timestamp

    def describe(self) -> str:
        """One line for a report: job, product, amount and time."""
        return (
            f"job {self.queue_id} ({self.sku}): {_money(self.charged, self.currency)} "
            f"at {self.charged_at:%Y-%m-%d %H:%M:%S} UTC"
        )


def charges_for(
    entries: Iterable[UsageEntry], queue_ids: Iterable[str] | None = None
) -> dict[str, JobCharge]:
    """Return the charge of each job, keyed by queue id, in the order they were charged.

    An entry belongs to a job when its `inferenceDetails.requestId` is the job's
    queue id. With `queue_ids`, only those jobs are returned (a job with no entry is
    simply absent); without, every entry that names a request is grouped.
    """
    wanted = None if queue_ids is None else set(queue_ids)
    grouped: dict[str, list[UsageEntry]] = {}
    for entry in entries:
        request_id = entry.request_id
        if request_id is None or (wanted is not None and request_id not in wanted):
            continue
        grouped.setdefault(request_id, []).append(entry)
    return {
        queue_id: JobCharge(queue_id, tuple(sorted(found, key=lambda e: e.timestamp)))
        for queue_id, found in grouped.items()
    }


@dataclass(frozen=True)
class ChargeMismatch:
    """A job whose charge differs from its quote by more than the tolerance, or is missing."""

    queue_id: str
    quoted_usd: float
    charge: JobCharge | None
    """What was charged; None when no entry read names this job."""

    @property
    def missing(self) -> bool:
        """True when no charge for this job was found among the entries read."""
        return self.charge is None

    @property
    def charged_usd(self) -> float | None:
        """The net charge at face value, or None when it is missing."""
        return None if self.charge is None else self.charge.charged

    @property
    def difference_usd(self) -> float | None:
        """Charged minus quoted (positive: Venice charged more), or None when missing."""
        if self.charge is None:
            return None
        return round(self.charge.charged - self.quoted_usd, _PLACES) + 0.0

    def describe(self) -> str:
        """One line for a report: `job q1 (m-video-unit): quoted $0.30, charged $0.35 (+$0.05)`."""
        quoted = format_usd(self.quoted_usd)
        if self.charge is None:
            return (
                f"job {self.queue_id}: quoted {quoted}, but no charge for it is in the usage "
                "history read (outside the period, not recorded yet, or never charged)"
            )
        difference = self.difference_usd or 0.0
        sign = "+" if difference > 0 else "-"
        return (
            f"job {self.queue_id} ({self.charge.sku}): quoted {quoted}, charged "
            f"{_money(self.charge.charged, self.charge.currency)} "
            f"({sign}{format_usd(abs(difference))})"
        )


def compare_with_quotes(
    entries: Iterable[UsageEntry],
    quotes: Mapping[str, float],
    *,
    tolerance_usd: float = HALF_A_CENT,
    include_missing: bool = True,
) -> list[ChargeMismatch]:
    """Return the jobs whose charge differs from their quote by more than `tolerance_usd`.

    `quotes` maps queue ids to the USD price quoted before queueing. A difference of
    exactly the tolerance (half a cent by default) is not a mismatch. A quoted job
    with no charge among `entries` is reported (`missing`) unless `include_missing`
    is False; read a period that covers the jobs' queue times. Charges of jobs not in
    `quotes` are ignored. Mismatches come in the order of `quotes`.
    """
    charges = charges_for(entries, quotes)
    found: list[ChargeMismatch] = []
    for queue_id, quoted in quotes.items():
        charge = charges.get(queue_id)
        if charge is None:
            if include_missing:
                found.append(ChargeMismatch(queue_id, quoted, None))
            continue
        if abs(charge.charged - quoted) > tolerance_usd + _EPSILON:
            found.append(ChargeMismatch(queue_id, quoted, charge))
    return found


@dataclass(frozen=True)
class SpendReport:
    """What Venice charged in a period, and how the quoted jobs' charges compare.

    Built from one walk of the usage history: `charged_total` is what the report's
    headline says was "actually charged by Venice"; `mismatches` lists the jobs to
    look at; `unquoted` the job charges that no quote explains.
    """

    start: datetime | None
    end: datetime | None
    entries: tuple[UsageEntry, ...]
    quotes: Mapping[str, float] = field(default_factory=dict)
    tolerance_usd: float = HALF_A_CENT

    @property
    def charged_total(self) -> float:
        """Everything charged in the period, net of refunds, currencies at face value."""
        return total_charged(self.entries)

    @property
    def charged_by_currency(self) -> dict[str, float]:
        """The net charge per currency (USD, DIEM, BUNDLED_CREDITS), largest first."""
        totals = {
            currency: total_charged(self.entries, currency)
            for currency in {entry.currency for entry in self.entries}
        }
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    @property
    def quoted_total(self) -> float:
        """The sum of the quotes given (USD)."""
        return round(sum(self.quotes.values()), _PLACES) + 0.0

    @property
    def jobs(self) -> dict[str, JobCharge]:
        """Charges of the quoted jobs that were found, by queue id."""
        return charges_for(self.entries, self.quotes)

    @property
    def unquoted(self) -> list[JobCharge]:
        """Charges that name a request with no quote given (other jobs, other products)."""
        return [c for q, c in charges_for(self.entries).items() if q not in self.quotes]

    @property
    def mismatches(self) -> list[ChargeMismatch]:
        """Quoted jobs charged more or less than quoted (beyond the tolerance), or missing."""
        return compare_with_quotes(self.entries, self.quotes, tolerance_usd=self.tolerance_usd)


def spend_report(
    client: VeniceClient,
    start: datetime | None,
    end: datetime | None,
    quotes: Mapping[str, float] | None = None,
    *,
    tolerance_usd: float = HALF_A_CENT,
) -> SpendReport:
    """Read the usage history from start (inclusive) to end (exclusive) into a SpendReport.

    Raises BillingAccessError for a key that may not read billing, and the client's
    usual errors otherwise (see VeniceClient.usage_history).
    """
    entries = tuple(client.usage_history(start, end))
    return SpendReport(start, end, entries, dict(quotes or {}), tolerance_usd)


async def aspend_report(
    client: AsyncVeniceClient,
    start: datetime | None,
    end: datetime | None,
    quotes: Mapping[str, float] | None = None,
    *,
    tolerance_usd: float = HALF_A_CENT,
) -> SpendReport:
    """Async twin of `spend_report`."""
    entries = tuple([entry async for entry in client.usage_history(start, end)])
    return SpendReport(start, end, entries, dict(quotes or {}), tolerance_usd)


def spent_between(
    client: VeniceClient,
    start: datetime | None,
    end: datetime | None,
    *,
    currency: str | None = None,
) -> float:
    """Return what Venice charged from start (inclusive) to end (exclusive), net of refunds.

    Every product of the account counts (video and any other); `currency` keeps one
    currency only (the filter is applied by Venice), else all add at face value.
    """
    return total_charged(client.usage_history(start, end, currency=currency))


async def aspent_between(
    client: AsyncVeniceClient,
    start: datetime | None,
    end: datetime | None,
    *,
    currency: str | None = None,
) -> float:
    """Async twin of `spent_between`."""
    entries = [entry async for entry in client.usage_history(start, end, currency=currency)]
    return total_charged(entries)
