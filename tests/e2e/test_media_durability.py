"""The media worker under failure: bad inputs fail with their reason while the worker goes
on, a worker killed mid-transcode costs only its chunks in flight, and a cancel stops
ffmpeg within two seconds. Real worker processes, real ffmpeg, a real moto server."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState, JobStore
from tests.support.app import forge
from tests.support.media import (
    MediaPlatform,
    MediaWorker,
    children_of,
    declared_size_clip,
    facts,
    ffmpeg_children,
    listen,
    make_clip,
    make_tone,
    media_api,
    provision_media,
    put_object,
    store_of,
    submit_transcode,
    wait_for,
)
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> MediaPlatform:
    return await provision_media(aws, moto.endpoint)


def upload_key(owner: str, name: str) -> str:
    return f"uploads/{owner}/{uuid.uuid4().hex}/{name}"


async def until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_each_bad_input_fails_with_its_own_reason_and_the_worker_goes_on(
    aws: AwsClients, platform: MediaPlatform, tmp_path: Path, media_workers: list[MediaWorker]
) -> None:
    files = tmp_path / "in"
    files.mkdir()
    good = make_clip(files / "good.mp4", seconds=2)
    (files / "notes.mp4").write_text("not a video at all\n" * 40)
    (files / "empty.mp4").touch()
    (files / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    make_tone(files / "song.mp4")
    declared_size_clip(files / "huge.mkv", 20000, 20000)
    big = files / "big.mp4"
    big.write_bytes(good.read_bytes() + b"\0" * 300_000)
    expected = {
        "notes.mp4": "not a video file",
        "empty.mp4": "the file is empty (0 bytes)",
        "cut.mp4": "the file is truncated",
        "song.mp4": "the file has no video stream (audio only)",
        "huge.mkv": "frame size no decoder accepts",
        "big.mp4": "over the limit of",
    }
    limit = str(good.stat().st_size + 100_000)  # the good file fits, big.mp4 does not
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    listener = await listen(aws, platform)
    media_workers.append(
        MediaWorker(
            platform, tmp_path, "w", MEDIA_MAX_UPLOAD_BYTES=limit, MEDIA_SCRATCH_DIR=str(scratch)
        )
    )
    store = await store_of(aws, platform)
    jobs = {}
    for name in [*expected, "good.mp4"]:
        key = upload_key("alice", name)
        await put_object(aws, platform, key, files / name)
        jobs[name] = await submit_transcode(store, aws, platform, key)
    for name, reason in expected.items():
        job = await wait_for(store, jobs[name], JobState.SUCCEEDED, JobState.FAILED, timeout=60)
        assert job.state is JobState.FAILED, name
        assert job.error is not None
        assert reason in job.error, f"{name}: {job.error}"
        assert job.attempts <= 1, "a bad input is not retried"
    done = await wait_for(store, jobs["good.mp4"], JobState.SUCCEEDED, JobState.FAILED, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert media_workers[0].process.poll() is None, "the worker is still running"
    assert list(scratch.iterdir()) == [], "temp files are removed on success and on failure"
    failed = await facts(aws, listener, "media.transcode.failed", count=len(expected))
    reasons = {f["data"]["job_id"]: f["data"]["reason"] for f in failed}
    for name, reason in expected.items():
        assert reason in reasons[jobs[name]], name


async def test_a_worker_killed_mid_transcode_costs_only_its_chunks_in_flight(
    aws: AwsClients, platform: MediaPlatform, tmp_path: Path, media_workers: list[MediaWorker]
) -> None:
    # 12 s in 2-3 s chunks, two at a time, on a two-rung ladder: chunks done, chunks in
    # flight and chunks not started when the kill comes, at a third of a 720p clip's cost.
    clip = make_clip(tmp_path / "long.mp4", size="854x480", seconds=12, gop_s=1)
    key = upload_key("alice", "long.mp4")
    await put_object(aws, platform, key, clip)
    store = await store_of(aws, platform)
    victim = MediaWorker(platform, tmp_path, "victim")
    media_workers.append(victim)
    job_id = await submit_transcode(store, aws, platform, key, preset="default")

    async def some_done_some_running() -> bool:
        chunks = await children_of(store, job_id)
        done = [c for c in chunks if c.state is JobState.SUCCEEDED]
        return bool(done) and any(c.state is JobState.RUNNING for c in chunks)

    await until(some_done_some_running, 120, "a finished chunk and a running one")
    victim.kill9()
    at_kill = await children_of(store, job_id)
    finished_before = {c.id for c in at_kill if c.state is JobState.SUCCEEDED}
    in_flight = {c.id for c in at_kill if c.state is JobState.RUNNING}
    media_workers.append(MediaWorker(platform, tmp_path, "rescuer"))
    job = await wait_for(store, job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=240)
    assert job.state is JobState.SUCCEEDED, job.error
    chunks = await children_of(store, job_id)
    runs = {c.id: c.runs for c in chunks}
    redone = sum(runs.values()) - len(chunks)
    print(
        f"\nkill -9 mid-transcode: {len(chunks)} chunks, {len(finished_before)} finished before "
        f"the kill (each run once), {len(in_flight)} in flight, {redone} chunk runs repeated"
    )
    assert all(runs[c] == 1 for c in finished_before), "a finished chunk was redone"
    assert redone <= len(in_flight)
    assert job.result is not None
    assert abs(job.result["renditions"][0]["duration_s"] - 12) <= 0.1


async def test_cancel_stops_ffmpeg_within_two_seconds_and_cleans_up(
    aws: AwsClients,
    platform: MediaPlatform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    media_workers: list[MediaWorker],
) -> None:
    clip = make_clip(tmp_path / "long.mp4", size="1280x720", seconds=20, gop_s=2)
    key = upload_key("alice", "long.mp4")
    await put_object(aws, platform, key, clip)
    # One long chunk, so that ffmpeg is surely running when the cancel comes.
    worker = MediaWorker(platform, tmp_path, "w", MEDIA_CHUNK_MIN_S="30", MEDIA_CHUNK_MAX_S="60")
    media_workers.append(worker)
    store = await store_of(aws, platform)
    alice = {"Authorization": f"Bearer {forge(platform.auth, sub='alice')}"}
    async with media_api(monkeypatch, platform) as (_, api):
        created = await api.post(
            "/jobs",
            json={"type": "transcode", "payload": {"key": key, "preset": "default"}},
            headers=alice,
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]

        async def encoding() -> bool:
            chunks = await children_of(store, job_id)
            running = any(c.state is JobState.RUNNING for c in chunks)
            return running and bool(ffmpeg_children(worker.pid))

        await until(encoding, 120, "ffmpeg encoding a chunk")
        asked = time.monotonic()
        response = await api.post(f"/jobs/{job_id}/cancel", headers=alice)
        assert response.status_code == 202, response.text

        async def ffmpeg_gone() -> bool:
            return not ffmpeg_children(worker.pid)

        await until(ffmpeg_gone, 10, "ffmpeg to be killed")
        stopped_in = time.monotonic() - asked
        print(f"\ncancel: ffmpeg gone {stopped_in:.2f} s after POST /jobs/{{id}}/cancel")
        assert stopped_in < 2.0
        job = await wait_for(store, job_id, JobState.CANCELLED, JobState.FAILED, timeout=30)
        assert job.state is JobState.CANCELLED
        await until(lambda: _all_terminal(store, job_id), 30, "the chunks to end")
        chunks = await children_of(store, job_id)
        assert [c.state for c in chunks] == [JobState.CANCELLED] * len(chunks)
    s3 = await aws.get("s3")

    async def cleaned() -> bool:
        listed = await s3.list_objects_v2(Bucket=platform.names.bucket, Prefix=f"work/{job_id}/")
        return int(listed.get("KeyCount", 0)) == 0

    await until(cleaned, 30, "the work/ prefix to be removed")
    assert worker.process.poll() is None


async def _all_terminal(store: JobStore, job_id: str) -> bool:
    return all(c.terminal for c in await children_of(store, job_id))
