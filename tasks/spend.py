"""Spend caps per period, kept on the Prefect server so no run, process or worker can pass them.

A VeniceCredentials block may carry a cap (`spend_limit_usd` per `spend_period` in
`spend_timezone`). Every paid call made with that block first *reserves* its quote
against the period's allowance, atomically on the Prefect server; a job that was not
created gives its reservation back, one that was created is *settled* as spent.

The account is kept in Prefect global concurrency limits counted in ten-thousandths
of a dollar (Venice prices have at most four decimals), without slot decay:

- `venice-spend-<block>-<period>`: limit = the cap; its active slots are what is
  reserved or spent in the period. The server increments it only if the result stays
  within the limit (one SQL update), so concurrent reservations cannot race past it.
- `venice-spent-<block>-<period>` and `venice-spent-<block>-day-<date>`: what was
  settled as spent (no practical limit), for `prefect-venice spend`.

Run parameters cannot raise or remove the cap: it lives on the block.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from prefect_venice.billing import spend_report
from prefect_venice.blocks.credentials import VeniceCredentials
from prefect_venice.errors import (
    BillingAccessError,
    InvalidRequestError,
    SpendLimitError,
    VeniceError,
)
from prefect_venice.generation import format_usd
from prefect_venice.tasks.events import emit_video_event
from prefect_venice.tasks.resume import job_journal

__all__ = [
    "UNITS_PER_USD",
    "PeriodSpend",
    "Reservation",
    "block_label",
    "charged_by_venice",
    "day_spent",
    "period_of",
    "period_spend",
    "release",
    "report",
    "reserve",
    "settle",
    "split",
    "units",
]

_log = logging.getLogger(__name__)

UNITS_PER_USD = 10_000
"""Slots per dollar: a ten-thousandth of a dollar, the precision of Venice's prices."""

#: A counter's limit where no cap applies (Prefect's limits need one): $100 million.
_UNCAPPED = 10**12
_THRESHOLDS = (0.8, 1.0)

Period = Literal["day", "week", "month"]


def units(usd: float) -> int:
    """Dollars as slots, rounded up: a reservation never undercounts a price."""
    return max(1, math.ceil(round(usd * UNITS_PER_USD, 6)))


def block_label(credentials: VeniceCredentials) -> str:
    """Return the block's saved name, safe for a limit name (unsaved blocks: a key hash)."""
    name = getattr(credentials, "_block_document_name", None)
    if not name:
        key = credentials.resolve_api_key().get_secret_value()
        name = "unsaved-" + hashlib.sha256(key.encode()).hexdigest()[:10]
    return re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-") or "block"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequestError(
            f"spend_timezone {name!r} is not a time zone (e.g. UTC, Europe/Rome); "
            "nothing was queued or charged."
        ) from None


def period_of(period: Period, timezone: str, now: datetime | None = None) -> tuple[str, date]:
    """Return the period's id (2026-11-26, 2026-W48, 2026-11) and its first day, in `timezone`."""
    local = (now or datetime.now(tz=ZoneInfo("UTC"))).astimezone(_zone(timezone))
    today = local.date()
    if period == "day":
        return today.isoformat(), today
    if period == "week":
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}", today - timedelta(days=today.weekday())
    return f"{today:%Y-%m}", today.replace(day=1)


@dataclass(frozen=True)
class Reservation:
    """Slots taken for one paid call: give them back (release) or count them as spent (settle)."""

    cap_limit: str
    spent_limits: tuple[str, ...]
    units: int
    usd: float


@dataclass(frozen=True)
class PeriodSpend:
    """What a block's period holds: the cap, spent, reserved and what remains."""

    block: str
    period: str
    limit_usd: float | None
    spent_usd: float
    reserved_usd: float

    @property
    def remaining_usd(self) -> float | None:
        """What can still be reserved (None without a cap)."""
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)


def _names(label: str, period: str, day: date) -> tuple[str, str, str]:
    return (
        f"venice-spend-{label}-{period}",
        f"venice-spent-{label}-{period}",
        f"venice-spent-{label}-day-{day.isoformat()}",
    )


def _ensure(name: str, limit: int) -> None:
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # made meanwhile by another run
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=0.0)
                )
            return
        if current.limit != limit:
            # The operator changed the cap: the block is the truth.
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))


def _active(name: str) -> int:
    with get_client(sync_client=True) as client:
        try:
            return int(client.read_global_concurrency_limit_by_name(name).active_slots)
        except ObjectNotFound:
            return 0


def period_spend(credentials: VeniceCredentials, now: datetime | None = None) -> PeriodSpend:
    """Read the current period's account of a block from the Prefect server."""
    label = block_label(credentials)
    period, first_day = period_of(credentials.spend_period, credentials.spend_timezone, now)
    cap_name, spent_name, _ = _names(label, period, first_day)
    total, spent = _active(cap_name), _active(spent_name)
    return PeriodSpend(
        block=label,
        period=period,
        limit_usd=credentials.spend_limit_usd,
        spent_usd=spent / UNITS_PER_USD,
        reserved_usd=max(0, total - spent) / UNITS_PER_USD,
    )


def day_spent(credentials: VeniceCredentials, day: date) -> float:
    """Return what was settled as spent with this block on one day (in its time zone)."""
    name = f"venice-spent-{block_label(credentials)}-day-{day.isoformat()}"
    return _active(name) / UNITS_PER_USD


def reserve(credentials: VeniceCredentials, quote_usd: float, *, model: str) -> Reservation | None:
    """Reserve `quote_usd` of the block's period allowance; None when the block has no cap.

    Raises SpendLimitError, naming the cap, what is spent and reserved and the quote,
    when the quote does not fit: nothing may then be queued.
    """
    limit_usd = credentials.spend_limit_usd
    if limit_usd is None:
        return None
    label = block_label(credentials)
    period, first_day = period_of(credentials.spend_period, credentials.spend_timezone)
    cap_name, spent_name, day_name = _names(label, period, first_day)
    today = period_of("day", credentials.spend_timezone)[1]
    day_name = f"venice-spent-{label}-day-{today.isoformat()}"
    cap_units, needed = units(limit_usd) if limit_usd > 0 else 0, units(quote_usd)
    _ensure(cap_name, max(cap_units, 1))
    granted = cap_units > 0 and needed <= cap_units and _take(cap_name, needed)
    if not granted:
        account = period_spend(credentials)
        _threshold_event(credentials, account, model, crossed=1.0, refused=True)
        raise SpendLimitError(
            f"The quote of {format_usd(quote_usd)} for {model} would exceed the "
            f"{_adjective(credentials.spend_period)} limit of {format_usd(limit_usd)} on block "
            f"{label!r} ({format_usd(account.spent_usd)} spent, "
            f"{format_usd(account.reserved_usd)} reserved, {format_usd(quote_usd)} quoted); "
            "nothing was queued."
        )
    reservation = Reservation(cap_name, (spent_name, day_name), needed, quote_usd)
    try:  # the events are optional: a failure here must not strand the reservation
        after = _active(cap_name)
        before = after - needed
        for threshold in _THRESHOLDS:
            if before < threshold * cap_units <= after:
                account = period_spend(credentials)
                _threshold_event(credentials, account, model, crossed=threshold, refused=False)
    except Exception as exc:
        _log.warning("The spend threshold was not checked: %r", exc)
    return reservation


def _adjective(period: str) -> str:
    return {"day": "daily", "week": "weekly", "month": "monthly"}.get(period, period)


def _take(name: str, slots: int) -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.increment_concurrency_slots(names=[name], slots=slots, mode="concurrency")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (422, 423):  # over the limit: not granted
                return False
            raise
    return True


def report(credentials: VeniceCredentials, days: int = 7) -> str:
    """Describe the block's spend: this period's cap, spent, reserved and left, then per day."""
    account = period_spend(credentials)
    cap = "no cap" if account.limit_usd is None else f"cap {format_usd(account.limit_usd)}"
    lines = [
        f"Block {account.block!r}, {credentials.spend_period} {account.period} "
        f"({credentials.spend_timezone}), {cap}:",
        f"  spent     {format_usd(account.spent_usd)}",
        f"  reserved  {format_usd(account.reserved_usd)}",
    ]
    if account.remaining_usd is not None:
        lines.append(f"  remaining {format_usd(account.remaining_usd)}")
    today = period_of("day", credentials.spend_timezone)[1]
    lines.append("Per day (spent):")
    for back in range(days):
        day = today - timedelta(days=back)
        lines.append(f"  {day.isoformat()}  {format_usd(day_spent(credentials, day))}")
    lines += charged_by_venice(credentials)
    return "\n".join(lines)


def charged_by_venice(credentials: VeniceCredentials, now: datetime | None = None) -> list[str]:
    """Tell what Venice's usage history says it charged this period, and odd charges.

    The quotes come from the job journal (each paid job's record keeps its quote).
    Needs a key that may read billing (an ADMIN key); otherwise one line says so.
    """
    _, first_day = period_of(credentials.spend_period, credentials.spend_timezone, now)
    zone = _zone(credentials.spend_timezone)
    start = datetime.combine(first_day, dt_time.min, tzinfo=zone).astimezone(ZoneInfo("UTC"))
    quotes: dict[str, float] = {}
    for entry in job_journal().entries():
        quoted = entry.extra.get("quote_usd")
        ours = entry.base_url.rstrip("/") == credentials.base_url.rstrip("/")
        recent = entry.created_at >= start.isoformat()
        if ours and recent and entry.queue_id and isinstance(quoted, (int, float)):
            quotes[entry.queue_id] = float(quoted)
    try:
        with credentials.get_client() as client:
            found = spend_report(client, start, None, quotes)
    except BillingAccessError as exc:
        return [f"Charged by Venice: not readable with this key ({exc.message})"]
    except VeniceError as exc:
        return [f"Charged by Venice: unavailable ({exc.message})"]
    lines = [f"Charged by Venice this period: {format_usd(found.charged_total)}"]
    lines += [f"  differs from its quote: {mismatch.describe()}" for mismatch in found.mismatches]
    return lines


def split(reservation: Reservation, amounts_usd: list[float]) -> list[Reservation]:
    """Divide a batch's reservation into one per video (the last takes any rounding)."""
    parts = [units(usd) for usd in amounts_usd]
    if parts:
        parts[-1] += reservation.units - sum(parts)
    return [
        Reservation(reservation.cap_limit, reservation.spent_limits, part, usd)
        for part, usd in zip(parts, amounts_usd, strict=True)
    ]


def release(reservation: Reservation | None) -> None:
    """Give a reservation back: its job was not created.

    Best effort: it runs while another error is on its way up (which it must not
    hide); if the Prefect API fails here, the slots stay reserved until the period
    ends, which can only undercount what is left, never overspend.
    """
    if reservation is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots(
                # The server wants a positive occupancy (it only feeds its statistics).
                names=[reservation.cap_limit],
                slots=reservation.units,
                occupancy_seconds=0.001,
            )
    except Exception as exc:
        _log.warning("A spend reservation was not given back: %r", exc)


def settle(reservation: Reservation | None) -> None:
    """Count a reservation as spent: its job was created (and charged).

    Best effort: it runs after the paid call, which nothing optional may fail. The
    cap itself already holds the reservation; only the spent counters (what
    `prefect-venice spend` shows) would miss it if the Prefect API fails here.
    """
    if reservation is None:
        return
    try:
        for name in reservation.spent_limits:
            _ensure(name, _UNCAPPED)
            _take(name, reservation.units)
    except Exception as exc:
        _log.warning("A spend reservation was not counted as spent: %r", exc)


def _threshold_event(
    credentials: VeniceCredentials,
    account: PeriodSpend,
    model: str,
    *,
    crossed: float,
    refused: bool,
) -> None:
    emit_video_event(
        "venice.spend.threshold",
        model=model,
        resource_id=f"venice.spend.{account.block}",
        payload={
            "block": account.block,
            "period": account.period,
            "threshold": crossed,
            "limit_usd": account.limit_usd,
            "spent_usd": account.spent_usd,
            "reserved_usd": account.reserved_usd,
            "refused": refused,
        },
    )
