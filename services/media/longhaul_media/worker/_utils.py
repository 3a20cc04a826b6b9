"""What the transcode's steps share: running ffmpeg, the resources, progress milestones."""

from __future__ import annotations

import os
import re
import resource
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

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


def scratch_root(settings: MediaSettings) -> str:
    """Where the worker's scratch folders are made."""
    return os.path.realpath(settings.scratch_dir or tempfile.gettempdir())


def without_paths(text: str, settings: MediaSettings) -> str:
    """`text` with the worker's scratch paths left out: a reason speaks of the user's file
    ("the upload"), never of where this worker keeps it."""
    root = re.escape(scratch_root(settings))
    text = re.sub(root + r"/[^\s'\":,]*/source\b", "the upload", text)
    return re.sub(root + r"/[^\s'\":,]*", lambda m: os.path.basename(m.group(0)), text)


@contextmanager
def reasons_without_paths(settings: MediaSettings) -> Iterator[None]:
    """Re-raise a failure whose reason names a scratch path with the path left out."""
    try:
        yield
    except (NonRetryable, RuntimeError, OSError) as exc:
        text = without_paths(str(exc), settings)
        if text == str(exc):
            raise
        if isinstance(exc, NonRetryable):
            raise NonRetryable(text) from None
        raise RuntimeError(text) from None


def stderr_tail(stderr: bytes, settings: MediaSettings) -> str:
    """The end of ffmpeg's error output, for a failure's reason."""
    text = without_paths(stderr.decode(errors="replace").strip(), settings)
    return text[-500:] or "no message"


def ffmpeg_limits(settings: MediaSettings, timeout_s: float, max_file_bytes: int) -> dict[int, int]:
    """The kernel's bounds on one ffmpeg run: CPU time (its wall-clock bound on every core),
    address space, and the size of any file it writes (a gap padded with hours of silence,
    a muxer gone wrong)."""
    return {
        resource.RLIMIT_CPU: int(timeout_s * (os.cpu_count() or 1)) + 1,
        resource.RLIMIT_AS: settings.ffmpeg_memory_bytes,
        resource.RLIMIT_FSIZE: max_file_bytes,
    }


def step_timeout(settings: MediaSettings, media_s: float) -> float:
    """An ffmpeg step's wall-clock bound for `media_s` seconds of media."""
    return settings.step_timeout_s + settings.step_timeout_per_s * media_s


async def run_ffmpeg(
    ctx: JobContext,
    argv: list[str],
    what: str,
    settings: MediaSettings,
    *,
    media_s: float,
    max_file_bytes: int,
) -> None:
    """Run one ffmpeg step as the job's child, bounded in time (from the media's length),
    CPU, memory and file size; a failure names the step and ffmpeg's words."""
    timeout = step_timeout(settings, media_s)
    try:
        code, stderr = await ctx.run_process(
            argv, timeout_s=timeout, rlimits=ffmpeg_limits(settings, timeout, max_file_bytes)
        )
    except TimeoutError:
        raise RuntimeError(f"{what} took longer than {timeout:.0f} s") from None
    if code == -signal.SIGXFSZ:
        raise NonRetryable(f"{what} wrote a file over its bound of {max_file_bytes} bytes")
    if code != 0:
        raise RuntimeError(f"{what} failed (ffmpeg exit {code}): {stderr_tail(stderr, settings)}")
