"""A transcode's time limit counts its working time only: time its chunks wait in the queue
behind other owners' work is not the transcode's to answer for."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from longhaul.jobs import JobState
from longhaul_media.worker.jobs import _count_working_time


def _children(*states: JobState) -> list[Any]:
    return [SimpleNamespace(state=state) for state in states]


def test_time_counts_while_every_unfinished_chunk_is_running() -> None:
    state = {"working_s": 10.0, "checked_at": time.time() - 60}
    counted = _count_working_time(state, _children(JobState.RUNNING, JobState.SUCCEEDED))
    assert 69.0 <= counted["working_s"] <= 71.0


def test_time_a_chunk_waits_in_the_queue_is_not_counted() -> None:
    state = {"working_s": 10.0, "checked_at": time.time() - 3600}
    counted = _count_working_time(state, _children(JobState.RUNNING, JobState.QUEUED))
    assert counted["working_s"] == 10.0
    assert counted["checked_at"] >= time.time() - 1, "the next check counts from now"
