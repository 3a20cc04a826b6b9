"""Media: a Longhaul transcode beside the raw ffmpeg command with the same arguments, the
realtime factor of the 720p and 1080p ladders, and the chunked speedup of 2 workers over 1.

Every figure comes from one run on one moto server, the baseline measured beside it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from longhaul.aws.clients import AwsClients
from longhaul.jobs import Job, JobEvent, JobState
from longhaul.local.platform import DUMMY_CREDENTIALS
from longhaul_media.media.plan import ladder
from longhaul_media.models import MediaInfo
from longhaul_media.presets import load_presets
from tests.support.media import (
    MediaPlatform,
    MediaWorker,
    ffmpeg,
    make_clip,
    provision_media,
    put_object,
    store_of,
    submit_transcode,
    wait_for,
)
from tests.support.moto import MotoServer

REGION = "us-east-1"
SECONDS = 30
LONG = 120
PRESET = "default"


def raw_command(source: Path, size: tuple[int, int], out: Path) -> list[str]:
    """What a person would run by hand for the same ladder: one ffmpeg, the same scaler,
    the same x264 and AAC settings, HLS straight out."""
    preset = load_presets()[PRESET]
    width, height = size
    info = MediaInfo.model_validate(
        {
            "format": "mp4",
            "size": 1,
            "duration_s": SECONDS,
            "width": width,
            "height": height,
            "coded_width": width,
            "coded_height": height,
            "rotation": 0,
            "frame_rate": 25,
            "variable_frame_rate": False,
            "video_codec": "h264",
            "audio_codec": "aac",
            "audio_channels": 1,
        }
    )
    rungs = ladder(preset, info)
    labels = [f"r{i}" for i in range(len(rungs))]
    graph = f"[0:v]split={len(rungs)}" + "".join(f"[{label}in]" for label in labels)
    for label, rung in zip(labels, rungs, strict=True):
        graph += (
            f";[{label}in]scale={rung.width}:{rung.height}:flags=bicubic,format=yuv420p[{label}]"
        )
    argv = [ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
    argv += ["-filter_complex", graph]
    audio = preset.audio
    for label, rung in zip(labels, rungs, strict=True):
        r = rung.rendition
        folder = out / rung.name
        folder.mkdir(parents=True)
        argv += ["-map", f"[{label}]", "-map", "0:a:0", "-c:v", "libx264"]
        argv += ["-preset", preset.x264_preset, "-profile:v", r.profile]
        argv += ["-b:v", f"{r.video_kbps}k", "-maxrate", f"{r.maxrate_kbps}k"]
        argv += ["-bufsize", f"{r.bufsize_kbps}k", "-sc_threshold", "0"]
        argv += ["-force_key_frames", f"expr:gte(t,n_forced*{preset.gop_s})"]
        argv += ["-c:a", "aac", "-b:a", f"{audio.kbps}k", "-ac", str(audio.channels)]
        argv += ["-ar", str(audio.sample_rate), "-f", "hls", "-hls_time", str(preset.segment_s)]
        argv += ["-hls_playlist_type", "vod", "-hls_segment_filename", str(folder / "seg_%05d.ts")]
        argv += [str(folder / "index.m3u8")]
    return argv


PHASES: dict[str, list[float]] = {}


async def transcode(
    aws: AwsClients,
    platform: MediaPlatform,
    clip: Path,
    logs: Path,
    workers: int,
    *,
    env: dict[str, str],
    pinned: bool = False,
    label: str = "",
) -> float:
    """Wall seconds of one transcode job, from submit to succeeded, on `workers` workers
    (each pinned to its own core when `pinned`, as 1-vCPU tasks would be)."""
    key = f"uploads/bench/{uuid.uuid4().hex}/{clip.name}"
    await put_object(aws, platform, key, clip)
    store = await store_of(aws, platform)
    started = [
        MediaWorker(platform, logs, f"w{i}", cpu=i if pinned else None, **env)
        for i in range(workers)
    ]
    try:
        await asyncio.sleep(3)  # the workers are up and long-polling
        begun = time.monotonic()
        job_id = await submit_transcode(store, aws, platform, key, PRESET)
        done = await wait_for(store, job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=1800)
        wall = time.monotonic() - begun
        if done.state is not JobState.SUCCEEDED:
            raise RuntimeError(f"the bench transcode failed: {done.error}")
        if label:
            PHASES[label] = phases(await store.events(job_id), done)
        return wall
    finally:
        for worker in started:
            worker.stop()


def phases(history: list[JobEvent], done: Job) -> list[float]:
    """Seconds in each step: queue (submit to start), prepare (probe, split, audio, spawn),
    encode (the chunks), stitch (concat, package, upload)."""
    started = next(e.at for e in history if e.state is JobState.RUNNING)
    prepared = next(e.at for e in history if e.message and e.message.startswith("encoding"))
    stitching = next(e.at for e in history if e.message == "stitching")
    assert done.finished_at is not None
    marks = [done.created_at, started, prepared, stitching, done.finished_at]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(marks)]


def timed(argv: list[str]) -> float:
    begun = time.monotonic()
    subprocess.run(argv, check=True)
    return time.monotonic() - begun


async def run() -> dict[str, float]:
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ["AWS_REGION"] = REGION
    moto = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    folder = Path(tempfile.mkdtemp(prefix="longhaul-bench-media-"))
    aws = AwsClients(REGION)
    figures: dict[str, float] = {}
    try:
        platform = await provision_media(aws, moto.endpoint)
        clip720 = make_clip(folder / "720.mp4", size="1280x720", seconds=SECONDS, gop_s=2)
        long720 = make_clip(folder / "720long.mp4", size="1280x720", seconds=LONG, gop_s=2)
        clip1080 = make_clip(folder / "1080.mp4", size="1920x1080", seconds=SECONDS, gop_s=2)
        whole = {"MEDIA_CHUNK_MIN_S": "600", "MEDIA_CHUNK_MAX_S": "1200"}  # one chunk
        chunked = {"MEDIA_CHUNK_MIN_S": "5", "MEDIA_CHUNK_MAX_S": "8"}
        one_slot = {"LONGHAUL_JOB_CONCURRENCY": "1", "MEDIA_WAIT_POLL_S": "5"}

        figures["raw_720p_s"] = timed(raw_command(clip720, (1280, 720), folder / "raw"))
        figures["longhaul_720p_s"] = await transcode(
            aws, platform, clip720, folder, 1, label="720p 30 s", env=whole | one_slot
        )
        figures["raw_720p_long_s"] = timed(raw_command(long720, (1280, 720), folder / "rawlong"))
        figures["longhaul_720p_long_s"] = await transcode(
            aws, platform, long720, folder, 1, label="720p 120 s", env=whole | one_slot
        )
        figures["longhaul_1080p_s"] = await transcode(
            aws, platform, clip1080, folder, 1, label="1080p 30 s", env=whole | one_slot
        )
        for pinned in (False, True):
            tag = "pinned" if pinned else "shared"
            figures[f"chunked_1_{tag}_s"] = await transcode(
                aws, platform, long720, folder, 1, pinned=pinned, env=chunked | one_slot
            )
            figures[f"chunked_2_{tag}_s"] = await transcode(
                aws, platform, long720, folder, 2, pinned=pinned, env=chunked | one_slot
            )
    finally:
        await aws.close()
        moto.stop()
        shutil.rmtree(folder, ignore_errors=True)
    f = figures
    f["overhead_ratio"] = f["longhaul_720p_s"] / f["raw_720p_s"]
    f["overhead_ratio_long"] = f["longhaul_720p_long_s"] / f["raw_720p_long_s"]
    f["realtime_720p"] = LONG / f["longhaul_720p_long_s"]
    f["realtime_1080p"] = SECONDS / f["longhaul_1080p_s"]
    f["speedup_shared"] = f["chunked_1_shared_s"] / f["chunked_2_shared_s"]
    f["speedup_pinned"] = f["chunked_1_pinned_s"] / f["chunked_2_pinned_s"]
    return f


def main() -> dict[str, float]:
    f = asyncio.run(run())
    print(
        f"media (preset {PRESET}, one chunk, one worker): 720p ladder as a Longhaul job vs raw "
        f"ffmpeg with the same arguments: {SECONDS} s clip {f['longhaul_720p_s']:.1f} s vs "
        f"{f['raw_720p_s']:.1f} s, ratio {f['overhead_ratio']:.3f}; {LONG} s clip "
        f"{f['longhaul_720p_long_s']:.1f} s vs {f['raw_720p_long_s']:.1f} s, ratio "
        f"{f['overhead_ratio_long']:.3f}"
    )
    print(
        f"media realtime factor: 720p ladder {f['realtime_720p']:.2f}x ({LONG} s clip), "
        f"1080p ladder {f['realtime_1080p']:.2f}x ({SECONDS} s clip)"
    )
    print(
        f"media chunked ({LONG} s, 5-8 s chunks, 1 job slot a worker): sharing both cores "
        f"1 worker {f['chunked_1_shared_s']:.1f} s, 2 workers {f['chunked_2_shared_s']:.1f} s "
        f"(speedup {f['speedup_shared']:.2f}x); one core each "
        f"1 worker {f['chunked_1_pinned_s']:.1f} s, 2 workers {f['chunked_2_pinned_s']:.1f} s "
        f"(speedup {f['speedup_pinned']:.2f}x)"
    )
    for label, (queue, prepare, encode, stitch) in PHASES.items():
        print(
            f"media steps, {label}: queue {queue:.2f} s, prepare {prepare:.2f} s, "
            f"encode {encode:.2f} s, stitch {stitch:.2f} s"
        )
    return f


if __name__ == "__main__":
    main()
