"""Hostile uploads, generated with the pinned ffmpeg: each is what an attacker (or a broken
encoder) would send to make a media worker read what is not the upload's, work without
bound, or stall. tests/e2e/test_media_hostile.py sends each through a real worker."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.media import declared_size_clip, ffmpeg


def _run(*args: str, stdout: Path | None = None) -> None:
    argv = [ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    if stdout is None:
        subprocess.run(argv, check=True, timeout=120)
        return
    with stdout.open("wb") as out:
        subprocess.run(argv, check=True, timeout=120, stdout=out)


def _h264(*args: str) -> list[str]:
    return ["-c:v", "libx264", "-preset", "ultrafast", *args]


def small_ts(path: Path, *, size: str = "64x48", seconds: float = 2, offset_s: float = 0) -> Path:
    """A plain MPEG-TS clip: the victim file of the playlists below, and a part of others."""
    source = f"testsrc2=size={size}:rate=25:duration={seconds}"
    argv = ["-f", "lavfi", "-i", source, *_h264("-g", "25")]
    _run(*argv, "-output_ts_offset", str(offset_s), "-f", "mpegts", str(path))
    return path


def hls_playlist(path: Path, names: Path) -> Path:
    """An HLS playlist under a video's name, listing a local file by its absolute path."""
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{names}\n#EXT-X-ENDLIST\n")
    return path


def dash_manifest(path: Path, names: Path) -> Path:
    """A DASH manifest under a video's name, its one segment a local file."""
    path.write_text(
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT2S"><Period><AdaptationSet><Representation id="1" '
        f'bandwidth="1000"><BaseURL>file://{names}</BaseURL></Representation></AdaptationSet>'
        "</Period></MPD>\n"
    )
    return path


def ffconcat_script(path: Path, names: str) -> Path:
    """An ffconcat script under a video's name; naming /dev/zero, it would read forever."""
    path.write_text(f"ffconcat version 1.0\nfile '{names}'\n")
    return path


def long_timeline_mkv(path: Path, span_s: float = 11 * 3600) -> Path:
    """A tiny Matroska with no Duration element (written to a pipe, the muxer cannot go back
    for it) whose three frames stand `span_s` / 2 apart."""
    step = int(span_s / 2)
    _run(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.12"),
        *("-vf", f"setpts=N*{step}/TB", "-fps_mode", "passthrough"),
        *_h264(),
        *("-f", "matroska", "-"),
        stdout=path,
    )
    return path


def ts_spanning(path: Path, span_s: float = 11 * 3600) -> Path:
    """An MPEG-TS of two 1 s clips, the second stamped `span_s` later: 22 KB, 11 hours."""
    first, second = path.with_suffix(".a"), path.with_suffix(".b")
    small_ts(first, seconds=1)
    _run(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1"),
        *_h264("-g", "25"),
        *("-output_ts_offset", str(span_s), "-f", "mpegts", str(second)),
    )
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def ts_switching_size(path: Path, to: str = "8192x8192") -> Path:
    """An MPEG-TS that opens at 64x48 and switches to `to` after 2 s (black frames: the
    large part is a few hundred KB)."""
    first, second = path.with_suffix(".a"), path.with_suffix(".b")
    small_ts(first, seconds=2)
    _run(
        *("-f", "lavfi", "-i", f"color=black:size={to}:rate=25:duration=0.08"),
        *_h264(),
        *("-output_ts_offset", "2", "-f", "mpegts", str(second)),
    )
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def keyframe_bomb(path: Path, keyframes: int = 150_000, rate: int = 100) -> Path:
    """Every frame a keyframe, `keyframes` of them (tiny black ones): one second encoded,
    then repeated by stream copy."""
    second = path.with_suffix(".one.mkv")
    _run(
        *("-f", "lavfi", "-i", f"color=black:size=16x16:rate={rate}:duration=1"),
        *_h264("-g", "1", "-pix_fmt", "yuv420p"),
        str(second),
    )
    _run(
        *("-stream_loop", str(keyframes // rate - 1), "-i", str(second)),
        *("-c", "copy", "-f", "matroska", str(path)),
    )
    return path


def frame_gap(path: Path, gap_s: float = 300) -> Path:
    """An MP4 whose video stops for `gap_s` seconds after its third frame."""
    _run(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.2"),
        *("-vf", f"setpts='if(gte(N,3),PTS+{gap_s}/TB,PTS)'", "-fps_mode", "passthrough"),
        *_h264(),
        str(path),
    )
    return path


def decompression_bomb(path: Path, size: str = "8192x8192") -> Path:
    """A few KB of H.264 declaring `size` frames (black compresses to nothing)."""
    _run(
        *("-f", "lavfi", "-i", f"color=black:size={size}:rate=25:duration=0.08"),
        *_h264(),
        *("-f", "matroska", str(path)),
    )
    return path


def raw_declaring(path: Path, width: int, height: int) -> Path:
    """Raw video whose header declares `width` x `height` (no frame that size exists)."""
    return declared_size_clip(path, width, height)


def flash_video(path: Path) -> Path:
    """A valid H.264 video in FLV: a container off the allowlist (named .mp4 or not)."""
    _run(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1"),
        *_h264(),
        *("-f", "flv", str(path)),
    )
    return path


# name: (how it is made from the folder and a victim file on the worker, words of the reason)
CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "hls.mp4": (lambda d, v: hls_playlist(d / "hls.mp4", v), "an HLS playlist"),
    "dash.mp4": (lambda d, v: dash_manifest(d / "dash.mp4", v), "a DASH manifest"),
    "concat.mp4": (
        lambda d, v: ffconcat_script(d / "concat.mp4", "/dev/zero"),
        "an ffconcat script",
    ),
    "no-duration.mkv": (
        lambda d, v: long_timeline_mkv(d / "no-duration.mkv"),
        "no frame for",
    ),
    "eleven-hours.ts": (
        lambda d, v: ts_spanning(d / "eleven-hours.ts"),
        "over the limit of 21600 s",
    ),
    "switch.ts": (
        lambda d, v: ts_switching_size(d / "switch.ts"),
        "changes its resolution to 8192x8192 at 2.0 s",
    ),
    "keyframes.mkv": (
        lambda d, v: keyframe_bomb(d / "keyframes.mkv"),
        "more than 100000 keyframes",
    ),
    "gap.mp4": (lambda d, v: frame_gap(d / "gap.mp4"), "no frame for 300 s"),
    "bomb.mkv": (
        lambda d, v: decompression_bomb(d / "bomb.mkv"),
        "the resolution 8192x8192 is over the limit",
    ),
    "flash.flv": (
        lambda d, v: flash_video(d / "flash.flv"),
        "not a video file: no format the service takes",
    ),
    "declared.mkv": (
        lambda d, v: raw_declaring(d / "declared.mkv", 20000, 20000),
        "frame size no decoder accepts",
    ),
}
