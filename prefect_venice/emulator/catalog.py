"""The emulator's video model catalog (real Venice ids) and its price list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_PROMPT_LIMIT = 2500

# Price multipliers by resolution, relative to 720p.
_RESOLUTION_FACTOR = {"480p": 0.6, "720p": 1.0, "1080p": 1.8}
# Models with sound cost this much more while audio is on.
_AUDIO_SURCHARGE = 1.25


@dataclass(frozen=True)
class VideoModel:
    """One video model as the emulator serves it, with its price and speed."""

    id: str
    name: str
    created: int
    model_type: str
    durations: tuple[str, ...]
    resolutions: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    audio: bool
    audio_configurable: bool
    usd_per_second: float
    base_seconds: float
    privacy: str = "anonymized"
    prompt_character_limit: int | None = None
    needs_consent: str | None = None
    uncensored: bool = False
    traits: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    @property
    def is_private(self) -> bool:
        """Private models deliver through a download link, never inline."""
        return self.privacy == "private"

    @property
    def prompt_limit(self) -> int:
        """The prompt length limit, 2500 when the model does not state one."""
        return self.prompt_character_limit or DEFAULT_PROMPT_LIMIT

    def price(self, duration: str, resolution: str | None, audio: bool) -> float:
        """USD for one video: per-second rate x resolution factor x audio surcharge."""
        seconds = int(duration.rstrip("s"))
        factor = _RESOLUTION_FACTOR.get(resolution or "720p", 1.0)
        usd = self.usd_per_second * seconds * factor
        if audio:
            usd *= _AUDIO_SURCHARGE
        return round(usd, 4)

    def to_json(self) -> dict[str, Any]:
        """Render the model as a `ModelResponse` item of `GET /models?type=video`."""
        constraints: dict[str, Any] = {
            "aspect_ratios": list(self.aspect_ratios),
            "resolutions": list(self.resolutions),
            "durations": list(self.durations),
            "model_type": self.model_type,
            "audio": self.audio,
            "audio_configurable": self.audio_configurable,
        }
        if self.prompt_character_limit is not None:
            constraints["prompt_character_limit"] = self.prompt_character_limit
        spec: dict[str, Any] = {
            "name": self.name,
            "description": self.description or f"{self.name} video generation.",
            "privacy": self.privacy,
            "traits": list(self.traits),
            "offline": False,
            "beta": False,
            "constraints": constraints,
        }
        if self.uncensored:
            spec["uncensored"] = True
        return {
            "id": self.id,
            "type": "video",
            "object": "model",
            "created": self.created,
            "owned_by": "venice.ai",
            "model_spec": spec,
        }


_WIDE = ("16:9", "9:16", "1:1")
_THREE_RES = ("480p", "720p", "1080p")

CATALOG: tuple[VideoModel, ...] = (
    VideoModel(
        id="wan-2.5-preview-text-to-video",
        name="Wan 2.5 Preview",
        created=1758825748,
        model_type="text-to-video",
        durations=("5s", "10s"),
        resolutions=_THREE_RES,
        aspect_ratios=_WIDE,
        audio=True,
        audio_configurable=True,
        usd_per_second=0.05,
        base_seconds=120,
        uncensored=True,
    ),
    VideoModel(
        id="wan-2.5-preview-image-to-video",
        name="Wan 2.5 Preview",
        created=1758825748,
        model_type="image-to-video",
        durations=("5s", "10s"),
        resolutions=_THREE_RES,
        aspect_ratios=(),
        audio=True,
        audio_configurable=True,
        usd_per_second=0.05,
        base_seconds=130,
        uncensored=True,
    ),
    VideoModel(
        id="kling-2.5-turbo-pro-text-to-video",
        name="Kling 2.5 Turbo Pro",
        created=1758825748,
        model_type="text-to-video",
        durations=("5s", "10s"),
        resolutions=("1080p",),
        aspect_ratios=_WIDE,
        audio=False,
        audio_configurable=False,
        usd_per_second=0.07,
        base_seconds=100,
    ),
    VideoModel(
        id="kling-2.5-turbo-pro-image-to-video",
        name="Kling 2.5 Turbo Pro",
        created=1758825748,
        model_type="image-to-video",
        durations=("5s", "10s"),
        resolutions=("1080p",),
        aspect_ratios=(),
        audio=False,
        audio_configurable=False,
        usd_per_second=0.07,
        base_seconds=110,
    ),
    VideoModel(
        id="veo3-fast-text-to-video",
        name="Veo 3 Fast",
        created=1758825748,
        model_type="text-to-video",
        durations=("4s", "6s", "8s"),
        resolutions=("720p", "1080p"),
        aspect_ratios=("16:9", "9:16"),
        audio=True,
        audio_configurable=True,
        usd_per_second=0.1,
        base_seconds=90,
        prompt_character_limit=1000,
    ),
    VideoModel(
        id="grok-imagine-text-to-video-private",
        name="Grok Imagine",
        created=1776038400,
        model_type="text-to-video",
        durations=("6s", "10s"),
        resolutions=("480p", "720p"),
        aspect_ratios=_WIDE,
        audio=True,
        audio_configurable=False,
        usd_per_second=0.04,
        base_seconds=60,
        privacy="private",
    ),
    VideoModel(
        id="grok-imagine-image-to-video-private",
        name="Grok Imagine",
        created=1776211200,
        model_type="image-to-video",
        durations=("6s", "10s"),
        resolutions=("480p", "720p"),
        aspect_ratios=(),
        audio=True,
        audio_configurable=False,
        usd_per_second=0.04,
        base_seconds=70,
        privacy="private",
    ),
    VideoModel(
        id="wan-2.1-pro-image-to-video",
        name="Wan 2.1 Pro",
        created=1758825748,
        model_type="image-to-video",
        durations=("5s",),
        resolutions=("720p",),
        aspect_ratios=(),
        audio=False,
        audio_configurable=False,
        usd_per_second=0.06,
        base_seconds=150,
        privacy="private",
        uncensored=True,
    ),
    VideoModel(
        id="seedance-2-0-text-to-video-basic",
        name="Seedance 2.0",
        created=1774915200,
        model_type="text-to-video",
        durations=("5s", "10s"),
        resolutions=_THREE_RES,
        aspect_ratios=("16:9", "9:16", "1:1", "4:3", "3:4", "21:9"),
        audio=True,
        audio_configurable=True,
        usd_per_second=0.08,
        base_seconds=150,
        needs_consent="seedance",
    ),
    VideoModel(
        id="sora-2-text-to-video",
        name="Sora 2",
        created=1758825748,
        model_type="text-to-video",
        durations=("4s", "8s", "12s"),
        resolutions=("720p",),
        aspect_ratios=("16:9", "9:16"),
        audio=True,
        audio_configurable=False,
        usd_per_second=0.1,
        base_seconds=180,
    ),
)

MODELS_BY_ID: dict[str, VideoModel] = {model.id: model for model in CATALOG}
