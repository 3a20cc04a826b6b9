"""The probe on real generated media: what it finds, and a specific reason for each file it
refuses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from longhaul_media.media.probe import Limits, probe
from tests.support.media import declared_size_clip, ffmpeg, make_clip, make_tone

LIMITS = Limits(
    max_bytes=50 * 1024**2,
    max_duration_s=3600,
    max_width=7680,
    max_height=7680,
    max_pixels=7680 * 4320,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    make_clip(root / "plain.mp4", size="640x360", seconds=3)
    make_clip(root / "rotated.mp4", size="640x360", seconds=2, rotate=90)
    make_clip(root / "vfr.mp4", seconds=3, variable_rate=True)
    make_clip(root / "silent.mp4", seconds=2, audio=False)
    return root


def test_probe_reports_duration_streams_size_rate_and_keyframes(clips: Path) -> None:
    found = probe(str(clips / "plain.mp4"), LIMITS)
    assert found["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert (found["width"], found["height"], found["rotation"]) == (640, 360, 0)
    assert found["frame_rate"] == 25
    assert found["variable_frame_rate"] is False
    assert (found["video_codec"], found["audio_codec"]) == ("h264", "aac")
    assert found["keyframes_s"] == [0.0, 1.0, 2.0]


def test_a_rotated_video_reports_its_displayed_size(clips: Path) -> None:
    found = probe(str(clips / "rotated.mp4"), LIMITS)
    assert found["rotation"] == 90
    assert (found["width"], found["height"]) == (360, 640)
    assert (found["coded_width"], found["coded_height"]) == (640, 360)


def test_variable_frame_rate_and_missing_audio_are_seen(clips: Path) -> None:
    assert probe(str(clips / "vfr.mp4"), LIMITS)["variable_frame_rate"] is True
    assert probe(str(clips / "silent.mp4"), LIMITS)["audio_codec"] is None


def refused(path: Path, limits: Limits = LIMITS) -> str:
    found = probe(str(path), limits)
    assert "error" in found, f"{path.name} was accepted: {found}"
    return str(found["error"])


@pytest.mark.parametrize("offset", [-1.5, 1.0], ids=["audio-first", "audio-late"])
def test_audio_out_of_step_with_the_video_is_not_mistaken_for_truncation(
    tmp_path: Path, offset: float
) -> None:
    clip = make_clip(tmp_path / "offset.mp4", size="320x240", seconds=4, audio_offset_s=offset)
    found = probe(str(clip), LIMITS)
    assert "error" not in found, found
    assert found["duration_s"] == pytest.approx(4.0, abs=0.05), "the video's own length"


def test_a_text_file_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are my holiday notes, not a video\n" * 50)
    assert refused(path).startswith("not a video file")


def test_an_empty_file_is_refused_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    assert refused(path) == "the file is empty (0 bytes)"


def test_a_truncated_mp4_is_refused_as_truncated(clips: Path, tmp_path: Path) -> None:
    # Without faststart the index is at the end: cut, the file cannot even be opened.
    whole = tmp_path / "whole.mp4"
    subprocess.run(
        [
            ffmpeg(),
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clips / "plain.mp4"),
            "-c",
            "copy",
            str(whole),
        ],
        check=True,
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert "truncated or corrupt" in refused(cut)
    # With faststart the index is first: it opens, and its data ends early.
    early = tmp_path / "early.mp4"
    data = (clips / "plain.mp4").read_bytes()
    early.write_bytes(data[: len(data) // 2])
    assert "truncated" in refused(early)


def test_audio_only_is_refused_for_having_no_video(tmp_path: Path) -> None:
    path = make_tone(tmp_path / "song.mp4")
    assert refused(path) == "the file has no video stream (audio only)"


def test_a_declared_20000x20000_frame_is_refused_before_any_decoding(tmp_path: Path) -> None:
    # The header declares the size; no 400-megapixel frame is ever made or read.
    path = declared_size_clip(tmp_path / "huge.mkv", 20000, 20000)
    assert "frame size no decoder accepts" in refused(path)


def test_a_declared_size_over_the_service_limit_is_refused_by_its_resolution(
    tmp_path: Path,
) -> None:
    path = declared_size_clip(tmp_path / "wide.mkv", 16000, 9000)
    assert refused(path) == (
        "the resolution 16000x9000 is over the limit (7680x7680, 33177600 pixels)"
    )


def test_a_file_over_the_size_limit_is_refused_by_its_size(clips: Path, tmp_path: Path) -> None:
    small = Limits(1024, 3600, 7680, 7680, 7680 * 4320)
    copy = tmp_path / "big.mp4"
    shutil.copyfile(clips / "plain.mp4", copy)
    assert "over the limit of 0.0 MiB" in refused(copy, small)


def test_a_duration_over_the_limit_is_refused(clips: Path) -> None:
    short = Limits(50 * 1024**2, 2, 7680, 7680, 7680 * 4320)
    assert refused(clips / "plain.mp4", short) == "the duration 3 s is over the limit of 2 s"
