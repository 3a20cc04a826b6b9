"""Every ffmpeg command the service runs opens each input with its format forced and file
access only: no input is probed by its contents or name, and nothing a file names (a
playlist's entries, a reference in a container) is ever opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from longhaul_media.media.ffmpeg import (
    audio_command,
    concat_command,
    encode_command,
    hls_command,
    poster_command,
    split_command,
    sprite_command,
)
from longhaul_media.media.plan import Rung
from longhaul_media.presets import load_presets

PRESET = load_presets()["default"]
SRC, OUT = Path("/s/source"), Path("/o")


def _commands() -> dict[str, list[str]]:
    rung = Rung(PRESET.renditions[-1], 640, 360)
    return {
        "split": split_command("ffmpeg", SRC, "mov", [2.0], OUT),
        "split-avi": split_command("ffmpeg", SRC, "avi", [2.0], OUT),
        "audio": audio_command("ffmpeg", SRC, "matroska", PRESET.audio, OUT / "a.m4a"),
        "encode": encode_command(
            "ffmpeg", SRC, [rung], PRESET, 0, [0.0], [OUT / "r.mp4"], 7680 * 4320
        ),
        "concat": concat_command("ffmpeg", OUT / "list.txt", OUT / "a.m4a", OUT / "j.mp4"),
        "hls": hls_command("ffmpeg", OUT / "j.mp4", 6, OUT),
        "poster": poster_command("ffmpeg", OUT / "j.mp4", 1.0, OUT / "p.jpg"),
        "sprite": sprite_command("ffmpeg", OUT / "j.mp4", 5.0, (160, 90), (2, 1), OUT / "s.jpg"),
    }


@pytest.mark.parametrize("step", sorted(_commands()))
def test_every_input_is_opened_with_a_forced_format_and_file_access_only(step: str) -> None:
    argv = _commands()[step]
    inputs = [i for i, arg in enumerate(argv) if arg == "-i"]
    assert inputs, "the command reads nothing"
    for at in inputs:
        options = dict(zip(argv[at - 4 : at : 2], argv[at - 3 : at : 2], strict=True))
        assert options.get("-protocol_whitelist") == "file", argv
        assert options.get("-f"), f"{step}: input {argv[at + 1]} is probed, not forced"


def test_the_encoder_fails_a_chunk_on_a_frame_over_the_pixel_limit() -> None:
    argv = _commands()["encode"]
    assert argv[argv.index("-max_pixels") + 1] == str(7680 * 4320)
    assert "-xerror" in argv, "a refused frame would be dropped, the rendition cut short"
