"""The media service's settings: the kit's, plus its own under the MEDIA_ prefix."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["MediaSettings", "ffmpeg_binary", "pinned_ffmpeg"]

GIB = 1024**3
MIB = 1024**2


class MediaSettings(KitSettings):
    """What the media service reads from its environment (MEDIA_*)."""

    model_config = SettingsConfigDict(
        env_prefix="MEDIA_", extra="ignore", frozen=True, populate_by_name=True
    )

    ffmpeg_path: str | None = Field(
        default=None,
        description="an ffmpeg binary to run instead of the pinned one (imageio-ffmpeg's); "
        "for experiments only: the tests prove the pinned build",
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
    # What a source may hold besides its size, length and resolution: every one is measured
    # by reading the whole video stream, never taken from what the file declares.
    max_frame_rate: float = Field(default=240, gt=0, description="phones' slow motion: 240")
    max_frames: int = Field(default=2_000_000, ge=1)
    max_keyframes: int = Field(default=100_000, ge=1)
    max_gap_s: float = Field(default=60, gt=0, description="longest stretch without a frame")
    # The bounds on the work one upload makes (docs/media.md "Hostile uploads").
    probe_timeout_s: float = Field(default=300, gt=0)
    probe_memory_bytes: int = Field(default=4 * GIB, ge=256 * MIB)
    ffmpeg_memory_bytes: int = Field(
        default=8 * GIB, ge=256 * MIB, description="address space (an 8K ladder needs ~6 GiB)"
    )
    step_timeout_s: float = Field(
        default=300, gt=0, description="an ffmpeg step's time, plus step_timeout_per_s per s"
    )
    step_timeout_per_s: float = Field(default=2.0, gt=0)
    transcode_timeout_s: float = Field(
        default=3600, gt=0, description="a transcode's time, plus transcode_timeout_per_s per s"
    )
    transcode_timeout_per_s: float = Field(default=20.0, gt=0)
    wait_poll_s: int = Field(
        default=5, ge=1, le=60, description="how often a transcode checks on its chunks"
    )
    default_preset: str = "default"
    # Per-owner quotas (docs/quotas.md): the media service's own, as MEDIA_QUOTA_*.
    quota_concurrent_jobs: int = Field(default=10, ge=1, description="transcodes at once")
    quota_uploads_per_hour: int = Field(default=30, ge=1)
    quota_stored_bytes: int = Field(
        default=200 * GIB, ge=1, description="declared bytes of the uploads the bucket keeps"
    )
    quota_streams: int = Field(default=10, ge=1, description="job event streams open at once")
    quota_stream_lifetime_s: int = Field(default=900, ge=1)
    scratch_dir: str | None = Field(default=None, description="temp files; default: $TMPDIR")

    @model_validator(mode="after")
    def _chunk_bounds(self) -> MediaSettings:
        if self.chunk_min_s > self.chunk_max_s:
            raise ValueError("MEDIA_CHUNK_MIN_S must not exceed MEDIA_CHUNK_MAX_S")
        return self


def ffmpeg_binary(settings: MediaSettings) -> str:
    """The ffmpeg to run: the pinned build (imageio-ffmpeg's binary), the same in the tests,
    `make dev` and the image. An ffmpeg on PATH is never used; MEDIA_FFMPEG_PATH overrides
    the pin on purpose only."""
    if settings.ffmpeg_path:
        return settings.ffmpeg_path
    return pinned_ffmpeg()


def pinned_ffmpeg() -> str:
    """The pinned ffmpeg's path: the binary inside the imageio-ffmpeg wheel (its own lookup
    would prefer IMAGEIO_FFMPEG_EXE from the environment; this never does)."""
    import imageio_ffmpeg

    binaries = Path(imageio_ffmpeg.__file__).parent / "binaries"
    found = sorted(p for p in binaries.glob("ffmpeg-*") if os.access(p, os.X_OK))
    if not found:
        raise RuntimeError(f"no pinned ffmpeg in {binaries}: reinstall imageio-ffmpeg")
    return str(found[0])
