"""The thumbnail sprite on real clips with the pinned ffmpeg: one tile per interval, and a
clip shorter than half the interval still gets its one thumbnail (ffmpeg's fps filter
drops it at the end of such a clip unless told to pass it)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import av
import pytest

from longhaul_media.media.ffmpeg import sprite_command
from tests.support.media import ffmpeg, make_clip


@pytest.mark.parametrize("seconds", [1, 2, 12])
def test_a_sprite_is_made_for_every_length_with_one_tile_per_interval(
    tmp_path: Path, seconds: int
) -> None:
    every, size = 5.0, (160, 120)
    clip = make_clip(tmp_path / "clip.mp4", size="320x240", seconds=seconds, audio=False)
    count = max(1, math.ceil(seconds / every))
    out = tmp_path / "sprite.jpg"
    done = subprocess.run(
        sprite_command(ffmpeg(), clip, every, size, (count, 1), out),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as sprite:
        frame = next(sprite.decode(video=0))
        assert (frame.width, frame.height) == (size[0] * count, size[1])
