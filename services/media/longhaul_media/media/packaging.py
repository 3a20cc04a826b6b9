"""What ffmpeg does not write for us: the HLS master playlist and the thumbnails' WebVTT."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Variant", "avc1_codec", "master_playlist", "playlist_bitrates", "thumbnails_vtt"]

_PROFILES = {"baseline": (0x42, 0xE0), "constrained baseline": (0x42, 0xE0), "main": (0x4D, 0x40)}


def avc1_codec(profile: str, level: int) -> str:
    """The RFC 6381 codec string of an H.264 stream (`avc1.64001F` for High at 3.1)."""
    idc, constraints = _PROFILES.get(profile.lower(), (0x64, 0x00))
    return f"avc1.{idc:02X}{constraints:02X}{level:02X}"


@dataclass(frozen=True)
class Variant:
    """One rendition's line in the master playlist."""

    uri: str
    peak_bps: int
    average_bps: int
    width: int
    height: int
    codecs: str
    frame_rate: float


def playlist_bitrates(playlist: Path) -> tuple[int, int]:
    """Peak and average bits per second of a media playlist's segments (from their sizes)."""
    durations: list[float] = []
    peak = 0
    total_bits = 0
    pending: float | None = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and pending is not None:
            bits = (playlist.parent / line).stat().st_size * 8
            total_bits += bits
            durations.append(pending)
            peak = max(peak, math.ceil(bits / max(pending, 0.001)))
            pending = None
    total = sum(durations)
    return peak, math.ceil(total_bits / total) if total else 0


def master_playlist(variants: list[Variant]) -> str:
    """The master playlist, tallest rendition first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.height * v.width, reverse=True):
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.peak_bps},AVERAGE-BANDWIDTH={v.average_bps},"
            f'RESOLUTION={v.width}x{v.height},CODECS="{v.codecs}",FRAME-RATE={v.frame_rate:.3f}'
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def thumbnails_vtt(
    sprite_uri: str,
    count: int,
    every_s: float,
    duration_s: float,
    size: tuple[int, int],
    columns: int,
) -> str:
    """A WebVTT track whose cues point into the sprite (`sprite.jpg#xywh=x,y,w,h`)."""
    width, height = size
    lines = ["WEBVTT", ""]
    for i in range(count):
        start = i * every_s
        end = min(duration_s, (i + 1) * every_s)
        if end <= start:
            break
        x, y = (i % columns) * width, (i // columns) * height
        lines += [
            f"{_stamp(start)} --> {_stamp(end)}",
            f"{sprite_uri}#xywh={x},{y},{width},{height}",
            "",
        ]
    return "\n".join(lines)
