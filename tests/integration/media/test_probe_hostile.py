"""Every hostile upload kind (tests/support/hostile.py), generated with the pinned ffmpeg and
probed in-process with the service's default limits: each refused with its reason, in
words about the file. The worker-level proof (a real worker stays well throughout) sends
one of each way through tests/e2e/test_media_hostile.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from longhaul_media.config import MediaSettings
from longhaul_media.media.probe import Limits, probe
from tests.support.hostile import CASES, small_ts

DEFAULTS = MediaSettings.model_construct()
LIMITS = Limits(
    max_bytes=DEFAULTS.max_upload_bytes,
    max_duration_s=DEFAULTS.max_duration_s,
    max_width=DEFAULTS.max_width,
    max_height=DEFAULTS.max_height,
    max_pixels=DEFAULTS.max_pixels,
    max_frame_rate=DEFAULTS.max_frame_rate,
    max_frames=DEFAULTS.max_frames,
    max_keyframes=DEFAULTS.max_keyframes,
    max_gap_s=DEFAULTS.max_gap_s,
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_hostile_kind_is_refused_with_its_reason(tmp_path: Path, name: str) -> None:
    victim = small_ts(tmp_path / "victim.ts")
    make, expected = CASES[name]
    path = make(tmp_path, victim)
    stored = path.rename(tmp_path / "source")  # as the worker keeps it: no extension
    found = probe(str(stored), LIMITS)
    assert "error" in found, f"{name} was accepted: {found}"
    assert expected in found["error"]
    assert str(tmp_path) not in found["error"], "the reason names the worker's files"


def test_a_long_timeline_is_refused_while_reading_not_only_from_the_header(
    tmp_path: Path,
) -> None:
    """Past the limit by its timestamps alone (the file declares no duration): the walk
    stops at the limit, whatever the gaps allow."""
    from tests.support.hostile import long_timeline_mkv

    path = long_timeline_mkv(tmp_path / "long.mkv", span_s=200)
    short = Limits(50 * 1024**2, 100, 7680, 7680, 7680 * 4320, max_gap_s=1000)
    found = probe(str(path), short)
    assert found.get("error") == "the video's timestamps run past the limit of 100 s"
