"""Prefect tasks for Venice video generation: one per step of a video's path."""

from prefect_venice.tasks.produce import produce_video, quote_videos
from prefect_venice.tasks.records import CleanupResult, VideoReady, VideoResult
from prefect_venice.tasks.settings import VeniceSettings
from prefect_venice.tasks.video import (
    complete_video,
    download_video,
    queue_video,
    quote_video,
    validate_video_request,
    wait_for_video,
)

__all__ = [
    "CleanupResult",
    "VeniceSettings",
    "VideoReady",
    "VideoResult",
    "complete_video",
    "download_video",
    "produce_video",
    "queue_video",
    "quote_video",
    "quote_videos",
    "validate_video_request",
    "wait_for_video",
]
