"""Chunk planning of a keyframe-dense source: the planner beside the rescanning planner it
replaced (chunks x keyframes), on the same keyframes in the same run. The issue's case: a
6 h source, every frame a keyframe at 24 fps (518,400 keyframes), 30-60 s chunks."""

from __future__ import annotations

import time

from longhaul_media.media.plan import plan_chunks
from tests.unit.media.test_plan import _plan_by_rescanning

DURATION_S = 6 * 3600.0
RATE = 24


def main() -> dict[str, float]:
    keyframes = [i / RATE for i in range(int(DURATION_S * RATE))]
    began = time.perf_counter()
    planned = plan_chunks(keyframes, DURATION_S, 30, 60)
    new_s = time.perf_counter() - began
    began = time.perf_counter()
    baseline = _plan_by_rescanning(keyframes, DURATION_S, 30, 60)
    old_s = time.perf_counter() - began
    assert [(c.start_s, c.end_s) for c in planned] == baseline, "the two plans differ"
    figures = {"plan_s": new_s, "rescanning_plan_s": old_s, "ratio": old_s / new_s}
    print(
        f"planning {len(keyframes)} keyframes into {len(planned)} chunks "
        f"(6 h, all-intra {RATE} fps): {new_s * 1000:.0f} ms; the rescanning planner "
        f"{old_s * 1000:.0f} ms (ratio {figures['ratio']:.0f}x)"
    )
    return figures


if __name__ == "__main__":
    main()
