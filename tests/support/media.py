"""The media service under test: generated clips, its platform on moto, its API in-process
and its workers as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from longhaul.aws.clients import AwsClients
from longhaul.config import load_settings
from longhaul.jobs import Job, JobState, JobStore
from longhaul.jobs.store import child_owner
from longhaul.local.platform import LocalAuth, role_environment
from longhaul.local.provision import provision
from longhaul.spec import ResourceNames
from longhaul_media.config import MediaSettings, ffmpeg_binary
from longhaul_media.service import SERVICE
from longhaul_media.spec import SPEC as MEDIA
from tests.support.moto import free_port

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

# Small chunks, so that a few seconds of video make several; quick polls and retries.
FAST = {
    "LONGHAUL_POLL_WAIT_S": "1",
    "LONGHAUL_CANCEL_POLL_S": "0.3",
    "LONGHAUL_SHUTDOWN_DEADLINE_S": "10",
    "LONGHAUL_RECONCILE_EVERY_S": "1",
    "LONGHAUL_RECONCILE_AFTER_S": "3",
    "LONGHAUL_RETRY_BASE_S": "1",
    "LONGHAUL_RETRY_MAX_S": "4",
    "LONGHAUL_JOB_CONCURRENCY": "2",
    "LONGHAUL_VISIBILITY_TIMEOUT_S": "6",
    "MEDIA_CHUNK_MIN_S": "2",
    "MEDIA_CHUNK_MAX_S": "3",
    "MEDIA_WAIT_POLL_S": "1",
}


def ffmpeg() -> str:
    """The ffmpeg the service itself would run here."""
    return ffmpeg_binary(MediaSettings.model_construct())


def make_clip(
    path: Path,
    *,
    size: str = "640x360",
    seconds: float = 4,
    rate: int = 25,
    gop_s: float = 1,
    audio: bool = True,
    rotate: int | None = None,
    variable_rate: bool = False,
    audio_offset_s: float = 0.0,
) -> Path:
    """A test pattern (and a sine tone) encoded as H.264/AAC MP4. With `audio_offset_s`,
    the audio stream starts that much after the video (before it, when negative), and is
    silence until the tone starts, 1 s after the later of the two streams' starts, so that
    the tone's onset marks where the audio sits."""
    argv = [ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if audio_offset_s < 0:
        argv += ["-itsoffset", str(-audio_offset_s)]
    argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio and audio_offset_s:
        if audio_offset_s > 0:
            argv += ["-itsoffset", str(audio_offset_s)]
        length = seconds - audio_offset_s
        onset = 1 + max(0.0, -audio_offset_s)
        tone = f"aevalsrc='if(gte(t,{onset}),sin(2*PI*440*t),0)':s=48000:d={length}"
        argv += ["-f", "lavfi", "-i", tone]
    elif audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if variable_rate:  # drop every fourth frame and keep the others' times: a variable rate
        argv += ["-vf", "select='not(eq(mod(n\\,4)\\,1))'"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    argv += ["-g", str(int(rate * gop_s)), "-keyint_min", str(int(rate * gop_s))]
    if variable_rate:
        argv += ["-fps_mode", "vfr"]
    if audio:
        argv += ["-c:a", "aac", "-b:a", "96k"]
        argv += [] if audio_offset_s else ["-shortest"]
    argv += ["-movflags", "+faststart", str(path)]
    subprocess.run(argv, check=True, timeout=120)
    if rotate is not None:
        rotated = path.with_name(f"rotated-{path.name}")
        subprocess.run(
            [
                ffmpeg(),
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-display_rotation",
                str(rotate),
                "-i",
                str(path),
                "-c",
                "copy",
                str(rotated),
            ],
            check=True,
            timeout=60,
        )
        rotated.replace(path)
    return path


def declared_size_clip(path: Path, width: int, height: int) -> Path:
    """A tiny raw-video Matroska file whose header declares `width` x `height`: what a
    hostile or broken upload looks like, without ever making a frame that size."""
    subprocess.run(
        [
            ffmpeg(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=256x256:duration=0.2",
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    data = bytearray(path.read_bytes())
    # EBML PixelWidth (0xB0) and PixelHeight (0xBA), two-byte values, written as 256.
    for element, value in ((b"\xb0\x82\x01\x00", width), (b"\xba\x82\x01\x00", height)):
        at = data.find(element)
        assert at >= 0, "the Matroska header has no two-byte frame size to rewrite"
        data[at + 2 : at + 4] = value.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


@dataclass
class MediaPlatform:
    """The media service's resources in an environment of their own."""

    env: str
    auth: LocalAuth
    endpoint: str
    names: ResourceNames

    def environment(self, role: str = "api", **extra: str) -> dict[str, str]:
        """The variables the dev runner would give the media service."""
        return {
            **role_environment(
                MEDIA,
                role,
                env=self.env,
                region=REGION,
                endpoint=self.endpoint,
                auth=self.auth,
                host="127.0.0.1",
            ),
            **FAST,
            **extra,
        }


async def provision_media(aws: AwsClients, endpoint: str) -> MediaPlatform:
    """Provision the media spec in a new environment."""
    env = "m" + uuid.uuid4().hex[:8]
    report = await provision(aws, [MEDIA], env=env, region=REGION)
    assert report.auth is not None
    return MediaPlatform(env, report.auth, endpoint, ResourceNames.of(MEDIA, env))


@asynccontextmanager
async def media_api(
    monkeypatch: pytest.MonkeyPatch, platform: MediaPlatform, **extra: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The media API in-process (its lifespan running), and a client speaking to it."""
    for key, value in platform.environment("api", **extra).items():
        monkeypatch.setenv(key, value)
    app = SERVICE.app("api", load_settings(MediaSettings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://media.test") as client:
            yield app, client


class MediaWorker:
    """`python -m longhaul_media --role worker` as its own process."""

    def __init__(
        self,
        platform: MediaPlatform,
        logs: Path,
        name: str = "w",
        *,
        cpu: int | None = None,
        **extra: str,
    ) -> None:
        """`cpu` pins the worker and its ffmpeg to one core, as a 1-vCPU task would be."""
        self.name = name
        self.port = free_port()  # its /healthz
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.log_path = logs / f"media-worker-{name}-{time.time_ns()}.log"
        variables = {**os.environ, **platform.environment("worker", **extra)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *pin,
                    sys.executable,
                    "-m",
                    "longhaul_media",
                    "--role",
                    "worker",
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=variables,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL the worker and everything it started (its ffmpeg too, as a dead task's)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def store_of(aws: AwsClients, platform: MediaPlatform) -> JobStore:
    """The media service's job store."""
    assert platform.names.table is not None
    return JobStore(
        await aws.get("dynamodb"),
        platform.names.table,
        s3=await aws.get("s3"),
        bucket=platform.names.bucket,
    )


async def wait_for(store: JobStore, job_id: str, *states: JobState, timeout: float = 120) -> Job:
    """The job once it is in one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        job = await store.get(job_id)
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.state} (wanted {states}): {job}")
        await asyncio.sleep(0.25)


async def children_of(store: JobStore, job_id: str) -> list[Job]:
    """The chunk jobs a transcode spawned."""
    page = await store.page(child_owner(job_id), limit=1000)
    return sorted(page.jobs, key=lambda j: int(j.payload["index"]))


def probe_streams(path: Path) -> dict[str, Any]:
    """Duration, size and per-stream start and duration of a media file, by PyAV."""
    import av

    with av.open(str(path)) as container:
        streams = {}
        for stream in container.streams:
            base = stream.time_base or 1
            streams[stream.type] = {
                "start": float(stream.start_time * base) if stream.start_time is not None else 0.0,
                "duration": float(stream.duration * base) if stream.duration else None,
                "width": getattr(stream.codec_context, "width", None),
                "height": getattr(stream.codec_context, "height", None),
                "codec": stream.codec_context.name,
            }
        return {"duration": (container.duration or 0) / 1_000_000, "streams": streams}


def tone_onset(path: Path) -> float:
    """Where the first sound of the file's audio starts, in seconds from its video's start
    (as a player lines them up)."""
    done = subprocess.run(
        [
            *(ffmpeg(), "-nostdin", "-copyts", "-i", str(path), "-map", "0:a:0"),
            *("-af", "silencedetect=noise=-40dB:d=0.3", "-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    ends = re.findall(r"silence_end: ([0-9.]+)", done.stderr)
    sound = float(ends[0]) if ends else probe_streams(path)["streams"]["audio"]["start"]
    return sound - float(probe_streams(path)["streams"]["video"]["start"])


def decodes(path: Path) -> bool:
    """Whether ffmpeg decodes the whole file without an error."""
    done = subprocess.run(
        [ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        timeout=120,
    )
    return done.returncode == 0 and not done.stderr.strip()


def ffmpeg_children(pid: int) -> list[int]:
    """The ffmpeg processes `pid` started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"ffmpeg" in command:
            found.append(int(entry.name))
    return found


async def put_object(
    aws: AwsClients, platform: MediaPlatform, key: str, path: Path, *, transcode: bool = False
) -> None:
    """Put a file straight into the media bucket (as a finished upload); unless asked, with
    the metadata that tells the service not to start a transcode of its own."""
    s3 = await aws.get("s3")
    metadata = {} if transcode else {"longhaul-transcode": "no"}
    await s3.put_object(
        Bucket=platform.names.bucket, Key=key, Body=path.read_bytes(), Metadata=metadata
    )


async def listen(aws: AwsClients, platform: MediaPlatform) -> str:
    """A queue that receives every media fact from the platform bus."""
    sqs, events = await aws.get("sqs"), await aws.get("events")
    url = (await sqs.create_queue(QueueName=f"{platform.env}-listener"))["QueueUrl"]
    arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    await events.put_rule(
        Name=f"{platform.env}-listener",
        EventBusName=platform.names.bus,
        EventPattern=json.dumps({"source": ["longhaul.media"]}),
    )
    await events.put_targets(
        Rule=f"{platform.env}-listener",
        EventBusName=platform.names.bus,
        Targets=[{"Id": "listener", "Arn": arn}],
    )
    return str(url)


async def facts(
    aws: AwsClients, url: str, wanted: str, timeout: float = 30, count: int = 1
) -> list[dict[str, Any]]:
    """The media facts of type `wanted` received (waiting for at least `count`)."""
    sqs = await aws.get("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            envelope = json.loads(message["Body"])["detail"]
            if envelope["type"] == wanted:
                found.append(envelope)
    return found


async def submit_transcode(
    store: JobStore, aws: AwsClients, platform: MediaPlatform, key: str, preset: str = "fast"
) -> str:
    """Submit a transcode of `key` for its uploader as the API does (write, then enqueue)."""
    from longhaul.jobs.queue import enqueue

    job, _ = await store.submit(
        owner=key.split("/")[1], job_type="transcode", payload={"key": key, "preset": preset}
    )
    sqs = await aws.get("sqs")
    url = (await sqs.get_queue_url(QueueName=platform.names.queue))["QueueUrl"]
    await enqueue(sqs, url, job.id)
    await store.mark_enqueued(job.id)
    return str(job.id)


def make_tone(path: Path, seconds: float = 1) -> Path:
    """Audio only: a sine tone in AAC, in whatever container `path` names."""
    argv = [ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
    argv += ["-i", f"sine=duration={seconds}", "-c:a", "aac", str(path)]
    subprocess.run(argv, check=True, timeout=60)
    return path
