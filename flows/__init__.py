"""Prefect flows for Venice video generation."""

from prefect_venice.flows.request import VideoRequest
from prefect_venice.flows.video import generate_video

__all__ = ["VideoRequest", "generate_video"]
