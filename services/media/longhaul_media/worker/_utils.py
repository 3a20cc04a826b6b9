"""What the transcode's steps share: running ffmpeg, the resources, progress milestones."""

from __future__ import annotations

from longhaul.jobs import JobContext, JobResources, NonRetryable
from longhaul_media.config import MediaSettings
from longhaul_media.presets import Preset, load_presets

PREPARED = 0.05  # progress when the chunks are spawned
ENCODED = 0.90  # progress when every chunk is encoded; stitching does the rest


def preset_named(name: str) -> Preset:
    """The preset, or a failure that will not be retried."""
    preset = load_presets().get(name)
    if preset is None:
        raise NonRetryable(f"unknown preset {name!r}")
    return preset


def resources_of(ctx: JobContext) -> JobResources:
    """The worker's resources; a media worker always has them and a bucket."""
    if ctx.resources is None or not ctx.resources.settings.bucket_name:
        raise RuntimeError("the media worker runs with its resources and its bucket")
    return ctx.resources


def settings_of(resources: JobResources) -> MediaSettings:
    """The media settings the service started with."""
    if not isinstance(resources.settings, MediaSettings):
        raise RuntimeError("the media service runs with MediaSettings")
    return resources.settings


def stderr_tail(stderr: bytes) -> str:
    """The end of ffmpeg's error output, for a failure's reason."""
    return stderr.decode(errors="replace").strip()[-500:] or "no message"


async def run_ffmpeg(ctx: JobContext, argv: list[str], what: str, settings: MediaSettings) -> None:
    """Run one ffmpeg step as the job's child; a failure names the step and ffmpeg's words."""
    try:
        code, stderr = await ctx.run_process(argv, timeout_s=settings.chunk_timeout_s)
    except TimeoutError:
        raise RuntimeError(f"{what} took longer than {settings.chunk_timeout_s:.0f} s") from None
    if code != 0:
        raise RuntimeError(f"{what} failed (ffmpeg exit {code}): {stderr_tail(stderr)}")
