"""Small records the Venice tasks hand to each other and return: never the video bytes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CleanupResult", "VideoReady", "VideoResult"]


class VideoReady(BaseModel):
    """What wait_for_video found: the job is done, and where its MP4 can be had.

    Venice answers the last retrieve of a public model with the MP4 itself, so that
    answer has already been streamed (checked, atomically) to `inline_path`. For a
    private model `inline_path` is None and the MP4 waits at the job's download_url.
    """

    model_config = ConfigDict(frozen=True)

    queue_id: str = Field(description="Venice's id of the job.")
    model: str = Field(description="Video model that made the video.")
    inline_path: str | None = Field(
        default=None, description="Local file holding the MP4 from the retrieve answer."
    )
    size_bytes: int | None = Field(default=None, description="Size of the inline MP4.")
    sha256: str | None = Field(default=None, description="Hex SHA-256 of the inline MP4.")
    polls: int = Field(default=0, description="Retrieve calls this wait made.")
    wait_seconds: float = Field(default=0.0, description="Seconds spent waiting.")


class VideoResult(BaseModel):
    """Where a finished video was saved, what it is, what it cost and how long it took."""

    model_config = ConfigDict(frozen=True)

    queue_id: str = Field(description="Venice's id of the job.")
    model: str = Field(description="Video model that made the video.")
    path: str = Field(description="Local file path, or the key inside storage_block.")
    storage_block: str | None = Field(
        default=None, description="Name of the file-system block holding the video, if any."
    )
    size_bytes: int = Field(description="Size of the MP4 in bytes.")
    sha256: str = Field(description="Hex SHA-256 of the MP4.")
    source: str = Field(description="'retrieve' (inline answer) or 'link' (private link).")
    cost_usd: float | None = Field(default=None, description="The quoted price in USD.")
    wait_seconds: float | None = Field(default=None, description="Seconds spent polling.")
    download_seconds: float = Field(description="Seconds spent fetching and saving the MP4.")


class CleanupResult(BaseModel):
    """What complete_video did; None where a step was not asked for (or had no link)."""

    model_config = ConfigDict(frozen=True)

    queue_id: str = Field(description="Venice's id of the job.")
    link_revoked: bool | None = Field(
        default=None, description="True: link revoked; False: it was already gone."
    )
    media_deleted: bool | None = Field(
        default=None, description="True: /video/complete deleted it; False: already gone."
    )
