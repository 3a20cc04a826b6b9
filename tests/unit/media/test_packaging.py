"""The master playlist and the thumbnails' WebVTT that the service writes itself."""

from __future__ import annotations

from pathlib import Path

import m3u8

from longhaul_media.media.ffmpeg import progress_seconds
from longhaul_media.media.packaging import (
    Variant,
    avc1_codec,
    master_playlist,
    playlist_bitrates,
    thumbnails_vtt,
)


def test_master_playlist_parses_with_bandwidth_resolution_and_codecs() -> None:
    text = master_playlist(
        [
            Variant("360p/index.m3u8", 900_000, 800_000, 640, 360, "avc1.4D401E,mp4a.40.2", 25),
            Variant("720p/index.m3u8", 3_000_000, 2_800_000, 1280, 720, "avc1.64001F", 25),
        ]
    )
    parsed = m3u8.loads(text)
    assert [p.uri for p in parsed.playlists] == ["720p/index.m3u8", "360p/index.m3u8"]
    first = parsed.playlists[0].stream_info
    assert (first.bandwidth, first.average_bandwidth, first.resolution) == (
        3_000_000,
        2_800_000,
        (1280, 720),
    )
    assert parsed.playlists[1].stream_info.codecs == "avc1.4D401E,mp4a.40.2"


def test_codec_strings_follow_rfc_6381() -> None:
    assert avc1_codec("High", 31) == "avc1.64001F"
    assert avc1_codec("Main", 30) == "avc1.4D401E"
    assert avc1_codec("Constrained Baseline", 30) == "avc1.42E01E"


def test_bitrates_come_from_the_segments_sizes(tmp_path: Path) -> None:
    (tmp_path / "a.ts").write_bytes(b"x" * 6000)
    (tmp_path / "b.ts").write_bytes(b"x" * 1000)
    playlist = tmp_path / "index.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:6.0,\na.ts\n#EXTINF:2.0,\nb.ts\n#EXT-X-ENDLIST\n")
    peak, average = playlist_bitrates(playlist)
    assert peak == 8000  # 6000 bytes in 6 s
    assert average == 7000  # 7000 bytes in 8 s


def test_thumbnail_cues_cover_the_video_and_point_into_the_grid() -> None:
    vtt = thumbnails_vtt("sprite.jpg", 5, 2.0, 9.0, (160, 90), columns=3)
    cues = [line for line in vtt.splitlines() if "-->" in line]
    assert cues[0] == "00:00:00.000 --> 00:00:02.000"
    assert cues[-1] == "00:00:08.000 --> 00:00:09.000"
    assert "sprite.jpg#xywh=160,90,160,90" in vtt  # the 5th thumbnail: row 2, column 2


def test_ffmpeg_progress_lines_give_seconds() -> None:
    assert progress_seconds("out_time_us=2500000") == 2.5
    assert progress_seconds("out_time_us=N/A") is None
    assert progress_seconds("progress=continue") is None
