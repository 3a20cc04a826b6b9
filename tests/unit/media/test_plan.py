"""Chunk plans, ladders and keyframe grids: what a transcode decides before any ffmpeg runs."""

from __future__ import annotations

import itertools
import random

import pytest

from longhaul_media.media.plan import forced_keyframes, ladder, mp4_rung, plan_chunks
from longhaul_media.models import MediaInfo
from longhaul_media.presets import load_presets


def info(width: int, height: int, **more: object) -> MediaInfo:
    return MediaInfo.model_validate(
        {
            "format": "mp4",
            "size": 1,
            "duration_s": 10.0,
            "width": width,
            "height": height,
            "coded_width": width,
            "coded_height": height,
            "rotation": 0,
            "frame_rate": 25.0,
            "variable_frame_rate": False,
            "video_codec": "h264",
            "audio_codec": "aac",
            "audio_channels": 2,
            **more,
        }
    )


def test_chunks_cut_only_at_keyframes_within_bounds_and_cover_the_source() -> None:
    keyframes = [float(k) for k in range(0, 600, 2)]  # a keyframe every 2 s for 10 minutes
    chunks = plan_chunks(keyframes, 600.0, 30, 60)
    assert chunks[0].start_s == 0
    assert chunks[-1].end_s == 600.0
    for before, after in itertools.pairwise(chunks):
        assert before.end_s == after.start_s
        assert after.start_s in keyframes
    assert all(30 <= c.duration_s <= 60 for c in chunks)


def test_last_chunk_is_balanced_rather_than_a_sliver() -> None:
    keyframes = [float(k) for k in range(0, 70)]
    chunks = plan_chunks(keyframes, 70.0, 30, 60)
    assert [c.duration_s for c in chunks] == [35.0, 35.0]


def test_sparse_keyframes_make_longer_chunks_never_a_cut_between_keyframes() -> None:
    chunks = plan_chunks([0.0, 100.0, 250.0], 300.0, 30, 60)
    assert [(c.start_s, c.end_s) for c in chunks] == [(0, 100.0), (100.0, 250.0), (250.0, 300.0)]


def test_a_source_with_one_keyframe_is_one_chunk() -> None:
    assert [(c.start_s, c.end_s) for c in plan_chunks([0.0], 500.0, 30, 60)] == [(0, 500.0)]


def test_ladder_never_upscales_and_keeps_the_aspect_ratio() -> None:
    preset = load_presets()["default"]
    rungs = ladder(preset, info(1280, 720))
    assert [(r.name, r.width, r.height) for r in rungs] == [
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
    ]
    assert mp4_rung(preset, rungs).name == "720p"


def test_portrait_video_is_laddered_on_its_short_side() -> None:
    rungs = ladder(load_presets()["default"], info(1080, 1920))
    assert next((r.name, r.width, r.height) for r in rungs) == ("1080p", 1080, 1920)
    assert all(r.width < r.height for r in rungs)


def test_a_source_under_the_smallest_rung_gets_one_rendition_at_its_own_size() -> None:
    rungs = ladder(load_presets()["default"], info(320, 240))
    assert [(r.name, r.width, r.height) for r in rungs] == [("240p", 320, 240)]


def test_keyframes_fall_on_the_global_gop_grid_in_every_chunk() -> None:
    assert forced_keyframes(0, 7, 2) == [0.0, 2.0, 4.0, 6.0]
    # A chunk from 3 s: its keyframes at source times 4, 6 (local 1, 3), plus its first frame.
    assert forced_keyframes(3, 7, 2) == [0.0, 1.0, 3.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"segment_s": 5}, "whole number of GOPs"),
        ({"renditions": []}, "at least 1"),
        ({"x264_preset": "instant"}, "x264_preset"),
    ],
)
def test_a_bad_preset_is_refused_when_loaded(change: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    from longhaul_media.presets import Preset

    data = load_presets()["default"].model_dump() | change
    with pytest.raises(ValidationError, match=message):
        Preset.model_validate(data)


def test_renditions_out_of_order_are_refused() -> None:
    from pydantic import ValidationError

    from longhaul_media.presets import Preset

    data = load_presets()["default"].model_dump()
    data["renditions"] = list(reversed(data["renditions"]))
    with pytest.raises(ValidationError, match="tallest down"):
        Preset.model_validate(data)


def _plan_by_rescanning(
    keyframes: list[float], duration_s: float, min_s: float, max_s: float
) -> list[tuple[float, float]]:
    """The plan as first written: every cut rescans every keyframe (chunks x keyframes)."""
    points = sorted(k for k in keyframes if 0 < k < duration_s)
    bounds = [0.0]
    while duration_s - bounds[-1] > max_s:
        start = bounds[-1]
        remaining = duration_s - start
        target = start + (max_s if remaining >= max_s + min_s else remaining / 2)
        window = [k for k in points if start + min_s <= k <= start + max_s]
        if window:
            cut = min(window, key=lambda k: abs(k - target))
        else:
            later = [k for k in points if k >= start + min_s]
            if not later:
                break
            cut = later[0]
        if duration_s - cut < 0.5:
            break
        bounds.append(cut)
    bounds.append(duration_s)
    return [(round(a, 6), round(b, 6)) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("seed", range(40))
def test_the_binary_search_plan_cuts_exactly_where_the_rescanning_plan_cut(seed: int) -> None:
    """Planning is linear in the keyframes (a keyframe-dense upload must not stall the
    worker), and cuts where the original, quadratic planner did: sparse, dense, irregular
    and tied keyframes alike."""
    rng = random.Random(seed)
    duration = rng.uniform(1, 900)
    spacing = rng.choice([0.01, 0.5, 2.0, 7.0, 45.0, 200.0])
    keyframes = sorted(
        round(rng.uniform(0, duration) if rng.random() < 0.3 else i * spacing, 3)
        for i in range(int(duration / spacing) + 1)
    )
    min_s, max_s = rng.choice([(30, 60), (2, 3), (10, 10), (5, 40)])
    planned = [(c.start_s, c.end_s) for c in plan_chunks(keyframes, duration, min_s, max_s)]
    assert planned == _plan_by_rescanning(keyframes, duration, min_s, max_s)
