"""Pydantic models of the Venice video requests and answers, checked against swagger.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "DEFAULT_PROMPT_CHARACTER_LIMIT",
    "Balance",
    "Balances",
    "CompleteRequest",
    "CompleteResult",
    "CompleteVideoRequest",
    "Consents",
    "InferenceDetails",
    "Keyframe",
    "Processing",
    "Progress",
    "QueueRequest",
    "QueueVideoRequest",
    "QueuedJob",
    "Quote",
    "QuoteRequest",
    "QuoteVideoRequest",
    "ReadyAtLink",
    "RetrieveRequest",
    "RetrieveResult",
    "RetrieveVideoRequest",
    "SeedanceConsents",
    "UsageEntry",
    "UsagePage",
    "VideoConstraints",
    "VideoElement",
    "VideoModel",
    "VideoSaved",
]

DEFAULT_PROMPT_CHARACTER_LIMIT = 2500
"""Prompt length limit when a model's constraints give no prompt_character_limit."""


class _Request(BaseModel):
    """Base of request bodies: unknown fields are a caller bug, so they are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_payload(self) -> dict[str, Any]:
        """Return the JSON body, omitting every field that was not set (exclude_none)."""
        return self.model_dump(mode="json", exclude_none=True)


class _Answer(BaseModel):
    """Base of answers: fields Venice adds later are ignored rather than fatal."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# Requests ---------------------------------------------------------------------


class SeedanceConsents(_Request):
    """Seedance provider consent attestations (each must be true)."""

    confirmed_terms_and_privacy: Literal[True]
    confirmed_legal_right: Literal[True]
    confirmed_screening_acknowledged: Literal[True]


class Consents(_Request):
    """Provider-specific consent attestations, needed only after a 409 needs_consent."""

    seedance: SeedanceConsents | None = None


class VideoElement(_Request):
    """A character or object for advanced element models (referenced as @Element1...)."""

    frontal_image_url: str | None = None
    reference_image_urls: Annotated[list[str], Field(max_length=3)] | None = None
    video_url: str | None = None


class Keyframe(_Request):
    """A keyframe image pinned to a frame position of the 24 fps output."""

    image_url: str
    frame_index: Annotated[int, Field(ge=0)]


class QueueRequest(_Request):
    """Body of POST /video/queue (swagger: QueueVideoRequest); the only paid call."""

    model: str = Field(description="Video model id, e.g. wan-2.5-preview-text-to-video.")
    prompt: str = Field(min_length=1, max_length=20000, description="What to generate.")
    duration: str = Field(description='Video length as the model lists it, e.g. "5s".')
    negative_prompt: str | None = Field(default=None, max_length=20000)
    resolution: str | None = Field(default=None, description='e.g. "720p"; model-dependent.')
    aspect_ratio: str | None = Field(default=None, description='e.g. "16:9"; model-dependent.')
    audio: bool | None = Field(default=None, description="Only for audio_configurable models.")
    image_url: str | None = Field(default=None, description="http(s) or data: URL.")
    end_image_url: str | None = None
    audio_url: str | None = None
    video_url: str | None = None
    upscale_factor: Literal[1, 2, 4] | None = None
    reference_image_urls: Annotated[list[str], Field(max_length=30)] | None = None
    reference_video_urls: Annotated[list[str], Field(max_length=10)] | None = None
    reference_audio_urls: Annotated[list[str], Field(max_length=10)] | None = None
    reference_document_urls: Annotated[list[str], Field(max_length=1)] | None = None
    elements: Annotated[list[VideoElement], Field(max_length=4)] | None = None
    scene_image_urls: Annotated[list[str], Field(max_length=4)] | None = None
    keyframes: Annotated[list[Keyframe], Field(max_length=10)] | None = None
    omni_reference_task_type: Literal["auto", "reference", "edit", "extend"] | None = None
    consents: Consents | None = None

    def to_quote(self) -> QuoteRequest:
        """Return the pricing inputs of this request as a QuoteRequest (no prompt needed)."""
        return QuoteRequest(
            model=self.model,
            duration=self.duration,
            resolution=self.resolution,
            aspect_ratio=self.aspect_ratio,
            audio=self.audio,
            upscale_factor=self.upscale_factor,
            video_url=self.video_url,
        )


class QuoteRequest(_Request):
    """Body of POST /video/quote (swagger: QuoteVideoRequest); free."""

    model: str
    duration: str
    resolution: str | None = None
    aspect_ratio: str | None = None
    audio: bool | None = None
    upscale_factor: Literal[1, 2, 4] | None = None
    video_url: str | None = None
    reference_video_total_duration: Annotated[float, Field(ge=0)] | None = None


class RetrieveRequest(_Request):
    """Body of POST /video/retrieve (swagger: RetrieveVideoRequest)."""

    model: str
    queue_id: str
    delete_media_on_completion: bool | None = None


class CompleteRequest(_Request):
    """Body of POST /video/complete (swagger: CompleteVideoRequest)."""

    model: str
    queue_id: str


# Swagger's own names, for readers checking the models against the spec.
QueueVideoRequest = QueueRequest
QuoteVideoRequest = QuoteRequest
RetrieveVideoRequest = RetrieveRequest
CompleteVideoRequest = CompleteRequest


# Answers ----------------------------------------------------------------------


class QueuedJob(_Answer):
    """Answer of /video/queue: what every later call needs. Persist it at once.

    `download_url` is present only for private models and is sent only once; it is
    a bearer secret, so it is held as a SecretStr and never printed.
    """

    model: str
    queue_id: str
    download_url: SecretStr | None = None


class Quote(_Answer):
    """Answer of /video/quote: the price in USD."""

    usd: float = Field(validation_alias=AliasChoices("quote", "usd"), ge=0)


class Processing(_Answer):
    """Retrieve answer: the job is still running (times in milliseconds)."""

    kind: Literal["processing"] = "processing"
    status: Literal["PROCESSING"] = "PROCESSING"
    average_execution_time_ms: float = Field(
        validation_alias=AliasChoices("average_execution_time", "average_execution_time_ms"),
        description="Venice's estimate of the whole run (about the 80th percentile), in ms.",
    )
    execution_duration_ms: float = Field(
        validation_alias=AliasChoices("execution_duration", "execution_duration_ms"),
        description="How long this job has run so far, in ms.",
    )


class VideoSaved(_Answer):
    """The MP4 is complete, checked and renamed into place at `path`."""

    kind: Literal["saved"] = "saved"
    path: Path
    size_bytes: int
    sha256: str
    queue_id: str | None = None
    source: Literal["retrieve", "link"] = "retrieve"


class ReadyAtLink(_Answer):
    """Retrieve answer: COMPLETED, and the video waits at the job's private download_url."""

    kind: Literal["ready_at_link"] = "ready_at_link"
    status: Literal["COMPLETED"] = "COMPLETED"


RetrieveResult = Annotated[Processing | VideoSaved | ReadyAtLink, Field(discriminator="kind")]
"""What one retrieve call found: still processing, saved inline, or ready at the link."""


class CompleteResult(_Answer):
    """Answer of /video/complete."""

    success: bool


class VideoConstraints(_Answer):
    """model_spec.constraints of a video model ("Video Model Constraints" in swagger)."""

    aspect_ratios: list[str] = Field(description="Empty: the request must omit aspect_ratio.")
    resolutions: list[str] = Field(description="Empty: the request must omit resolution.")
    durations: list[str] = Field(description="Empty: the model has no defined durations.")
    model_type: str = Field(description="text-to-video, image-to-video or video.")
    audio: bool = Field(description="Can the model make sound.")
    audio_configurable: bool = Field(description="May the request set `audio`.")
    prompt_character_limit: int | None = Field(default=None, description="None means 2500.")

    @property
    def max_prompt_characters(self) -> int:
        """The prompt length limit, applying the documented default of 2500."""
        return self.prompt_character_limit or DEFAULT_PROMPT_CHARACTER_LIMIT


class _ModelSpec(_Answer):
    name: str | None = None
    privacy: Literal["private", "anonymized"] | None = None
    constraints: VideoConstraints | None = None
    offline: bool | None = None


class VideoModel(_Answer):
    """One entry of GET /models?type=video."""

    id: str
    type: str = "video"
    created: float | None = None
    model_spec: _ModelSpec = Field(default_factory=_ModelSpec)

    @property
    def name(self) -> str:
        """Human-readable name, falling back to the id."""
        return self.model_spec.name or self.id

    @property
    def privacy(self) -> str | None:
        """Privacy mode: private (answers with a download_url) or anonymized."""
        return self.model_spec.privacy

    @property
    def constraints(self) -> VideoConstraints | None:
        """The model's request constraints, when Venice lists them."""
        return self.model_spec.constraints


@dataclass(frozen=True)
class Progress:
    """A snapshot of a wait, passed to on_progress after each poll."""

    queue_id: str
    polls: int
    elapsed_seconds: float
    fraction: float | None
    """Estimated share done, 0..1 (None before Venice gives an estimate)."""
    estimated_remaining_seconds: float | None
    status: str = "PROCESSING"


# Billing answers (swagger: getBillingBalance, BillingUsageHistoryResponse) ------------


class Balances(_Answer):
    """Remaining balances; None where the account has none of that kind."""

    diem: float | None = Field(description="DIEM left in this epoch; None if not staking.")
    usd: float | None = Field(description="USD left; None if not available.")


class Balance(_Answer):
    """Answer of GET /billing/balance (needs an ADMIN key)."""

    can_consume: bool = Field(
        alias="canConsume", description="Whether the balance allows API requests."
    )
    consumption_currency: str | None = Field(
        alias="consumptionCurrency",
        description="What is spent first: USD, VCU, DIEM or BUNDLED_CREDITS (None: not known).",
    )
    balances: Balances
    diem_epoch_allocation: float = Field(
        alias="diemEpochAllocation", description="DIEM allocated for the epoch from staking."
    )


class InferenceDetails(_Answer):
    """The inference request a usage entry belongs to (for a video job: its queue id)."""

    completion_tokens: int | None = Field(alias="completionTokens")
    inference_execution_time_ms: int | None = Field(alias="inferenceExecutionTime")
    prompt_tokens: int | None = Field(alias="promptTokens")
    request_id: str = Field(alias="requestId")


class UsageEntry(_Answer):
    """One entry of GET /billing/usage-history: something Venice charged (or credited).

    `amount` is signed as Venice's example shows: a charge is negative, so
    `charged` (= -amount) is what was paid, in `currency`. `timestamp` is UTC.
    """

    amount: float
    currency: str = Field(description="USD, DIEM or BUNDLED_CREDITS.")
    inference_details: InferenceDetails | None = Field(alias="inferenceDetails")
    notes: str
    price_per_unit_usd: float = Field(alias="pricePerUnitUsd")
    sku: str = Field(description="The product, e.g. <model id>-video-unit.")
    timestamp: AwareDatetime
    units: float

    @property
    def charged(self) -> float:
        """What this entry cost, in `currency` (negative for a refund or credit)."""
        return -self.amount

    @property
    def request_id(self) -> str | None:
        """The inference request this entry charged (a video job's queue id), if any."""
        return self.inference_details.request_id if self.inference_details else None


class UsagePage(_Answer):
    """One page of GET /billing/usage-history; `next_cursor` is None on the last page."""

    data: list[UsageEntry]
    next_cursor: str | None = Field(alias="nextCursor")

    @property
    def entries(self) -> list[UsageEntry]:
        """The entries of this page, oldest first."""
        return self.data
