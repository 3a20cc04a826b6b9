"""The probe (PyAV, its own libav build) and the pinned ffmpeg (the build that splits,
encodes and stitches) read every shape of clip the tests use the same way: the same frame
size, rotation, video start and length, and the same keyframes. The plan cuts where the
probe saw keyframes and ffmpeg's segmenter cuts where it sees them; were the two builds to
disagree, chunks would start off their keyframes or the length would be wrong (Debian's
ffmpeg 5.1 measured a 4 s clip as 5.52 s)."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from longhaul_media.media.probe import Limits, probe
from tests.support.hostile import small_ts
from tests.support.media import ffmpeg, make_clip

LIMITS = Limits(
    max_bytes=50 * 1024**2,
    max_duration_s=3600,
    max_width=7680,
    max_height=7680,
    max_pixels=7680 * 4320,
)

# Every shape tests/ transcodes or probes (sizes kept small: the shape is what matters).
SHAPES: dict[str, dict[str, Any]] = {
    "plain": {"size": "640x360", "seconds": 3},
    "rotated-90": {"size": "640x360", "seconds": 2, "rotate": 90},
    "rotated-180": {"size": "320x240", "seconds": 2, "rotate": 180},
    "rotated-270": {"size": "320x240", "seconds": 2, "rotate": 270},
    "silent": {"size": "854x480", "seconds": 2, "audio": False},
    "vfr": {"size": "640x360", "seconds": 3, "variable_rate": True},
    "late-audio": {"size": "320x240", "seconds": 4, "audio_offset_s": 1.0},
    "early-audio": {"size": "320x240", "seconds": 4, "audio_offset_s": -1.5},
    "gop-2": {"size": "320x240", "seconds": 7, "gop_s": 2},
    "holiday": {"size": "1280x720", "seconds": 4, "gop_s": 1},
}


def _pinned(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [ffmpeg(), "-nostdin", "-hide_banner", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def ffmpeg_reading(path: Path) -> dict[str, Any]:
    """What the pinned ffmpeg itself reads: the video's size and rotation from its stream
    info, every video packet's time (framecrc, on the file's own clock), and the times of
    the frames it decodes as keyframes."""
    info = _pinned("-i", str(path)).stderr
    size = re.search(r"Video: .*?, (\d+)x(\d+)", info)
    assert size is not None, info
    turned = re.search(r"rotation of (-?[\d.]+) degrees", info)
    crc = _pinned(
        "-v",
        "error",
        "-copyts",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "framecrc",
        "-",
    ).stdout
    tb_match = re.search(r"#tb 0: (\d+)/(\d+)", crc)
    assert tb_match is not None, crc
    tb = Fraction(int(tb_match[1]), int(tb_match[2]))
    rows = [line.split(",") for line in crc.splitlines() if line and not line.startswith("#")]
    stamps = [(int(r[2]), int(r[3])) for r in rows]
    start = float(min(p for p, _ in stamps) * tb)
    end = float(max(p + d for p, d in stamps) * tb)
    keys = _pinned(
        *("-copyts", "-skip_frame", "nokey", "-i", str(path), "-map", "0:v:0"),
        *("-vf", "showinfo", "-f", "null", "-"),
    ).stderr
    keyframes = [float(t) - start for t in re.findall(r"pts_time:([\d.]+)", keys)]
    return {
        "coded": (int(size[1]), int(size[2])),
        "rotation": round(float(turned[1])) % 360 if turned else 0,
        "duration_s": end - start,
        "frames": len(stamps),
        "keyframes_s": keyframes,
    }


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    made = {name: make_clip(root / f"{name}.mp4", **options) for name, options in SHAPES.items()}
    made["mpeg-ts"] = small_ts(root / "clip.ts", size="320x240", seconds=3)
    return made


@pytest.mark.parametrize("shape", [*SHAPES, "mpeg-ts"])
def test_the_probe_and_the_pinned_ffmpeg_read_each_clip_alike(
    clips: dict[str, Path], shape: str
) -> None:
    found = probe(str(clips[shape]), LIMITS)
    assert "error" not in found, found
    seen = ffmpeg_reading(clips[shape])
    assert (found["coded_width"], found["coded_height"]) == seen["coded"]
    assert found["rotation"] == seen["rotation"]
    frame = 1 / found["frame_rate"]
    assert found["duration_s"] == pytest.approx(seen["duration_s"], abs=frame + 1e-3)
    assert found["keyframes_s"] == pytest.approx(seen["keyframes_s"], abs=1e-3)
