"""Probing a source with PyAV: what it is, and whether the service will take it.

`probe` runs in a child process (a corrupt file must not take the worker down with it) and
returns either the facts or the reason the file is refused, in words a caller can act on.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = ["Limits", "probe"]


@dataclass(frozen=True)
class Limits:
    """What the service takes."""

    max_bytes: int
    max_duration_s: float
    max_width: int
    max_height: int
    max_pixels: int


def _refuse(reason: str) -> dict[str, Any]:
    return {"error": reason}


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


def probe(path: str, limits: Limits) -> dict[str, Any]:
    """The source's facts as a `MediaInfo` dict, or `{"error": reason}`."""
    import av  # imported in the child only

    size = os.path.getsize(path)
    if size == 0:
        return _refuse("the file is empty (0 bytes)")
    if size > limits.max_bytes:
        return _refuse(f"the file is {_mib(size)}, over the limit of {_mib(limits.max_bytes)}")
    with open(path, "rb") as handle:
        head = handle.read(12)
    looks_mp4 = head[4:8] == b"ftyp"
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        if looks_mp4:
            return _refuse(f"the MP4 file is truncated or corrupt and cannot be opened ({exc})")
        return _refuse(f"not a video file: no known media format recognises it ({exc})")
    with container:
        return _inspect(container, size, limits)


def _inspect(container: Any, size: int, limits: Limits) -> dict[str, Any]:
    import av

    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no audio or video"
        return _refuse(f"the file has no video stream ({kind})")
    video = container.streams.video[0]
    width, height = int(video.codec_context.width or 0), int(video.codec_context.height or 0)
    if width <= 0 or height <= 0:
        # FFmpeg itself drops a declared size past its own bound (about 268 megapixels).
        return _refuse(
            "the video declares a frame size no decoder accepts "
            "(none at all, or more than 268 million pixels)"
        )
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        return _refuse(
            f"the resolution {width}x{height} is over the limit "
            f"({limits.max_width}x{limits.max_height}, {limits.max_pixels} pixels)"
        )
    declared = container.duration / av.time_base if container.duration else None
    if declared is not None and declared > limits.max_duration_s:
        return _refuse(
            f"the duration {declared:.0f} s is over the limit of {limits.max_duration_s:.0f} s"
        )
    audio = container.streams.audio[0] if container.streams.audio else None

    rotation = 0
    try:
        for frame in container.decode(video):
            rotation = round(getattr(frame, "rotation", 0) or 0) % 360
            break
        else:
            return _refuse("the video stream holds no frame that decodes")
    except av.error.FFmpegError as exc:
        return _refuse(f"the video is corrupt: its first frame does not decode ({exc})")
    if rotation not in (0, 90, 180, 270):
        return _refuse(
            f"the video is rotated by {rotation} degrees; only right angles are supported"
        )

    container.seek(0)
    keyframes: list[float] = []
    stamps: list[int] = []
    last_end = 0.0
    base = video.time_base or Fraction(1, 90000)
    try:
        for packet in container.demux(video):
            if packet.pts is None:
                continue
            moment = float(packet.pts * base)
            stamps.append(int(packet.pts))
            if packet.is_keyframe:
                keyframes.append(moment)
            last_end = max(last_end, moment + float((packet.duration or 0) * base))
    except av.error.FFmpegError as exc:
        return _refuse(f"the video is corrupt: reading it failed at {last_end:.1f} s ({exc})")
    start = float(video.start_time * base) if video.start_time is not None else 0.0
    if not keyframes:
        return _refuse("the video has no keyframe to start decoding from")
    # The video's own length: the outputs run on its clock, and audio that starts before it
    # or runs on after it must not make a whole file look truncated.
    if video.duration:
        duration = float(video.duration * base)
    elif declared is not None:
        opened = container.start_time / av.time_base if container.start_time is not None else 0.0
        duration = opened + declared - start
    else:
        duration = last_end - start
    if duration <= 0:
        return _refuse("the video has no duration")
    covered = last_end - start
    if covered < duration * 0.9 - 0.5:
        return _refuse(
            f"the file is truncated: its video data ends at {covered:.1f} s "
            f"of the {duration:.1f} s it declares"
        )
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    displayed = (height, width) if rotation in (90, 270) else (width, height)
    stamps.sort()
    spacings = sorted(b - a for a, b in itertools.pairwise(stamps) if b > a)
    # Frame spacings that differ by more than a tenth of the usual one: a variable rate.
    variable = bool(spacings) and spacings[-1] - spacings[0] > 0.1 * spacings[len(spacings) // 2]
    return {
        "format": container.format.name,
        "size": size,
        "duration_s": round(duration, 3),
        "width": displayed[0],
        "height": displayed[1],
        "coded_width": width,
        "coded_height": height,
        "rotation": rotation,
        "frame_rate": round(float(rate), 3),
        "variable_frame_rate": variable,
        "video_codec": video.codec_context.name,
        "audio_codec": audio.codec_context.name if audio is not None else None,
        "audio_channels": audio.codec_context.channels if audio is not None else None,
        "start_s": round(start, 6),
        "keyframes_s": [round(k - start, 3) for k in sorted(keyframes)],
    }
