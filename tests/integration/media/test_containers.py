"""Each container on the allowlist, with B-frames (what phones and cameras write), probed
and split into chunks by the pinned ffmpeg as a transcode does: AVI stores no presentation
times, so the split generates them (without, NUT refuses every packet)."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from longhaul_media.media.ffmpeg import split_command
from longhaul_media.media.probe import Limits, input_format, probe
from tests.support.media import ffmpeg

LIMITS = Limits(50 * 1024**2, 3600, 7680, 7680, 7680 * 4320)


@pytest.mark.parametrize("container", ["mp4", "mov", "mkv", "webm", "ts", "mpg", "avi"])
def test_a_b_frame_clip_in_each_allowed_container_probes_and_splits(
    tmp_path: Path, container: str
) -> None:
    codec = {
        "webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
        "mpg": ["-c:v", "mpeg2video", "-bf", "2"],
    }.get(container, ["-c:v", "libx264", "-preset", "veryfast", "-bf", "2"])
    clip = tmp_path / f"clip.{container}"
    subprocess.run(
        [
            *(ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", "testsrc2=size=320x240:rate=25:duration=6", *codec, "-g", "25"),
            str(clip),
        ],
        check=True,
        timeout=120,
    )
    source = clip.rename(tmp_path / "source")
    found = probe(str(source), LIMITS)
    assert "error" not in found, found
    assert found["duration_s"] == pytest.approx(6.0, abs=0.1)
    pieces = tmp_path / "chunks"
    pieces.mkdir()
    argv = split_command(ffmpeg(), source, input_format(found["format"]), [2.0, 4.0], pieces)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with (pieces / "chunks.csv").open(newline="") as listing:
        starts = [float(row[1]) for row in csv.reader(listing) if row]
    # Cut at the planned keyframes (the segmenter's times may carry the B-frame delay; in
    # MPEG-PS it cuts at the first packet flagged a keyframe, up to a GOP later). The
    # transcode reads the cuts from this list, so a later cut is a longer chunk, not a gap.
    slack = 1.0 if container == "mpg" else 0.1
    assert starts == pytest.approx([0.0, 2.0, 4.0], abs=slack)
