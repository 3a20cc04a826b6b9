"""Planning a transcode: keyframe-aligned chunks, the ladder for a source, keyframe times."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

from longhaul_media.models import Chunk, MediaInfo
from longhaul_media.presets import Preset, Rendition

__all__ = [
    "Rung",
    "forced_keyframes",
    "ladder",
    "mp4_rung",
    "plan_chunks",
    "rung_of",
    "thumb_size",
]


def plan_chunks(
    keyframes: list[float], duration_s: float, min_s: float, max_s: float
) -> list[Chunk]:
    """Cut the source at keyframes into chunks of `min_s` to `max_s` seconds where the
    keyframes allow it (a source with sparse keyframes gets longer chunks, never cuts
    between keyframes). The last chunk is balanced with the one before it rather than left
    short. One sort, then a binary search per cut: fast however many keyframes there are."""
    points = sorted(k for k in keyframes if 0 < k < duration_s)
    bounds = [0.0]
    while duration_s - bounds[-1] > max_s:
        start = bounds[-1]
        remaining = duration_s - start
        target = start + (max_s if remaining >= max_s + min_s else remaining / 2)
        lo = bisect.bisect_left(points, start + min_s)
        hi = bisect.bisect_right(points, start + max_s)
        if lo < hi:  # keyframes in the window: the one nearest the target
            at = bisect.bisect_left(points, target, lo, hi)
            near = [points[i] for i in (at - 1, at) if lo <= i < hi]
            cut = min(near, key=lambda k: abs(k - target))
        elif lo < len(points):  # none: the first one past it
            cut = points[lo]
        else:
            break
        if duration_s - cut < 0.5:  # a sliver is not worth a chunk
            break
        bounds.append(cut)
    bounds.append(duration_s)
    return [
        Chunk(index=i, start_s=round(a, 6), end_s=round(b, 6))
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


@dataclass(frozen=True)
class Rung:
    """A rendition as this source gets it: its frame size after rotation and scaling."""

    rendition: Rendition
    width: int
    height: int

    @property
    def name(self) -> str:
        """The rendition's name (`720p`)."""
        return self.rendition.name


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _rung(rendition: Rendition, info: MediaInfo) -> Rung:
    short = rendition.height
    if info.width >= info.height:  # landscape: the rung's number is the height
        return Rung(rendition, _even(info.width * short / info.height), short)
    return Rung(rendition, short, _even(info.height * short / info.width))


def ladder(preset: Preset, info: MediaInfo) -> list[Rung]:
    """The preset's renditions this source gets: never taller (on its short side) than the
    source; a source shorter than the smallest rung gets one rendition at its own size."""
    short_side = min(info.width, info.height)
    rungs = [_rung(r, info) for r in preset.renditions if r.height <= short_side]
    if rungs:
        return rungs
    smallest = preset.renditions[-1]
    own = smallest.model_copy(update={"name": f"{_even(short_side)}p", "height": _even(short_side)})
    return [_rung(own, info)]


def rung_of(preset: Preset, name: str, width: int, height: int) -> Rung:
    """The rung called `name` at the given size (a chunk job gets sizes, not the source)."""
    for rendition in preset.renditions:
        if rendition.name == name:
            return Rung(rendition, width, height)
    own = preset.renditions[-1].model_copy(update={"name": name, "height": min(width, height)})
    return Rung(own, width, height)


def mp4_rung(preset: Preset, rungs: list[Rung]) -> Rung:
    """The rendition the progressive MP4 is made from: the tallest at or under the preset's
    MP4 height, else the smallest."""
    fitting = [r for r in rungs if r.rendition.height <= preset.mp4_height]
    return fitting[0] if fitting else rungs[-1]


def forced_keyframes(start_s: float, end_s: float, gop_s: float) -> list[float]:
    """Chunk-local times of the keyframes that fall on the global GOP grid, so that HLS
    segments cut at the same source times whichever chunk a frame was encoded in."""
    first = math.ceil(start_s / gop_s - 1e-9)
    times = [0.0]
    k = first
    while k * gop_s < end_s - 1e-6:
        local = k * gop_s - start_s
        if local > 1e-6:
            times.append(round(local, 6))
        k += 1
    return times


def thumb_size(width: int, height: int, thumb_width: int) -> tuple[int, int]:
    """A thumbnail's size for a frame of `width` x `height`."""
    return thumb_width, _even(thumb_width * height / width)
