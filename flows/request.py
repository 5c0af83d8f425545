"""VideoRequest: the parameters of the generate_video flow, as the Prefect UI form shows them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from prefect_venice.generation import MIN_WAIT_SECONDS
from prefect_venice.media import to_data_url
from prefect_venice.models import QueueRequest
from prefect_venice.validation import build_queue_request

__all__ = ["DEFAULT_MODEL", "VideoRequest"]

DEFAULT_MODEL = "wan-2.5-preview-text-to-video"


class VideoRequest(BaseModel):
    """One video to generate, what it may cost, and where to put it.

    Only the names of blocks appear here, never a key: the flow's parameters are
    stored in the Prefect database and shown in the UI.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1,
        description="What to generate (image-to-video: the motion, not the image's content).",
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Venice video model id; GET /models?type=video lists them.",
    )
    duration: str = Field(default="5s", description='Video length the model offers, e.g. "5s".')
    resolution: str | None = Field(
        default=None, description='e.g. "720p"; empty: the model\'s default.'
    )
    aspect_ratio: str | None = Field(
        default=None, description='e.g. "16:9"; leave empty for models without aspect ratios.'
    )
    audio: bool | None = Field(
        default=None, description="Sound on or off, for models that let you choose."
    )
    negative_prompt: str | None = Field(default=None, description="What to avoid.")
    image: str | None = Field(
        default=None,
        description=(
            "Start image for image-to-video models: a local path (read where the flow runs), "
            "an http(s) URL or a data: URL."
        ),
    )
    max_usd: float | None = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=False,
        description="Budget in USD: a higher quote fails the run before anything is queued.",
    )
    output_dir: str = Field(
        default="videos",
        description="Local folder for the MP4 (where the flow runs); unused with storage_block.",
    )
    storage_block: str | None = Field(
        default=None,
        description=(
            "Writable file-system block to save to instead, as '<block-type-slug>/<name>', "
            "e.g. 'local-file-system/videos' or 'remote-file-system/s3-videos'."
        ),
    )
    filename: str | None = Field(
        default=None,
        description=(
            "A plain file name in output_dir (no folders), or a relative key in the storage "
            "block; empty: '<queue_id>.mp4'."
        ),
    )
    overwrite: bool = Field(
        default=False,
        description="Replace an existing file of that name (otherwise the run stops unpaid).",
    )
    job_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "A name for this paid job: another run with the same job_name (a rerun, a second "
            "trigger of the same slot) resumes or reports it instead of paying again."
        ),
    )
    max_wait_seconds: float | None = Field(
        default=None,
        ge=MIN_WAIT_SECONDS,
        allow_inf_nan=False,
        description="How long to wait for the video; empty: the integration's setting (1800).",
    )
    revoke_link: bool = Field(
        default=True,
        description="After saving, revoke a private model's download link (recommended).",
    )
    delete_from_venice: bool = Field(
        default=True,
        description="After saving, delete the media on Venice with /video/complete.",
    )

    def to_queue_request(self) -> QueueRequest:
        """Build the API request; a local image becomes a data: URL (checked for type and size).

        Raises InvalidRequestError naming every problem (never pydantic's raw error).
        """
        return build_queue_request(
            model=self.model,
            prompt=self.prompt,
            duration=self.duration,
            resolution=self.resolution,
            aspect_ratio=self.aspect_ratio,
            audio=self.audio,
            negative_prompt=self.negative_prompt,
            image_url=to_data_url(self.image, "image") if self.image else None,
        )
