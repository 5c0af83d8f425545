"""VideoRequest: the parameters of the generate_video flow, as the Prefect UI form shows them.

The form is the model's JSON schema. Every field has a title, a description and a
valid default, so a run with only a prompt completes; known values are choices
(flows/choices.py). Python callers keep the original types: `None` still means "the
model's default" and a model id that is not in the form's list is still accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from prefect_venice.flows.choices import ASPECT_RATIOS, DURATIONS, RESOLUTIONS, VIDEO_MODELS
from prefect_venice.generation import MIN_WAIT_SECONDS
from prefect_venice.media import to_data_url
from prefect_venice.models import QueueRequest, VideoModel
from prefect_venice.validation import build_queue_request

__all__ = ["DEFAULT", "DEFAULT_MODEL", "VideoRequest"]

DEFAULT_MODEL = "wan-2.5-preview-text-to-video"
DEFAULT = "default"
"""The form's value for "what the model does by default" (Python callers may pass None)."""


def _choices(values: tuple[str, ...]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": [DEFAULT, *values]})


def _text() -> WithJsonSchema:
    return WithJsonSchema({"type": "string"})


class VideoRequest(BaseModel):
    """One video to generate, what it may cost, and where to put it.

    Only the names of blocks appear here, never a key: the flow's parameters are
    stored in the Prefect database and shown in the UI.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    prompt: str = Field(
        min_length=1,
        title="Prompt",
        description="What to generate (for image-to-video: the motion, not the image's content).",
    )
    model: Annotated[str, WithJsonSchema({"type": "string", "enum": list(VIDEO_MODELS)})] = Field(
        default=DEFAULT_MODEL,
        title="Model",
        description=(
            "Venice video model. `prefect-venice models` lists each one's durations, "
            "resolutions, aspect ratios and price."
        ),
    )
    duration: Annotated[str, WithJsonSchema({"type": "string", "enum": list(DURATIONS)})] = Field(
        default="5s",
        title="Duration",
        description="Video length; the chosen model offers some of these (checked before paying).",
    )
    resolution: Annotated[str | None, _choices(RESOLUTIONS)] = Field(
        default=DEFAULT,
        title="Resolution",
        description="'default': the model's own default resolution.",
    )
    aspect_ratio: Annotated[str | None, _choices(ASPECT_RATIOS)] = Field(
        default=DEFAULT,
        title="Aspect ratio",
        description=(
            "'default': the model's first listed aspect ratio, or none for models that take none."
        ),
    )
    audio: Annotated[
        bool | None, WithJsonSchema({"type": "string", "enum": [DEFAULT, "on", "off"]})
    ] = Field(
        default=None,
        title="Audio",
        description="Sound on or off, for models that let you choose; 'default': the model's.",
        json_schema_extra={"default": DEFAULT},
    )
    negative_prompt: Annotated[str | None, _text()] = Field(
        default="", title="Negative prompt", description="What to avoid; empty: nothing."
    )
    image: Annotated[str | None, _text()] = Field(
        default="",
        title="Start image",
        description=(
            "For image-to-video models: a local path (read where the flow runs), an https "
            "URL or a data: URL; empty for text-to-video."
        ),
    )
    max_usd: Annotated[float | None, WithJsonSchema({"type": "number", "minimum": 0})] = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=False,
        title="Budget (USD)",
        description="A higher quote fails the run before anything is queued or charged.",
    )
    output_dir: str = Field(
        default="videos",
        title="Output folder",
        description="Local folder for the MP4, on the machine that runs the flow.",
    )
    storage_block: Annotated[str | None, _text()] = Field(
        default="",
        title="Storage block",
        description=(
            "Save to a writable file-system block instead of the output folder: its type slug "
            "and name, e.g. local-file-system/videos or remote-file-system/s3-videos. Empty: "
            "the output folder."
        ),
    )
    filename: Annotated[str | None, _text()] = Field(
        default="",
        title="File name",
        description=(
            "A plain file name in the output folder (no folders), or a relative key in the "
            "storage block; empty: the queue id, e.g. 3f2c....mp4."
        ),
    )
    overwrite: bool = Field(
        default=False,
        title="Overwrite",
        description="Replace an existing file of that name (otherwise the run stops unpaid).",
    )
    job_name: Annotated[str | None, _text()] = Field(
        default="",
        max_length=200,
        title="Job name",
        description=(
            "A name for this paid job: another run with the same job name (a rerun, a second "
            "trigger of the same slot) resumes or reports it instead of paying again. Empty: "
            "the job belongs to this run (its retries resume it)."
        ),
    )
    max_wait_seconds: Annotated[
        float | None, WithJsonSchema({"type": "number", "minimum": 0, "default": 0})
    ] = Field(
        default=None,
        ge=MIN_WAIT_SECONDS,
        allow_inf_nan=False,
        title="Maximum wait (seconds)",
        description=(
            "How long to wait for the video, at least 1 s; 0: the worker's setting (1800)."
        ),
        json_schema_extra={"default": 0},
    )
    revoke_link: bool = Field(
        default=True,
        title="Revoke the private link after saving",
        description="For private models: end the one-time download link once the MP4 is saved.",
    )
    delete_from_venice: bool = Field(
        default=True,
        title="Delete from Venice after saving",
        description="Delete the media on Venice with /video/complete once the MP4 is saved.",
    )

    @field_validator("max_wait_seconds", mode="before")
    @classmethod
    def _zero_is_the_setting(cls, value: Any) -> Any:
        # The form cannot send "no value" for a number: it sends 0 for the setting.
        return None if value == 0 else value

    @field_validator("resolution", "aspect_ratio", mode="before")
    @classmethod
    def _default_is_none(cls, value: Any) -> Any:
        return None if value in (DEFAULT, "") else value

    @field_validator("negative_prompt", "image", "storage_block", "filename", "job_name")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("audio", mode="before")
    @classmethod
    def _audio_choice(cls, value: Any) -> bool | None:
        choices: dict[Any, bool | None] = {DEFAULT: None, "": None, "on": True, "off": False}
        if isinstance(value, str):
            if value not in choices:
                raise ValueError("audio must be 'default', 'on' or 'off'")
            return choices[value]
        if value is None or isinstance(value, bool):
            return value
        raise ValueError("audio must be 'default', 'on' or 'off'")

    def to_queue_request(self, model: VideoModel | None = None) -> QueueRequest:
        """Build the API request; a local image becomes a data: URL (checked for type and size).

        With the catalogue's `model`, a default aspect ratio becomes the model's first
        listed one where the model needs one. Raises InvalidRequestError naming every
        problem (never pydantic's raw error).
        """
        aspect_ratio = self.aspect_ratio
        constraints = model.constraints if model is not None else None
        if aspect_ratio is None and constraints is not None and constraints.aspect_ratios:
            aspect_ratio = constraints.aspect_ratios[0]
        return build_queue_request(
            model=self.model,
            prompt=self.prompt,
            duration=self.duration,
            resolution=self.resolution,
            aspect_ratio=aspect_ratio,
            audio=self.audio,
            negative_prompt=self.negative_prompt,
            image_url=to_data_url(self.image, "image") if self.image else None,
        )
