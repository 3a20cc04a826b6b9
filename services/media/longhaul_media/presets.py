"""Transcoding presets: validated data (presets.json), not code.

A preset with a `flag` is new or risky: it is available only while the service's feature
flag of that name is on (docs/flags.md); callers neither see it nor may name it otherwise.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from longhaul.flags import Flags

__all__ = [
    "AudioSettings",
    "Preset",
    "PresetUnavailable",
    "Rendition",
    "available_presets",
    "load_presets",
    "preset_flags",
    "require_available",
]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rendition(_Data):
    """One rung of the ladder: its height (the short side, for portrait video) and rates."""

    name: str = Field(pattern=r"^[a-z0-9]{2,16}$")
    height: int = Field(ge=64, le=4320, multiple_of=2)
    video_kbps: int = Field(ge=50, le=100_000)
    maxrate_kbps: int = Field(ge=50, le=150_000)
    bufsize_kbps: int = Field(ge=50, le=300_000)
    profile: Literal["baseline", "main", "high"] = "high"

    @model_validator(mode="after")
    def _rates(self) -> Rendition:
        if self.maxrate_kbps < self.video_kbps:
            raise ValueError(f"{self.name}: maxrate_kbps must be at least video_kbps")
        return self


class AudioSettings(_Data):
    """AAC, encoded once for the whole file."""

    kbps: int = Field(ge=32, le=512)
    channels: int = Field(ge=1, le=2)
    sample_rate: Literal[32000, 44100, 48000] = 48000


class PosterSettings(_Data):
    """Where the poster frame is taken, and its largest height."""

    at_fraction: float = Field(ge=0, le=1)
    max_height: int = Field(ge=64, le=2160)


class ThumbnailSettings(_Data):
    """The thumbnail sprite and its WebVTT track."""

    every_s: float = Field(gt=0, le=600)
    width: int = Field(ge=32, le=640, multiple_of=2)
    columns: int = Field(ge=1, le=50)
    max_count: int = Field(ge=1, le=1000)


class Preset(_Data):
    """A named ladder and everything else a transcode produces."""

    description: str
    x264_preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ]
    segment_s: int = Field(ge=1, le=30)
    gop_s: float = Field(gt=0, le=10)
    renditions: tuple[Rendition, ...] = Field(min_length=1)
    audio: AudioSettings
    mp4_height: int = Field(ge=64, le=4320)
    poster: PosterSettings
    thumbnails: ThumbnailSettings
    flag: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{1,63}$",
        description="available only while this feature flag is on",
    )

    @model_validator(mode="after")
    def _ladder(self) -> Preset:
        heights = [r.height for r in self.renditions]
        if heights != sorted(heights, reverse=True) or len(set(heights)) != len(heights):
            raise ValueError("renditions must be listed from the tallest down, one per height")
        if len({r.name for r in self.renditions}) != len(self.renditions):
            raise ValueError("rendition names must be unique")
        if self.segment_s % self.gop_s:
            raise ValueError("segment_s must be a whole number of GOPs (gop_s)")
        return self


_PRESETS = TypeAdapter(dict[str, Preset])


@lru_cache(maxsize=1)
def load_presets() -> dict[str, Preset]:
    """Every preset, validated (a bad presets.json fails at start)."""
    text = resources.files("longhaul_media").joinpath("presets.json").read_text()
    return _PRESETS.validate_python(json.loads(text))


class PresetUnavailable(ValueError):
    """The preset exists but its feature flag is off."""


def preset_flags() -> dict[str, bool]:
    """The feature flag of every preset that has one, each off until turned on."""
    return {p.flag: False for p in load_presets().values() if p.flag}


async def available_presets(flags: Flags) -> dict[str, Preset]:
    """The presets callers may name now: those without a flag, and those whose flag is on."""
    values = await flags.values()
    return {n: p for n, p in load_presets().items() if p.flag is None or values[p.flag] is True}


async def require_available(name: str, flags: Flags) -> None:
    """Raise `PresetUnavailable` when preset `name` has a flag that is off."""
    preset = load_presets()[name]
    if preset.flag is not None and not await flags.enabled(preset.flag):
        raise PresetUnavailable(
            f"preset {name!r} is not available (feature flag {preset.flag} is off)"
        )
