"""Probing a source with PyAV: what it is, and whether the service will take it.

`probe` runs in a child process (a corrupt file must not take the worker down with it; the
worker bounds its time and memory) and returns either the facts or the reason the file is
refused, in words a caller can act on. Nothing the file declares is trusted: only an
allowlist of container formats is opened, with file access only, and the whole video stream
is read to measure its length, frame rate, gaps and keyframes, stopping as soon as one is
past its bound. docs/media.md "Hostile uploads" lists each check.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = ["FORMATS", "Limits", "input_format", "probe"]

# The container formats the service opens (libavformat's demuxer names), as users name them.
# Playlists and scripts (HLS, DASH, ffconcat) and everything else are never opened: they
# name other files, which is how an upload reads what is not its own.
FORMATS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4/MOV",
    "matroska,webm": "Matroska/WebM",
    "mpegts": "MPEG-TS",
    "mpeg": "MPEG-PS",
    "avi": "AVI",
}
FORMAT_WHITELIST = ",".join(name.split(",")[0] for name in FORMATS)
# What libavformat may open: the file itself, nothing it names.
OPEN_OPTIONS = {"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": "file"}
KEYFRAME_SPACING_S = 0.25  # the plan never needs two cut points closer than this
MAX_PARAMETER_SETS = 1000  # distinct ones remembered; past that every keyframe is checked
# For codecs whose frame size the probe does not read from the packets: a keyframe decoded
# at most this often (decoding every keyframe of an all-intra ProRes or MJPEG file would cost
# as much as transcoding it). Between two checks the encoder's decoder refuses any frame
# over the pixel limit and fails the chunk (`-max_pixels` with `-xerror`).
SIZE_CHECK_EVERY_S = 10.0


@dataclass(frozen=True)
class Limits:
    """What the service takes."""

    max_bytes: int
    max_duration_s: float
    max_width: int
    max_height: int
    max_pixels: int
    max_frame_rate: float = 240.0
    max_frames: int = 2_000_000
    max_keyframes: int = 100_000
    max_gap_s: float = 60.0


def input_format(format_name: str) -> str:
    """The name to force on ffmpeg's `-f` for a format the probe accepted (`mov`)."""
    if format_name not in FORMATS:
        raise ValueError(f"{format_name!r} is not a format the service opens")
    return format_name.split(",")[0]


class Refused(Exception):
    """The file is refused; the message says why, in the caller's terms."""


def _manifest(head: bytes) -> str | None:
    """What a text playlist or script is, from its first bytes."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"#EXTM3U", b"#EXT-X-")):
        return "an HLS playlist"
    if text.startswith(b"ffconcat"):
        return "an ffconcat script"
    if b"<MPD" in text[:2048] or b"urn:mpeg:dash" in text[:2048]:
        return "a DASH manifest"
    return None


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
        head = handle.read(4096)
    manifest = _manifest(head)
    if manifest is not None:
        return _refuse(
            f"the file is {manifest}, not a video: playlists and scripts name other files and "
            f"are not accepted; upload the video itself ({_formats()})"
        )
    looks_mp4 = head[4:8] == b"ftyp"
    try:
        container = av.open(path, metadata_errors="ignore", container_options=OPEN_OPTIONS)
    except av.error.FFmpegError as exc:
        if looks_mp4:
            return _refuse(
                f"the MP4 file is truncated or corrupt and cannot be opened ({_words(exc)})"
            )
        return _refuse(f"not a video file: no format the service takes ({_formats()}) reads it")
    with container:
        if container.format.name not in FORMATS:
            return _refuse(
                f"the file's format ({container.format.long_name}) is not one the service "
                f"takes ({_formats()})"
            )
        try:
            return _inspect(container, size, limits)
        except Refused as refused:
            return _refuse(str(refused))


def _formats() -> str:
    return ", ".join(FORMATS.values())


def _words(exc: Exception) -> str:
    """libav's words for an error, without the file's path on this worker."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


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
        return _refuse(f"the video is corrupt: its first frame does not decode ({_words(exc)})")
    if rotation not in (0, 90, 180, 270):
        return _refuse(
            f"the video is rotated by {rotation} degrees; only right angles are supported"
        )

    container.seek(0)
    base = video.time_base or Fraction(1, 90000)
    walk = _Walk(video, base, limits)
    try:
        for packet in container.demux(video):
            walk.packet(packet)
    except av.error.FFmpegError as exc:
        return _refuse(
            f"the video is corrupt: reading it failed at {walk.last_end:.1f} s ({_words(exc)})"
        )
    keyframes, stamps, last_end = walk.keyframes, walk.stamps, walk.last_end
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
    if covered > duration * 1.1 + 2:
        return _refuse(
            f"the video's timestamps run to {covered:.1f} s, past the {duration:.1f} s the file "
            "declares: its timing is broken"
        )
    if duration > limits.max_duration_s:
        return _refuse(
            f"the duration {duration:.0f} s is over the limit of {limits.max_duration_s:.0f} s"
        )
    measured_rate = len(stamps) / max(duration, 1.0)
    if len(stamps) > 50 and measured_rate > limits.max_frame_rate * 1.05:
        return _refuse(
            f"the video runs at {measured_rate:.0f} frames per second, over the limit of "
            f"{limits.max_frame_rate:.0f}"
        )
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
        "keyframes_s": _spaced([k - start for k in sorted(keyframes)]),
    }


def _spaced(keyframes: list[float]) -> list[float]:
    """The keyframes at least KEYFRAME_SPACING_S apart: all a plan can use, and a bounded
    list however dense the source's keyframes are."""
    kept: list[float] = []
    for moment in keyframes:
        if not kept or moment - kept[-1] >= KEYFRAME_SPACING_S:
            kept.append(round(moment, 3))
    return kept


class _Walk:
    """One pass over the video's packets: its timeline, frame count and keyframes, refused
    as soon as any is past its bound, and the frame size at every keyframe that may change
    it (a stream may switch to a larger size mid-way; the header shows only the first)."""

    def __init__(self, video: Any, base: Fraction, limits: Limits) -> None:
        self.limits = limits
        self.base = base
        self.codec = str(video.codec_context.name)
        self.extradata = bytes(video.codec_context.extradata or b"")
        self.sizes = _ParameterSets(self.codec, self.extradata)
        self.keyframes: list[float] = []
        self.stamps: list[int] = []
        self.first: float | None = None
        self.latest = 0.0
        self.last_end = 0.0

    def packet(self, packet: Any) -> None:
        if packet.pts is None:
            return
        limits = self.limits
        moment = float(packet.pts * self.base)
        if self.first is None:
            self.first = self.latest = moment
        if moment - self.latest > limits.max_gap_s:
            raise Refused(
                f"the video has no frame for {moment - self.latest:.0f} s after "
                f"{self.latest - self.first:.1f} s (the limit is {limits.max_gap_s:.0f} s)"
            )
        self.latest = max(self.latest, moment)
        if self.latest - self.first > limits.max_duration_s:
            raise Refused(
                f"the video's timestamps run past the limit of {limits.max_duration_s:.0f} s"
            )
        self.stamps.append(int(packet.pts))
        if len(self.stamps) > limits.max_frames:
            raise Refused(f"the video has more than {limits.max_frames} frames, the limit")
        if packet.is_keyframe:
            self.keyframes.append(moment)
            if len(self.keyframes) > limits.max_keyframes:
                raise Refused(
                    f"the video has more than {limits.max_keyframes} keyframes, the limit"
                )
            if self.sizes.changed(bytes(packet), moment):
                self._check_size(packet, moment - self.first)
        self.last_end = max(self.last_end, moment + float((packet.duration or 0) * self.base))

    def _check_size(self, packet: Any, at_s: float) -> None:
        """Decode this keyframe alone and check its frame size."""
        import av

        limits = self.limits
        decoder: Any = av.CodecContext.create(self.codec, "r")
        if self.extradata:
            decoder.extradata = self.extradata
        decoder.thread_count = 1  # the frame comes out at once (libav bounds its size)
        try:
            frames = [*decoder.decode(packet), *decoder.decode(None)]
        except av.error.FFmpegError:
            frames = []
        if not frames:
            raise Refused(f"the video is corrupt: its keyframe at {at_s:.1f} s does not decode")
        for frame in frames:
            width, height = frame.width, frame.height
            if (
                width > limits.max_width
                or height > limits.max_height
                or width * height > limits.max_pixels
            ):
                raise Refused(
                    f"the video changes its resolution to {width}x{height} at {at_s:.1f} s, "
                    f"over the limit ({limits.max_width}x{limits.max_height}, "
                    f"{limits.max_pixels} pixels)"
                )


def _is_sps(codec: str, header: int) -> bool:
    if codec == "h264":
        return header & 0x1F == 7
    return (header >> 1) & 0x3F == 33  # hevc


class _ParameterSets:
    """Whether a keyframe may bring a new frame size: for H.264 and HEVC, when it carries a
    sequence parameter set unlike those seen before (the size lives there); for any other
    codec, a keyframe every SIZE_CHECK_EVERY_S."""

    def __init__(self, codec: str, extradata: bytes) -> None:
        self.codec = codec if codec in ("h264", "hevc") else None
        # avcC / hvcC extradata: length-prefixed units in the packets; else Annex B.
        self.length_size = 0
        if self.codec is not None and extradata[:1] == b"\x01":
            at = 4 if codec == "h264" else 21
            self.length_size = (extradata[at] & 0x3) + 1 if len(extradata) > at else 4
        self.seen: set[bytes] = set()
        self.checked_at: float | None = None

    def changed(self, data: bytes, moment: float) -> bool:
        if self.codec is None:
            due = self.checked_at is None or moment - self.checked_at >= SIZE_CHECK_EVERY_S
            if due:
                self.checked_at = moment
            return due
        fresh = False
        for unit in self._units(data):
            if unit and _is_sps(self.codec, unit[0]) and unit not in self.seen:
                fresh = fresh or bool(self.seen)
                if len(self.seen) >= MAX_PARAMETER_SETS:
                    self.seen.clear()
                    fresh = True
                self.seen.add(unit)
        return fresh

    def _units(self, data: bytes) -> list[bytes]:
        if self.length_size:
            units, at, n = [], 0, self.length_size
            while at + n <= len(data):
                size = int.from_bytes(data[at : at + n], "big")
                units.append(data[at + n : at + n + size])
                at += n + size
            return units
        return [part.rstrip(b"\x00") for part in data.split(b"\x00\x00\x01")[1:]]
