"""`GET /billing/balance` and `GET /billing/usage-history`, read from the ledger's usage entries.

The usage history is a cursor-paginated walk in ascending timestamp order (swagger
`getBillingUsageHistory`): the first request takes the filters (`startTimestamp`
inclusive, `endTimestamp` exclusive, `currency`, `pageSize` 10-1000, default 1000);
each page that has more after it carries `nextCursor` (JSON body) or `x-next-cursor`
(CSV header); a continuation sends the cursor and nothing else. A cursor sent with
filters, or one that is malformed, altered, expired, issued to another key or issued
before the ledger was reset, is answered 400.

A cursor is `base64url(JSON position and filters) + base64url(HMAC)`, signed with a
secret of the running service, so it matches the spec's `^[A-Za-z0-9_-]+$` and any
change to it is caught. Positions are indexes into an append-only list, so pages
already walked stay the same while new usage is recorded.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import csv
import hashlib
import hmac
import io
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from .validation import RequestInvalid

#: Filters of the first page (swagger: "filter parameters").
FILTERS = ("currency", "endTimestamp", "pageSize", "startTimestamp")
CURRENCIES = ("USD", "DIEM", "BUNDLED_CREDITS")
MIN_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
_MAX_CURSOR = 512
_MAX_TIMESTAMP = 40
_CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z", re.ASCII
)
_SIGNATURE_BYTES = 16
_SIGNATURE_CHARS = 22  # base64url of 16 bytes, without padding
_CSV_COLUMNS = (
    "timestamp",
    "sku",
    "units",
    "pricePerUnitUsd",
    "amount",
    "currency",
    "notes",
    "requestId",
    "promptTokens",
    "completionTokens",
    "inferenceExecutionTime",
)


class UsageRecord(NamedTuple):
    """One entry of the usage history (a paid `/video/queue` is one entry)."""

    #: When it was recorded, whole milliseconds since the Unix epoch (UTC).
    time_ms: int
    #: Signed as Venice's example shows: a charge is negative.
    amount: float
    currency: str
    sku: str
    units: float
    price_per_unit_usd: float
    notes: str
    #: The inference request it belongs to: the queue id of a video job.
    request_id: str | None

    def to_json(self) -> dict[str, Any]:
        """Render the entry as an item of `BillingUsageHistoryResponse.data`."""
        details: dict[str, Any] | None = None
        if self.request_id is not None:
            # A video job is charged when it is queued: no tokens, no run time yet.
            details = {
                "completionTokens": None,
                "inferenceExecutionTime": None,
                "promptTokens": None,
                "requestId": self.request_id,
            }
        return {
            "amount": self.amount,
            "currency": self.currency,
            "inferenceDetails": details,
            "notes": self.notes,
            "pricePerUnitUsd": self.price_per_unit_usd,
            "sku": self.sku,
            "timestamp": format_ms(self.time_ms),
            "units": self.units,
        }

    def to_csv_row(self) -> list[str]:
        """Render the entry as a row under `_CSV_COLUMNS`."""
        return [
            format_ms(self.time_ms),
            self.sku,
            _number(self.units),
            _number(self.price_per_unit_usd),
            _number(self.amount),
            self.currency,
            self.notes,
            self.request_id or "",
            "",
            "",
            "",
        ]


def video_sku(model_id: str) -> str:
    """Return the product name of one video of `model_id` (like the spec's `...-image-unit`)."""
    return f"{model_id}-video-unit"


def format_ms(time_ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as in the spec's `2026-06-15T19:05:10.504Z`."""
    moment = datetime.fromtimestamp(time_ms // 1000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{time_ms % 1000:03d}Z"


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(value)


def parse_timestamp(name: str, text: str) -> int:
    """Return an ISO 8601 UTC timestamp with a Z suffix in microseconds since the epoch."""
    if len(text) > _MAX_TIMESTAMP:
        raise RequestInvalid(f"{name} must be at most {_MAX_TIMESTAMP} characters", name)
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise RequestInvalid(
            f"{name} must be an ISO 8601 UTC timestamp with a Z suffix, "
            f"such as 2026-06-01T00:00:00Z (got {text[:_MAX_TIMESTAMP]!r})",
            name,
        )
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise RequestInvalid(f"{name} is not a valid date and time: {text!r}", name) from None
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    return seconds * 1_000_000 + int(fraction)


# Cursors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk:
    """Where a usage-history walk stands and the filters it carries."""

    #: Index of the next entry to look at in the ledger's usage list.
    position: int
    page_size: int
    currency: str | None
    #: Exclusive upper bound, microseconds since the epoch.
    end_us: int | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and reads cursors for one service, ledger epoch and API key."""

    def __init__(self, secret: bytes, lifetime_seconds: float) -> None:
        self._secret = secret
        self.lifetime_seconds = lifetime_seconds

    @staticmethod
    def _user(authorization: str) -> str:
        # The key itself never goes into a cursor: only a short digest of it.
        return hashlib.sha256(authorization.encode()).hexdigest()[:16]

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:_SIGNATURE_BYTES])

    def encode(self, walk: Walk, epoch: str, authorization: str) -> str:
        """Return the cursor that continues `walk`."""
        state = {
            "p": walk.position,
            "n": walk.page_size,
            "c": walk.currency,
            "z": walk.end_us,
            "e": epoch,
            "u": self._user(authorization),
            "t": round(time.time(), 3),
        }
        payload = _b64(json.dumps(state, separators=(",", ":")).encode())
        return payload + self._sign(payload)

    def decode(self, cursor: str, epoch: str, authorization: str) -> Walk:
        """Return the walk a cursor continues; raise `RequestInvalid` for any bad cursor."""
        if len(cursor) > _MAX_CURSOR or not _CURSOR_CHARS.fullmatch(cursor):
            raise _bad_cursor("it is not a cursor this service issued")
        payload, signature = cursor[:-_SIGNATURE_CHARS], cursor[-_SIGNATURE_CHARS:]
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            raise _bad_cursor("it was altered or not issued by this service")
        try:
            state = json.loads(_unb64(payload))
            walk = Walk(int(state["p"]), int(state["n"]), state["c"], state["z"])
            user, issued_epoch, issued_at = state["u"], state["e"], float(state["t"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise _bad_cursor("it cannot be read") from None
        if user != self._user(authorization):
            raise _bad_cursor("it was issued to another user")
        if issued_epoch != epoch:
            raise _bad_cursor("the usage history was reset after it was issued")
        if time.time() - issued_at > self.lifetime_seconds:
            raise _bad_cursor("it has expired")
        return walk


def _bad_cursor(why: str) -> RequestInvalid:
    return RequestInvalid(
        f"The cursor was rejected: {why}. Restart the walk from the first page.", "cursor"
    )


# Requests ---------------------------------------------------------------------------


def _parameters(query: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in values:
            raise RequestInvalid(f"{name} was given more than once", name)
        values[name] = value
    return values


def first_walk(params: dict[str, str]) -> tuple[Walk, int | None]:
    """Check the filters of a first page; return its walk and the start bound (µs)."""
    page_size = MAX_PAGE_SIZE
    if "pageSize" in params:
        text = params["pageSize"]
        if not (text.isascii() and text.isdigit()):
            raise RequestInvalid(f"pageSize must be a whole number, not {text[:20]!r}", "pageSize")
        page_size = int(text)
        if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise RequestInvalid(
                f"pageSize must be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}, not {page_size}",
                "pageSize",
            )
    currency = params.get("currency")
    if currency is not None and currency not in CURRENCIES:
        raise RequestInvalid(
            f"currency must be one of {', '.join(CURRENCIES)}, not {currency[:20]!r}", "currency"
        )
    start = params.get("startTimestamp")
    end = params.get("endTimestamp")
    start_us = parse_timestamp("startTimestamp", start) if start is not None else None
    end_us = parse_timestamp("endTimestamp", end) if end is not None else None
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise RequestInvalid("endTimestamp must be later than startTimestamp", "endTimestamp")
    return Walk(0, page_size, currency, end_us), start_us


def _matches(record: UsageRecord, walk: Walk) -> bool:
    if walk.currency is not None and record.currency != walk.currency:
        return False
    return walk.end_us is None or record.time_ms * 1000 < walk.end_us


@dataclass(frozen=True)
class Page:
    """One page of the walk: its entries and the position after it (None: the last page)."""

    entries: list[UsageRecord]
    walk: Walk
    next_position: int | None


def read_page(records: Sequence[UsageRecord], walk: Walk, start_us: int | None) -> Page:
    """Select the next `walk.page_size` entries at or after `walk.position`."""
    index = walk.position
    if start_us is not None:
        # Entries are appended in time order: skip everything before the start at once.
        while index < len(records) and records[index].time_ms * 1000 < start_us:
            index += 1
    found: list[UsageRecord] = []
    while index < len(records):
        record = records[index]
        if walk.end_us is not None and record.time_ms * 1000 >= walk.end_us:
            return Page(found, walk, None)  # time order: nothing later can match
        if _matches(record, walk):
            if len(found) == walk.page_size:
                return Page(found, walk, index)  # one more remains: a cursor points at it
            found.append(record)
        index += 1
    return Page(found, walk, None)


class UsageHistory:
    """Answers `GET /billing/usage-history` for one service (call it under the service lock)."""

    def __init__(self, codec: CursorCodec) -> None:
        self.codec = codec
        self._last_export_ms = 0

    def page(
        self, records: Sequence[UsageRecord], epoch: str, query: str, authorization: str
    ) -> Page:
        """Check the query and select the page it asks for; raise `RequestInvalid` (400)."""
        params = _parameters(query)
        cursor = params.get("cursor")
        if cursor is None:
            walk, start_us = first_walk(params)
            return read_page(records, walk, start_us)
        sent = [name for name in FILTERS if name in params]
        if sent:
            raise RequestInvalid(
                "A continuation sends the cursor and nothing else: the filters travel inside "
                f"the cursor (remove {', '.join(sent)})",
                sent[0],
            )
        walk = self.codec.decode(cursor, epoch, authorization)
        return read_page(records, walk, None)

    def next_cursor(self, page: Page, epoch: str, authorization: str) -> str | None:
        """Return the cursor of the page after `page`, or None when `page` is the last."""
        if page.next_position is None:
            return None
        walk = page.walk
        following = Walk(page.next_position, walk.page_size, walk.currency, walk.end_us)
        return self.codec.encode(following, epoch, authorization)

    def csv_filename(self) -> str:
        """Return `billing-usage-history-<UTC export time, ms>.csv`, unique and rising."""
        now_ms = max(int(time.time() * 1000), self._last_export_ms + 1)
        self._last_export_ms = now_ms
        moment = datetime.fromtimestamp(now_ms // 1000, tz=timezone.utc)
        return f"billing-usage-history-{moment:%Y%m%dT%H%M%S}{now_ms % 1000:03d}Z.csv"


def render_json(page: Page, cursor: str | None) -> dict[str, Any]:
    """Return the `BillingUsageHistoryResponse` body of a page."""
    return {"data": [record.to_json() for record in page.entries], "nextCursor": cursor}


def render_csv(page: Page) -> bytes:
    """Return the page as CSV: a header row of the JSON field names, then one row per entry."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for record in page.entries:
        writer.writerow(record.to_csv_row())
    return out.getvalue().encode("utf-8")


def wants_csv(accept: str | None) -> bool:
    """Whether the Accept header includes text/csv (the spec's switch to a CSV export)."""
    if not accept:
        return False
    kinds = (part.split(";")[0].strip().lower() for part in accept.split(","))
    return "text/csv" in kinds


def balance_body(balance_usd: float) -> dict[str, Any]:
    """Return the `getBillingBalance` answer of a USD account with no staked DIEM."""
    usd = round(balance_usd, 6)
    return {
        "canConsume": usd > 0,
        "consumptionCurrency": "USD",
        "balances": {"diem": None, "usd": usd},
        "diemEpochAllocation": 0,
    }
