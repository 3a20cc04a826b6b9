"""The media service's settings: the kit's, plus its own under the MEDIA_ prefix."""

from __future__ import annotations

import shutil

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["MediaSettings", "ffmpeg_binary"]

GIB = 1024**3
MIB = 1024**2


class MediaSettings(KitSettings):
    """What the media service reads from its environment (MEDIA_*)."""

    model_config = SettingsConfigDict(
        env_prefix="MEDIA_", extra="ignore", frozen=True, populate_by_name=True
    )

    ffmpeg_path: str | None = Field(
        default=None, description="ffmpeg binary; default: ffmpeg on PATH, else imageio-ffmpeg's"
    )
    max_upload_bytes: int = Field(default=10 * GIB, ge=1)
    multipart_threshold_bytes: int = Field(default=100 * MIB, ge=5 * MIB)
    multipart_part_bytes: int = Field(default=64 * MIB, ge=5 * MIB, le=5 * GIB)
    upload_content_types: tuple[str, ...] = (
        "video/mp4",
        "video/quicktime",
        "video/x-matroska",
        "video/webm",
        "video/mpeg",
        "video/mp2t",
        "video/x-msvideo",
    )
    upload_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    output_url_ttl_s: int = Field(default=900, ge=60, le=12 * 3600)
    max_duration_s: float = Field(default=6 * 3600, gt=0)
    max_width: int = Field(default=7680, ge=16)
    max_height: int = Field(default=7680, ge=16)
    max_pixels: int = Field(default=7680 * 4320, ge=256)
    chunk_min_s: float = Field(default=30, gt=0)
    chunk_max_s: float = Field(default=60, gt=0)
    chunk_timeout_s: float = Field(default=1800, gt=0)
    wait_poll_s: int = Field(
        default=5, ge=1, le=60, description="how often a transcode checks on its chunks"
    )
    default_preset: str = "default"
    scratch_dir: str | None = Field(default=None, description="temp files; default: $TMPDIR")

    @model_validator(mode="after")
    def _chunk_bounds(self) -> MediaSettings:
        if self.chunk_min_s > self.chunk_max_s:
            raise ValueError("MEDIA_CHUNK_MIN_S must not exceed MEDIA_CHUNK_MAX_S")
        return self


def ffmpeg_binary(settings: MediaSettings) -> str:
    """The ffmpeg to run: the setting, else ffmpeg on PATH, else imageio-ffmpeg's binary."""
    if settings.ffmpeg_path:
        return settings.ffmpeg_path
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # a local fallback; images carry Debian's ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())
