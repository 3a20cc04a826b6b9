"""ffmpeg's command lines for each step, and its -progress output.

Every command is an argv list (no shell), quiet except for errors, never reading stdin.
Every input is opened with its format forced (the one the probe accepted for an upload, the
service's own for its intermediates) and file access only: nothing a file names is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from longhaul_media.media.plan import Rung
from longhaul_media.presets import AudioSettings, Preset

__all__ = [
    "audio_command",
    "concat_command",
    "encode_command",
    "hls_command",
    "poster_command",
    "progress_seconds",
    "split_command",
    "sprite_command",
]


def _base(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def _input(path: Path, input_format: str) -> list[str]:
    """Read `path` as `input_format` (ffmpeg's `-f` name), and only `path`. AVI and MPEG-PS
    leave some packets without a presentation time: with B-frames they must be generated,
    or the split's NUT chunks refuse the packets."""
    flags = ["-fflags", "+genpts"] if input_format in ("avi", "mpeg") else []
    return [*flags, "-f", input_format, "-protocol_whitelist", "file", "-i", str(path)]


def split_command(
    ffmpeg: str, source: Path, source_format: str, cuts: Sequence[float], out_dir: Path
) -> list[str]:
    """Copy the video stream into chunks cut at `cuts` (keyframes), without re-encoding.
    Writes chunks.csv (file, start, end) beside the chunks."""
    argv = [*_base(ffmpeg), *_input(source, source_format), "-map", "0:v:0", "-c", "copy"]
    argv += ["-an", "-sn", "-dn", "-f", "segment", "-reset_timestamps", "1"]
    if cuts:
        # The segmenter cuts at the first keyframe at or after each time: a hair early
        # lands exactly on the keyframe the plan chose.
        argv += ["-segment_times", ",".join(f"{max(0.0, c - 0.0005):.6f}" for c in cuts)]
    else:
        argv += ["-segment_time", "1000000000"]
    argv += ["-segment_list", str(out_dir / "chunks.csv"), "-segment_list_type", "csv"]
    # NUT holds any codec and keeps the source's time base exactly (Matroska rounds to ms).
    return [*argv, "-segment_format", "nut", str(out_dir / "%05d.nut")]


def audio_command(
    ffmpeg: str,
    source: Path,
    source_format: str,
    audio: AudioSettings,
    out: Path,
    video_start_s: float = 0.0,
) -> list[str]:
    """Encode the first audio stream once for the whole file, on the video's clock: the
    renditions' video starts at 0 where the source's video starts (`video_start_s`), so the
    audio is shifted by as much, then padded with silence or trimmed to start at 0 too.
    Audio that starts after the video keeps its delay, audio before the video is cut."""
    return [
        *_base(ffmpeg),
        "-copyts",  # the source's own timestamps, so that the shift is exact
        *_input(source, source_format),
        "-map",
        "0:a:0",
        "-vn",
        "-c:a",
        "aac",
        "-b:a",
        f"{audio.kbps}k",
        "-ac",
        str(audio.channels),
        "-ar",
        str(audio.sample_rate),
        "-af",
        f"asetpts=PTS-{video_start_s:.6f}/TB,aresample=async=1:first_pts=0",
        "-movflags",
        "+faststart",
        str(out),
    ]


def _rotate(rotation: int) -> list[str]:
    # The display matrix says how far to turn the picture counter-clockwise to show it.
    return {90: ["transpose=cclock"], 180: ["hflip", "vflip"], 270: ["transpose=clock"]}.get(
        rotation, []
    )


def encode_command(
    ffmpeg: str,
    chunk: Path,
    rungs: Sequence[Rung],
    preset: Preset,
    rotation: int,
    keyframes: Sequence[float],
    outputs: Sequence[Path],
    max_pixels: int,
) -> list[str]:
    """Decode one chunk once and encode every rung from it (video only, H.264), with
    keyframes forced on the global GOP grid and progress on stdout. The decoder refuses a
    frame over `max_pixels` (a chunk that switches to a larger size than its probe saw)."""
    head = ",".join(_rotate(rotation)) or "null"
    labels = [f"r{i}" for i in range(len(rungs))]
    graph = f"[0:v]{head},split={len(rungs)}" + "".join(f"[{label}in]" for label in labels)
    for label, rung in zip(labels, rungs, strict=True):
        size = f"{rung.width}:{rung.height}"
        graph += f";[{label}in]scale={size}:flags=bicubic,format=yuv420p[{label}]"
    # -xerror: a frame the decoder refuses (over max_pixels) fails the chunk instead of
    # being dropped from a rendition that would then come out short.
    argv = [*_base(ffmpeg), "-xerror", "-noautorotate", "-max_pixels", str(max_pixels)]
    argv += [*_input(chunk, "nut"), "-filter_complex", graph]
    forced = ",".join(f"{t:.6f}" for t in keyframes)
    for label, rung, out in zip(labels, rungs, outputs, strict=True):
        r = rung.rendition
        argv += [
            "-map",
            f"[{label}]",
            "-c:v",
            "libx264",
            "-preset",
            preset.x264_preset,
            "-profile:v",
            r.profile,
            "-b:v",
            f"{r.video_kbps}k",
            "-maxrate",
            f"{r.maxrate_kbps}k",
            "-bufsize",
            f"{r.bufsize_kbps}k",
            "-force_key_frames",
            forced,
            "-sc_threshold",
            "0",
            "-fps_mode",
            "passthrough",
            "-enc_time_base:v",  # the source's frame times, untouched (variable rates too)
            "demux",
            "-an",
            "-f",
            "mp4",
            str(out),
        ]
    return [*argv, "-progress", "pipe:1", "-nostats"]


def concat_command(ffmpeg: str, listing: Path, audio: Path | None, out: Path) -> list[str]:
    """Stitch a rung's chunks (and the audio) into one MP4 without re-encoding."""
    # The listing is the service's own, naming its own files (absolute paths: -safe 0).
    argv = [*_base(ffmpeg), "-safe", "0", *_input(listing, "concat")]
    if audio is not None:
        argv += [*_input(audio, "mov"), "-map", "0:v:0", "-map", "1:a:0"]
    else:
        argv += ["-map", "0:v:0"]
    return [*argv, "-c", "copy", "-movflags", "+faststart", str(out)]


def hls_command(ffmpeg: str, source: Path, segment_s: int, out_dir: Path) -> list[str]:
    """Package a stitched rung as HLS (MPEG-TS segments, a VOD playlist), without
    re-encoding: segments cut at the keyframes on the GOP grid."""
    return [
        *_base(ffmpeg),
        *_input(source, "mov"),
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        str(segment_s),
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        str(out_dir / "seg_%05d.ts"),
        str(out_dir / "index.m3u8"),
    ]


def poster_command(ffmpeg: str, source: Path, at_s: float, out: Path) -> list[str]:
    """One frame as a JPEG."""
    return [
        *_base(ffmpeg),
        "-ss",
        f"{at_s:.3f}",
        *_input(source, "mov"),
        "-frames:v",
        "1",
        "-q:v",
        "3",
        str(out),
    ]


def sprite_command(
    ffmpeg: str,
    source: Path,
    every_s: float,
    size: tuple[int, int],
    grid: tuple[int, int],
    out: Path,
) -> list[str]:
    """Thumbnails every `every_s` seconds, tiled `grid` (columns x rows) into one JPEG."""
    columns, rows = grid
    # eof_action=pass: a source shorter than half the interval still gives its first frame.
    chain = f"fps=1/{every_s:.6f}:eof_action=pass,scale={size[0]}:{size[1]},tile={columns}x{rows}"
    return [
        *_base(ffmpeg),
        *_input(source, "mov"),
        "-vf",
        chain,
        "-frames:v",
        "1",
        "-q:v",
        "4",
        str(out),
    ]


def progress_seconds(line: str) -> float | None:
    """The output time an ffmpeg `-progress` line reports, if it reports one."""
    key, _, value = line.partition("=")
    if key == "out_time_us" and value.strip().lstrip("-").isdigit():
        return max(0.0, int(value) / 1_000_000)
    return None
