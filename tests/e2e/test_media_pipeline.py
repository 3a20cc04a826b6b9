"""The media service end to end: a caller's presigned upload, the S3 event on the bus, the
transcode fanned out over real worker processes running real ffmpeg, and the outputs
verified by probing them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from tests.support.app import forge
from tests.support.media import (
    MediaPlatform,
    MediaWorker,
    children_of,
    decodes,
    facts,
    listen,
    make_clip,
    media_api,
    probe_streams,
    provision_media,
    put_object,
    store_of,
    submit_transcode,
    tone_onset,
    wait_for,
)
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def bearer(platform: MediaPlatform, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {forge(platform.auth, sub=sub)}"}


async def upload(
    api: httpx.AsyncClient, headers: dict[str, str], clip: Path, **extra: Any
) -> dict[str, Any]:
    """Ask for a presigned PUT and upload `clip` with it, as a browser would."""
    response = await api.post(
        "/uploads",
        json={
            "filename": clip.name,
            "content_type": "video/mp4",
            "size": clip.stat().st_size,
            **extra,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    assert ticket["method"] == "PUT"
    async with httpx.AsyncClient() as s3:
        put = await s3.put(ticket["url"], content=clip.read_bytes(), headers=ticket["headers"])
    assert put.status_code == 200, put.text
    return ticket


async def the_job(
    api: httpx.AsyncClient, headers: dict[str, str], timeout: float = 30
) -> dict[str, Any]:
    """The caller's one job, once the upload's event has created it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = (await api.get("/jobs", headers=headers)).json()["jobs"]
        if jobs:
            assert len(jobs) == 1
            return dict(jobs[0])
        await asyncio.sleep(0.25)
    raise AssertionError("the upload created no job")


async def test_upload_is_transcoded_to_a_verified_ladder_that_only_its_owner_sees(
    aws: AwsClients,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    media_workers: list[MediaWorker],
) -> None:
    platform = await provision_media(aws, moto.endpoint)
    listener = await listen(aws, platform)
    clip = make_clip(tmp_path / "holiday.mp4", size="1280x720", seconds=7, gop_s=1)
    # A lease no loaded CI machine outlasts: this test counts runs, and a heartbeat starved
    # past a 6 s lease is a takeover (a second run), correct but not what is checked here.
    media_workers += [
        MediaWorker(platform, tmp_path, name, LONGHAUL_VISIBILITY_TIMEOUT_S="20") for name in "ab"
    ]
    alice, bob = bearer(platform, "alice"), bearer(platform, "bob")
    async with media_api(monkeypatch, platform) as (_, api):
        ticket = await upload(api, alice, clip, preset="fast")
        assert ticket["key"].startswith("uploads/alice/")
        job = await the_job(api, alice)
        assert job["payload"] == {"key": ticket["key"], "preset": "fast"}
        store = await store_of(aws, platform)
        done = await wait_for(store, job["id"], JobState.SUCCEEDED, JobState.FAILED, timeout=180)
        assert done.state is JobState.SUCCEEDED, done.error

        # The chunks ran on both workers, each exactly once.
        chunks = await children_of(store, done.id)
        assert len(chunks) >= 3
        assert all(c.state is JobState.SUCCEEDED and c.runs == 1 for c in chunks), [
            (c.state, c.runs, c.takeovers, c.attempts, c.error) for c in chunks
        ]

        # Another caller sees neither the job nor its outputs; the owner gets both.
        assert (await api.get(f"/jobs/{done.id}", headers=bob)).status_code == 404
        assert (await api.get(f"/jobs/{done.id}/outputs", headers=bob)).status_code == 404
        assert (await api.get("/jobs", headers=bob)).json()["jobs"] == []
        response = await api.get(f"/jobs/{done.id}/outputs", params={"urls": "true"}, headers=alice)
        assert response.status_code == 200, response.text
        outputs = response.json()

        # Playback from the private bucket: the master through the API, each rendition's
        # playlist with presigned segments that a player fetches straight from S3.
        hls = f"/jobs/{done.id}/hls"
        assert (await api.get(f"{hls}/master.m3u8", headers=bob)).status_code == 404
        escape = await api.get(f"{hls}/%2E%2E/%2E%2E/uploads.m3u8", headers=alice)
        assert escape.status_code == 404
        served = await api.get(f"{hls}/master.m3u8", headers=alice)
        assert served.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        variant = m3u8.loads(served.text).playlists[0].uri
        media = m3u8.loads((await api.get(f"{hls}/{variant}", headers=alice)).text)
        async with httpx.AsyncClient() as player:
            for segment in media.segments:
                assert "X-Amz-Signature=" in segment.uri
                assert (await player.get(segment.uri)).status_code == 200

    result = done.result
    assert result is not None
    local = tmp_path / "outputs"
    async with httpx.AsyncClient() as http:

        async def fetch(key: str) -> Path:
            url = outputs["urls"].get(key) or outputs["urls"][key]
            path = local / key
            path.parent.mkdir(parents=True, exist_ok=True)
            got = await http.get(url)
            assert got.status_code == 200, key
            path.write_bytes(got.content)
            return path

        for output in outputs["outputs"]:
            await fetch(output["key"])
        base = local / f"outputs/{done.id}/hls"
        # Segments are not listed one by one; fetch them from the bucket beside the playlists.
        s3 = await aws.get("s3")
        for rendition in result["renditions"]:
            for index in range(rendition["segments"]):
                key = f"outputs/{done.id}/hls/{rendition['name']}/seg_{index:05d}.ts"
                body = await s3.get_object(Bucket=platform.names.bucket, Key=key)
                path = local / key
                path.write_bytes(await body["Body"].read())

    source = probe_streams(clip)["duration"]
    master = m3u8.load(str(base / "master.m3u8"))
    assert master.is_variant
    ladder = {p.uri.split("/")[0]: p.stream_info for p in master.playlists}
    assert set(ladder) == {"720p", "480p", "360p"}  # never upscaled past the 720p source
    expected = {"720p": (1280, 720), "480p": (854, 480), "360p": (640, 360)}
    for name, info in ladder.items():
        assert info.resolution == expected[name]
        assert info.bandwidth > 0
        assert info.codecs.startswith("avc1.")
        assert info.codecs.endswith(",mp4a.40.2")
        playlist = m3u8.load(str(base / name / "index.m3u8"))
        assert playlist.is_endlist
        assert playlist.playlist_type == "vod"
        assert abs(sum(s.duration for s in playlist.segments) - source) <= 0.1, name
        assert all(s.duration <= 6 + 0.5 for s in playlist.segments)
        for segment in playlist.segments:
            assert decodes(base / name / segment.uri), f"{name}/{segment.uri} does not decode"

    mp4 = probe_streams(local / result["mp4"])
    assert abs(mp4["duration"] - source) <= 0.1
    video, audio = mp4["streams"]["video"], mp4["streams"]["audio"]
    assert (video["width"], video["height"]) == (1280, 720)
    # In sync after stitching: both streams start together and end together.
    assert abs(video["start"] - audio["start"]) <= 0.05
    assert abs(video["duration"] - audio["duration"]) <= 0.1
    poster = probe_streams(local / result["poster"])["streams"]["video"]
    assert poster["codec"] == "mjpeg"
    vtt = (local / result["vtt"]).read_text()
    assert vtt.startswith("WEBVTT")
    assert vtt.count("sprite.jpg#xywh=") == 4

    # Once: a chunk's wake delivered while the finishing worker runs the after-end effects
    # waits for them instead of publishing the fact a second time.
    [completed] = await facts(aws, listener, "media.transcode.completed")
    assert completed["data"]["job_id"] == done.id
    assert completed["data"]["owner"] == "alice"
    assert completed["data"]["master_key"] == result["master"]
    # Intermediates are gone from the bucket; only the upload and the outputs remain.
    s3 = await aws.get("s3")
    left = await s3.list_objects_v2(Bucket=platform.names.bucket, Prefix=f"work/{done.id}/")
    assert left.get("KeyCount", 0) == 0


@pytest.mark.parametrize("workers_count", [2], ids=["two-workers"])
async def test_sources_of_every_shape_keep_duration_size_and_sync(
    aws: AwsClients,
    moto: MotoServer,
    tmp_path: Path,
    media_workers: list[MediaWorker],
    workers_count: int,
) -> None:
    platform = await provision_media(aws, moto.endpoint)
    store = await store_of(aws, platform)
    shapes = {
        "rotated": (dict(size="640x360", seconds=4, rotate=90), [("360p", 360, 640)], True),
        "silent": (
            dict(size="854x480", seconds=4, audio=False),
            [("480p", 854, 480), ("360p", 640, 360)],
            False,
        ),
        "vfr": (dict(size="640x360", seconds=5, variable_rate=True), [("360p", 640, 360)], True),
        "small": (dict(size="320x240", seconds=3), [("240p", 320, 240)], True),
        "late-audio": (
            dict(size="320x240", seconds=4, audio_offset_s=1.0),
            [("240p", 320, 240)],
            True,
        ),
        "early-audio": (
            dict(size="320x240", seconds=7, audio_offset_s=-1.5),
            [("240p", 320, 240)],
            True,
        ),
    }
    jobs = {}
    for name, (options, _, _) in shapes.items():
        clip = make_clip(tmp_path / f"{name}.mp4", **options)  # type: ignore[arg-type]
        key = f"uploads/carol/{uuid.uuid4().hex}/{name}.mp4"
        await put_object(aws, platform, key, clip)
        jobs[name] = await submit_transcode(store, aws, platform, key)
    media_workers += [MediaWorker(platform, tmp_path, str(i)) for i in range(workers_count)]
    s3 = await aws.get("s3")
    for name, (options, ladder, has_audio) in shapes.items():
        job = await wait_for(store, jobs[name], JobState.SUCCEEDED, JobState.FAILED, timeout=180)
        assert job.state is JobState.SUCCEEDED, f"{name}: {job.error}"
        assert job.result is not None
        # The renditions run on the source's video clock (audio before the video is cut).
        source = probe_streams(tmp_path / f"{name}.mp4")["streams"]["video"]["duration"]
        got = [(r["name"], r["width"], r["height"]) for r in job.result["renditions"]]
        assert got == ladder, name
        mp4 = tmp_path / f"{name}-out.mp4"
        body = await s3.get_object(Bucket=platform.names.bucket, Key=job.result["mp4"])
        mp4.write_bytes(await body["Body"].read())
        probed = probe_streams(mp4)
        assert abs(probed["duration"] - source) <= 0.1, name
        video = probed["streams"]["video"]
        assert (video["width"], video["height"]) == ladder[0][1:], name
        assert ("audio" in probed["streams"]) is has_audio, name
        if has_audio:
            # In sync: the first sound sits where it sat against the source's video.
            heard = tone_onset(mp4) - tone_onset(tmp_path / f"{name}.mp4")
            assert abs(heard) <= 0.05, f"{name}: the audio moved {heard:+.3f} s"
        if has_audio and "audio_offset_s" not in options:
            audio = probed["streams"]["audio"]
            assert abs(video["start"] - audio["start"]) <= 0.05, name
            assert abs(video["duration"] - audio["duration"]) <= 0.1, name
        assert decodes(mp4), name
