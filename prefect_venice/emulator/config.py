"""Settings of the emulator: the service it pretends to be, and the faults it injects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: The API key the emulator accepts unless told otherwise.
DEFAULT_API_KEY = "emulator-key"
#: Prompts containing one of these words (case-insensitive) are refused with 422.
DEFAULT_VIOLATION_WORDS = ("forbidden",)

#: Endpoint names used by fault settings, the ledger and the CLI.
ENDPOINTS = (
    "models",
    "quote",
    "queue",
    "retrieve",
    "complete",
    "link_get",
    "link_delete",
    "balance",
    "usage_history",
)
#: The endpoints under `/billing`, which an INFERENCE key may not call.
BILLING_ENDPOINTS = ("balance", "usage_history")


def _rates() -> dict[str, float]:
    return {}


@dataclass(frozen=True)
class FaultConfig:
    """Faults to inject, per endpoint name (see `ENDPOINTS`; the key "*" applies to all).

    Rates are probabilities between 0 and 1 drawn from a seeded generator per
    endpoint, so a sequential run repeats exactly. Latency is in real seconds
    (not scaled) and is added before the answer.

    An injected 500 on `queue` means the job was NOT created and nothing was
    charged (the documented retryable case). `queue_drop_after_create_rate` is
    the opposite: the job is created and charged, then the connection is closed
    without an answer, so the client cannot know the outcome.
    `queue_drop_after_create_first` does the same to the first N queue calls that
    create a job (counted from the start, or from the last `configure_faults`),
    deterministically; later ones answer normally (unless the rate drops them).
    """

    rate_500: Mapping[str, float] = field(default_factory=_rates)
    rate_503: Mapping[str, float] = field(default_factory=_rates)
    #: Fraction of video bodies (`retrieve` MP4, `link_get`) cut off mid-way.
    drop_rate: Mapping[str, float] = field(default_factory=_rates)
    latency: Mapping[str, float] = field(default_factory=_rates)
    queue_drop_after_create_rate: float = 0.0
    #: Drop the answer of the first N queue calls that create (and charge) a job.
    queue_drop_after_create_first: int = 0

    @staticmethod
    def lookup(table: Mapping[str, float], endpoint: str) -> float:
        """Return the value for `endpoint`, falling back to "*" and then to 0."""
        return float(table.get(endpoint, table.get("*", 0.0)))


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. Periods are emulated seconds, multiplied by `time_scale`.

    Reported times (`average_execution_time`, `execution_duration`, rate-limit
    reset headers, `Retry-After`) are the real times a client experiences, so a
    client needs no knowledge of the scale.

    `real_time_limits` exempts the per-key rate-limit windows and the failure
    lockout (its window and its duration) from the scale: jobs run fast while a
    client that breaks the real per-minute limits is still caught.
    """

    host: str = "127.0.0.1"
    #: 0 picks a free port.
    port: int = 0
    #: Port of the second origin that serves private download links; 0 picks a free port.
    link_port: int = 0
    api_key: str = DEFAULT_API_KEY
    time_scale: float = 1.0
    seed: int = 0
    balance_usd: float = 100.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: Largest accepted request body, in bytes; larger ones get 413.
    max_body_bytes: int = 25 * 1024 * 1024
    content_violation_words: tuple[str, ...] = DEFAULT_VIOLATION_WORDS
    #: Pad every video to exactly this many bytes instead of a realistic size.
    video_bytes: int | None = None
    # Per-key rate limits (requests per window) and the failure lockout.
    rate_limits_enabled: bool = True
    queue_requests_per_window: int = 40
    retrieve_requests_per_window: int = 120
    rate_limit_window_seconds: float = 60.0
    lockout_enabled: bool = True
    lockout_failures: int = 20
    lockout_window_seconds: float = 30.0
    lockout_seconds: float = 30.0
    #: Rate-limit windows and the lockout in real seconds, whatever `time_scale` says.
    real_time_limits: bool = False
    # Private download links.
    link_max_gets: int = 5
    link_lifetime_seconds: float = 24 * 3600.0
    #: Multiplies every model's base job duration (emulated seconds).
    job_duration_factor: float = 1.0
    #: What a job is charged above (or below) its quote, as a fraction of the quoted price:
    #: 0.1 charges 10% more. One number for every model, or a mapping of model id (or "*")
    #: to a fraction. Venice charges the price of the moment a job is queued, which can
    #: differ from an earlier quote; this makes that happen. `Emulator.set_charge_markup`
    #: changes it while running.
    charge_markup: float | Mapping[str, float] = 0.0
    #: A second accepted key of type INFERENCE: it may call the video endpoints (sharing
    #: the first key's rate limits and lockout) but `/billing/*` answers it 401.
    inference_api_key: str | None = None
    #: How long a usage-history cursor stays valid, in emulated seconds.
    usage_cursor_lifetime_seconds: float = 3600.0

    def scaled(self, emulated_seconds: float) -> float:
        """Real seconds for an emulated period."""
        return emulated_seconds * self.time_scale


def markup_for(markup: float | Mapping[str, float], model_id: str) -> float:
    """Return the fraction `markup` adds to `model_id`'s charges (falling back to "*", then 0)."""
    if isinstance(markup, Mapping):
        return FaultConfig.lookup(markup, model_id)
    return float(markup)
