"""Media's image, built from the project's Dockerfiles, runs the ffmpeg build the tests run,
and its worker role, started as the ECS task starts it (read-only root, a scratch volume at
/scratch, every capability dropped), transcodes a generated clip on the local emulator to a
ladder that is probed and decoded here."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import m3u8
import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul_media.config import pinned_ffmpeg
from tests.images.conftest import Podman
from tests.support.media import (
    decodes,
    make_clip,
    probe_streams,
    provision_media,
    put_object,
    store_of,
    submit_transcode,
    wait_for,
)
from tests.support.moto import MotoServer, free_port

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("LONGHAUL_IMAGE_TESTS") != "1",
        reason="builds images with buildah and runs them with podman, as root, for minutes: "
        "`make test-images` runs these (LONGHAUL_IMAGE_TESTS=1)",
    ),
    pytest.mark.timeout(900),
]

# What the image itself reports: its ffmpeg's version line, any ffmpeg on PATH, its Python.
INSIDE = """
import json, shutil, subprocess, sys
from longhaul_media.config import pinned_ffmpeg
version = subprocess.run([pinned_ffmpeg(), "-version"], capture_output=True, text=True, check=True)
print(json.dumps({"ffmpeg": version.stdout.splitlines()[0], "on_path": shutil.which("ffmpeg"),
                  "python": list(sys.version_info[:2])}))
"""


def test_the_image_runs_the_pinned_ffmpeg_build_the_tests_run(
    media_image: str, podman: Podman
) -> None:
    here = subprocess.run([pinned_ffmpeg(), "-version"], capture_output=True, text=True, check=True)
    flags = podman.task_flags({})
    reported = podman("run", "--rm", *flags, "--entrypoint=python", media_image, "-c", INSIDE)
    inside = json.loads(reported.splitlines()[-1])
    assert inside["ffmpeg"] == here.stdout.splitlines()[0]
    assert inside["on_path"] is None, "the image has a distribution ffmpeg on PATH"
    assert inside["python"] == [3, 11]
    configured = podman("image", "inspect", "--format={{json .Config.Env}}", media_image)
    assert "FFMPEG" not in configured, configured


async def test_the_worker_image_transcodes_a_clip_to_a_verified_ladder_as_the_task_runs_it(
    media_image: str, podman: Podman, aws: AwsClients, moto: MotoServer, tmp_path: Path
) -> None:
    platform = await provision_media(aws, moto.endpoint)
    store = await store_of(aws, platform)
    clip = make_clip(tmp_path / "image.mp4", size="1280x720", seconds=5, gop_s=1)
    key = f"uploads/dora/{uuid.uuid4().hex}/image.mp4"
    await put_object(aws, platform, key, clip)
    job_id = await submit_transcode(store, aws, platform, key)
    environment = platform.environment("worker", LONGHAUL_VISIBILITY_TIMEOUT_S="20")
    worker = podman.start(media_image, environment, "--role", "worker", "--port", str(free_port()))

    done = await wait_for(store, job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=300)
    assert done.state is JobState.SUCCEEDED, f"{done.error}\n{podman.logs(worker)}"
    assert done.result is not None
    result = done.result

    # Everything the transcode wrote, fetched from the bucket and checked with the pinned
    # ffmpeg and PyAV here, outside the image.
    s3 = await aws.get("s3")
    listed = await s3.list_objects_v2(Bucket=platform.names.bucket, Prefix=f"outputs/{job_id}/")
    for item in listed["Contents"]:
        body = await s3.get_object(Bucket=platform.names.bucket, Key=item["Key"])
        path = tmp_path / item["Key"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(await body["Body"].read())
    assert not listed["IsTruncated"]

    source = probe_streams(clip)["duration"]
    master_path = tmp_path / result["master"]
    master = m3u8.load(str(master_path))
    assert master.is_variant
    ladder = {p.uri.split("/")[0]: p.stream_info.resolution for p in master.playlists}
    assert ladder == {"720p": (1280, 720), "480p": (854, 480), "360p": (640, 360)}
    for playlist_uri in (p.uri for p in master.playlists):
        rendition = master_path.parent / playlist_uri
        playlist = m3u8.load(str(rendition))
        assert playlist.is_endlist
        assert abs(sum(s.duration for s in playlist.segments) - source) <= 0.1, playlist_uri
        for segment in playlist.segments:
            assert decodes(rendition.parent / segment.uri), f"{playlist_uri}: {segment.uri}"
    mp4 = probe_streams(tmp_path / result["mp4"])
    assert abs(mp4["duration"] - source) <= 0.1
    video, audio = mp4["streams"]["video"], mp4["streams"]["audio"]
    assert (video["width"], video["height"]) == (1280, 720)
    assert abs(video["start"] - audio["start"]) <= 0.05
    assert decodes(tmp_path / result["mp4"])
    assert probe_streams(tmp_path / result["poster"])["streams"]["video"]["codec"] == "mjpeg"

    # A stop (a deploy, scale-in) is graceful: the worker exits 0 through the init process.
    podman("stop", "--time=40", worker, timeout=90)
    exit_code = podman("inspect", "--format={{.State.ExitCode}}", worker).strip()
    assert exit_code == "0", podman.logs(worker)
