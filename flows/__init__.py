"""Prefect flows for Venice video generation."""

from prefect_venice.flows.batch import generate_videos
from prefect_venice.flows.request import VideoRequest
from prefect_venice.flows.video import generate_video

__all__ = ["VideoRequest", "generate_video", "generate_videos"]
