"""Hostile uploads through a real media worker: every kind is refused with a reason the
uploader understands (never a path on the worker), the worker answers /healthz within a
second throughout, and its scratch space is empty afterwards.

What each file would do to a worker without the guards: read a file on the worker into the
caller's output (playlists naming local paths), read forever (/dev/zero), plan or transcode
hours of timeline from a few KB (a Matroska without a duration, a TS stamped 11 hours
apart, a gap padded with silence), stall the event loop in planning (a keyframe bomb), or
allocate gigabytes (frames declared or switched to 8192x8192)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from tests.support import hostile
from tests.support.hostile import CASES
from tests.support.media import (
    MediaWorker,
    children_of,
    make_clip,
    provision_media,
    put_object,
    store_of,
    submit_transcode,
    wait_for,
)
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

HEALTH_BOUND_S = 1.0  # the bar: /healthz answers within a second throughout

# Through the worker: one of each way to hurt it (reading what is not the upload's, a
# format off the allowlist, a keyframe bomb, a size switch, a decompression bomb). Every
# kind is refused in-process too: tests/integration/media/test_probe_hostile.py.
THROUGH_WORKER = ("hls.mp4", "flash.flv", "keyframes.mkv", "switch.ts", "bomb.mkv")


async def _watch_health(port: int, stop: asyncio.Event, seen: list[float]) -> None:
    """Ask /healthz every 100 ms; record each answer's time (inf for none)."""
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                ok = (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            seen.append(time.monotonic() - began if ok else float("inf"))
            await asyncio.sleep(0.1)


async def test_every_hostile_upload_is_refused_with_its_reason_and_the_worker_stays_well(
    aws: AwsClients, moto: MotoServer, tmp_path: Path, media_workers: list[MediaWorker]
) -> None:
    platform = await provision_media(aws, moto.endpoint)
    files, scratch = tmp_path / "files", tmp_path / "scratch"
    files.mkdir()
    scratch.mkdir()
    victim = hostile.small_ts(tmp_path / "victim.ts")  # a file on the worker's machine
    made = {name: CASES[name][0](files, victim) for name in THROUGH_WORKER}
    worker = MediaWorker(platform, tmp_path, MEDIA_SCRATCH_DIR=str(scratch))
    media_workers.append(worker)
    async with httpx.AsyncClient() as client:
        for _ in range(200):  # the worker's health server is up
            try:
                if (await client.get(f"http://127.0.0.1:{worker.port}/healthz")).is_success:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)

    stop, latencies = asyncio.Event(), list[float]()
    watcher = asyncio.create_task(_watch_health(worker.port, stop, latencies))
    store = await store_of(aws, platform)
    try:
        jobs = {}
        for name, path in made.items():
            key = f"uploads/mallory/{uuid.uuid4().hex}/{name}"
            await put_object(aws, platform, key, path)
            jobs[name] = await submit_transcode(store, aws, platform, key)
        ended = {
            name: await wait_for(store, job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=240)
            for name, job_id in jobs.items()
        }
        # A good upload after them all still transcodes on the same worker.
        good = make_clip(files / "good.mp4", size="320x240", seconds=3)
        key = f"uploads/mallory/{uuid.uuid4().hex}/good.mp4"
        await put_object(aws, platform, key, good)
        good_job = await submit_transcode(store, aws, platform, key)
        finished = await wait_for(store, good_job, JobState.SUCCEEDED, JobState.FAILED)
    finally:
        stop.set()
        await watcher

    for name, job in ended.items():
        expected = CASES[name][1]
        assert job.state is JobState.FAILED, f"{name} was transcoded"
        assert job.error is not None, name
        assert expected in job.error, f"{name}: {job.error}"
        assert job.attempts == 0, f"{name} was retried: a refusal is final"
        for leak in (str(scratch), str(tmp_path), "/tmp/", "source"):
            assert leak not in job.error, f"{name}'s reason names the worker's files: {job.error}"
    assert finished.state is JobState.SUCCEEDED, finished.error
    assert worker.process.poll() is None, "the worker died"
    assert latencies, "/healthz was never asked"
    assert max(latencies) < HEALTH_BOUND_S, (
        f"/healthz answered in at most {max(latencies):.2f} s over {len(latencies)} checks"
    )
    assert list(scratch.iterdir()) == [], "scratch files were left behind"


async def test_a_transcode_past_its_time_limit_fails_and_its_unfinished_chunks_are_cancelled(
    aws: AwsClients, moto: MotoServer, tmp_path: Path, media_workers: list[MediaWorker]
) -> None:
    """The transcode's time limit (from the source's length: here 0.01 s + 0.01 s a second,
    0.09 s for an 8 s source, which preparing alone passes) ends it once its working time
    passes it, preparing included, and the chunks it had not seen finish are cancelled with
    it. (A limit that the chunks' encoding passes instead raced the last chunk's end against
    the cancel, and every chunk could finish first.)"""
    platform = await provision_media(aws, moto.endpoint)
    media_workers.append(
        MediaWorker(
            platform,
            tmp_path,
            MEDIA_TRANSCODE_TIMEOUT_S="0.01",
            MEDIA_TRANSCODE_TIMEOUT_PER_S="0.01",
        )
    )
    clip = make_clip(tmp_path / "clip.mp4", size="1280x720", seconds=8)
    key = f"uploads/dave/{uuid.uuid4().hex}/clip.mp4"
    await put_object(aws, platform, key, clip)
    store = await store_of(aws, platform)
    job = await wait_for(
        store,
        await submit_transcode(store, aws, platform, key),
        JobState.FAILED,
        JobState.SUCCEEDED,
    )
    assert job.state is JobState.FAILED
    assert job.error is not None
    assert "ran past its time limit of 0 s for a source of 8 s" in job.error
    chunks = await children_of(store, job.id)
    assert len(chunks) >= 3, "the transcode had spawned its chunks"
    ended = [
        await wait_for(store, c.id, JobState.SUCCEEDED, JobState.CANCELLED, JobState.FAILED)
        for c in chunks
    ]
    assert {c.state for c in ended} <= {JobState.SUCCEEDED, JobState.CANCELLED}, [
        (c.state.value, c.error) for c in ended
    ]
    assert JobState.CANCELLED in {c.state for c in ended}, "every chunk ran to its end"
