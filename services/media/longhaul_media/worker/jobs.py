"""The transcode job and its chunks.

A `transcode` runs in three steps, each resumable from its checkpoint:
1. prepare: probe the upload, plan keyframe-aligned chunks, split the video into them
   (stream copy), encode the audio once, put both under work/, spawn one `transcode-chunk`
   job per chunk (any worker runs them, in parallel);
2. wait: check the chunks, report their progress, and park (free the worker's slot) until
   every chunk is done;
3. stitch: concatenate each rendition's chunks with the audio (no re-encode), package HLS,
   the MP4, the poster and the thumbnails, and upload them under outputs/.
A worker killed at any point redoes at most the step or the chunks it had in flight.
"""

from __future__ import annotations

import asyncio
import csv
import resource
import signal
import time
from pathlib import Path
from typing import Any

from longhaul.flags import Flags
from longhaul.jobs import (
    JobCancelled,
    JobContext,
    JobResources,
    JobState,
    JobTypes,
    NonRetryable,
)
from longhaul_media.config import MIB, MediaSettings, ffmpeg_binary
from longhaul_media.media.ffmpeg import (
    audio_command,
    encode_command,
    progress_seconds,
    split_command,
)
from longhaul_media.media.plan import forced_keyframes, ladder, plan_chunks, rung_of
from longhaul_media.media.probe import Limits, input_format, probe
from longhaul_media.models import (
    Chunk,
    ChunkPayload,
    ChunkResult,
    MediaInfo,
    RungSize,
    TranscodePayload,
    TranscodeResult,
)
from longhaul_media.presets import Preset, PresetUnavailable, preset_flags, require_available
from longhaul_media.storage import download, object_size, scratch, upload, work_prefix
from longhaul_media.worker._utils import (
    ENCODED,
    PREPARED,
    ffmpeg_limits,
    preset_named,
    reasons_without_paths,
    resources_of,
    run_ffmpeg,
    settings_of,
    stderr_tail,
    without_paths,
)
from longhaul_media.worker.ended import transcode_ended
from longhaul_media.worker.stitch import stitch

__all__ = ["jobs"]

jobs = JobTypes()


def owns(payload: TranscodePayload, owner: str) -> bool:
    """Whether the source is one of `owner`'s uploads."""
    return payload.key.startswith(f"uploads/{owner}/")


@jobs.handler(
    "transcode",
    payload=TranscodePayload,
    output=TranscodeResult,  # the job's result in the OpenAPI document
    max_attempts=3,
    on_end=transcode_ended,
    admit=owns,
)
async def transcode(payload: TranscodePayload, ctx: JobContext) -> dict[str, Any]:
    """Probe, chunk, fan out, wait, stitch: an upload to an adaptive-bitrate ladder."""
    if not owns(payload, ctx.owner):
        raise NonRetryable("the source is not one of the caller's uploads")
    preset = preset_named(payload.preset)
    resources = resources_of(ctx)
    settings = settings_of(resources)
    state: dict[str, Any] = ctx.resume or {}
    if state.get("phase") != "encoding":
        # A preset's feature flag decides whether a transcode starts with it; one already
        # encoding finishes, whatever the flag says since (docs/flags.md).
        await _require_available(payload.preset, resources)
        with reasons_without_paths(settings):
            state = await _prepare(payload, preset, ctx, resources, settings)
        await ctx.checkpoint(state)
    chunks = [Chunk.model_validate(c) for c in state["chunks"]]
    children = await ctx.jobs(state["children"])
    for chunk, child in zip(chunks, children, strict=True):
        if child.state is JobState.CANCELLED:  # only a cancel of this job cancels its chunks
            raise JobCancelled(ctx.job_id)
        if child.state is JobState.FAILED:
            reason = without_paths(child.error or "no reason", settings)
            raise NonRetryable(f"chunk {chunk.index} failed: {reason}")
    total = sum(c.duration_s for c in chunks)
    done = sum(
        c.duration_s * (1.0 if j.state is JobState.SUCCEEDED else j.progress)
        for c, j in zip(chunks, children, strict=True)
    )
    finished = sum(1 for j in children if j.state is JobState.SUCCEEDED)
    if finished < len(children):
        state = _count_working_time(state, children)
        if state.get("working_s", 0.0) > state.get("timeout_s", float("inf")):
            raise NonRetryable(
                f"the transcode ran past its time limit of {_minutes(state['timeout_s'])} "
                f"for a source of {_minutes(state['info']['duration_s'])}"
            )
        message = f"{finished} of {len(children)} chunks encoded"
        fraction = round(PREPARED + (ENCODED - PREPARED) * done / total, 3)
        if fraction != state.get("reported"):
            await ctx.progress(fraction, message)
            state = {**state, "reported": fraction}
        await ctx.checkpoint(state)
        ctx.park(settings.wait_poll_s, message)
    await ctx.progress(ENCODED, "stitching")
    with reasons_without_paths(settings):
        result = await _stitch(ctx, resources, settings, preset, payload, state, chunks)
    return result.model_dump(mode="json")


async def _require_available(preset: str, resources: JobResources) -> None:
    """Fail for good when the preset's feature flag is off (POST /uploads refuses it, but a
    job may have been submitted another way, or before the flag was turned off)."""
    flags = resources.flags or Flags(None, None, defaults=preset_flags())  # the defaults
    try:
        await require_available(preset, flags)
    except PresetUnavailable as exc:
        raise NonRetryable(str(exc)) from None


def _count_working_time(state: dict[str, Any], children: list[Any]) -> dict[str, Any]:
    """Add the time since the last check to the transcode's working time, unless a chunk
    still waits for a worker then: time in the queue (other owners' work ahead, workers
    still starting) is not the transcode's to answer for. Once every chunk is done nothing
    is counted: finished work is stitched, never failed for the time it took."""
    now = time.time()
    waiting = any(j.state is JobState.QUEUED for j in children)
    elapsed = max(0.0, now - state.get("checked_at", now))
    return {
        **state,
        "checked_at": now,
        "working_s": state.get("working_s", 0.0) + (0.0 if waiting else elapsed),
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def transcode_timeout(settings: MediaSettings, duration_s: float) -> float:
    """How long a transcode of `duration_s` seconds of video may work (time its chunks wait
    in the queue is not counted)."""
    return settings.transcode_timeout_s + settings.transcode_timeout_per_s * duration_s


async def _stitch(
    ctx: JobContext,
    resources: JobResources,
    settings: MediaSettings,
    preset: Preset,
    payload: TranscodePayload,
    state: dict[str, Any],
    chunks: list[Chunk],
) -> TranscodeResult:
    return await stitch(
        ctx,
        resources,
        settings,
        preset,
        source_key=payload.key,
        info=MediaInfo.model_validate(state["info"]),
        chunks=chunks,
        rungs=[RungSize.model_validate(r) for r in state["rungs"]],
        has_audio=bool(state["audio"]),
        preset_name=payload.preset,
    )


async def _prepare(
    payload: TranscodePayload,
    preset: Preset,
    ctx: JobContext,
    resources: JobResources,
    settings: MediaSettings,
) -> dict[str, Any]:
    s3 = await resources.aws.get("s3")
    bucket = str(resources.settings.bucket_name)
    size = await object_size(s3, bucket, payload.key)
    if size is None:
        raise NonRetryable(f"the upload {payload.key} does not exist")
    if size > settings.max_upload_bytes:
        raise NonRetryable(
            f"the file is {size} bytes, over the limit of {settings.max_upload_bytes} bytes"
        )
    ffmpeg = ffmpeg_binary(settings)
    work = work_prefix(ctx.job_id)
    started = time.time()
    with scratch(settings.scratch_dir, f"media-{ctx.job_id[:8]}-") as tmp:
        # No extension of the caller's: nothing guesses a format from the name.
        source = await download(s3, bucket, payload.key, tmp / "source")
        found = await _probe(ctx, settings, source)
        info = MediaInfo.model_validate(found)
        fmt = input_format(info.format)
        rungs = ladder(preset, info)
        planned = await asyncio.to_thread(
            plan_chunks,
            found["keyframes_s"],
            info.duration_s,
            settings.chunk_min_s,
            settings.chunk_max_s,
        )
        ctx.log.info(
            "probed the source",
            extra={
                "duration_s": info.duration_s,
                "size": f"{info.width}x{info.height}",
                "rotation": info.rotation,
                "chunks": len(planned),
                "rungs": [r.name for r in rungs],
            },
        )
        pieces = tmp / "chunks"
        pieces.mkdir()
        cuts = [c.start_s for c in planned[1:]]
        await run_ffmpeg(
            ctx,
            split_command(ffmpeg, source, fmt, cuts, pieces),
            "splitting",
            settings,
            media_s=info.duration_s,
            max_file_bytes=size + 64 * MIB,
        )
        chunks = _split_chunks(pieces / "chunks.csv", info.duration_s)
        sizes = [RungSize(name=r.name, width=r.width, height=r.height) for r in rungs]
        has_audio = info.audio_codec is not None

        async def fan_out() -> list[str]:
            # The chunks go out first: workers encode them while the audio is made here.
            await asyncio.gather(
                *(
                    upload(
                        s3, bucket, f"{work}src/{c.index:05d}.nut", pieces / f"{c.index:05d}.nut"
                    )
                    for c in chunks
                )
            )
            return [
                await ctx.spawn(
                    "transcode-chunk",
                    ChunkPayload(
                        index=c.index,
                        start_s=c.start_s,
                        end_s=c.end_s,
                        preset=payload.preset,
                        rotation=info.rotation,
                        rungs=sizes,
                    ).model_dump(mode="json"),
                    key=f"chunk-{c.index:05d}",
                )
                for c in chunks
            ]

        async def encode_audio() -> None:
            if has_audio:
                audio = tmp / "audio.m4a"
                argv = audio_command(ffmpeg, source, fmt, preset.audio, audio, info.start_s)
                # Twice the audio's bit rate for the video's length: silence padded into a
                # timestamp gap cannot fill the disk.
                bound = int(2 * info.duration_s * preset.audio.kbps * 125) + 64 * MIB
                await run_ffmpeg(
                    ctx,
                    argv,
                    "encoding the audio",
                    settings,
                    media_s=info.duration_s,
                    max_file_bytes=bound,
                )
                await upload(s3, bucket, f"{work}audio.m4a", audio)

        children, _ = await asyncio.gather(fan_out(), encode_audio())
    await ctx.progress(PREPARED, f"encoding {len(chunks)} chunks")
    timeout = transcode_timeout(settings, info.duration_s)
    now = time.time()
    return {
        "phase": "encoding",
        # The transcode's time limit counts working time: preparing, then the chunks while
        # none waits in the queue (_count_working_time).
        "timeout_s": timeout,
        "working_s": now - started,
        "checked_at": now,
        "info": info.model_dump(mode="json"),
        "chunks": [c.model_dump(mode="json") for c in chunks],
        "rungs": [s.model_dump(mode="json") for s in sizes],
        "audio": has_audio,
        "children": children,
    }


async def _probe(ctx: JobContext, settings: MediaSettings, source: Path) -> dict[str, Any]:
    """The probe's facts, in a child bounded in time, CPU and memory; a refusal, or a file
    that takes the child past a bound, fails the job for good with the reason."""
    limits = Limits(
        max_bytes=settings.max_upload_bytes,
        max_duration_s=settings.max_duration_s,
        max_width=settings.max_width,
        max_height=settings.max_height,
        max_pixels=settings.max_pixels,
        max_frame_rate=settings.max_frame_rate,
        max_frames=settings.max_frames,
        max_keyframes=settings.max_keyframes,
        max_gap_s=settings.max_gap_s,
    )
    timeout = settings.probe_timeout_s
    rlimits = {
        resource.RLIMIT_CPU: int(timeout) + 1,
        resource.RLIMIT_AS: settings.probe_memory_bytes,
        resource.RLIMIT_FSIZE: 64 * MIB,  # it writes nothing
    }
    try:
        found: dict[str, Any] = await ctx.run_in_child(
            probe, str(source), limits, timeout_s=timeout, rlimits=rlimits
        )
    except TimeoutError:
        # Retried (a loaded worker may be slow); after the last attempt this is the reason.
        raise RuntimeError(
            f"reading the file took longer than {timeout:.0f} s: it is malformed or built to "
            "be slow to read"
        ) from None
    except RuntimeError as exc:
        exhausted = _child_failure(str(exc))
        if exhausted is None:  # the reader crashed, or was killed from outside: try again
            raise RuntimeError(f"reading the file failed ({exc})") from None
        raise NonRetryable(
            f"reading the file went past the bounds on its {exhausted}: it is malformed or "
            "built to exhaust a reader"
        ) from None
    if "error" in found:
        raise NonRetryable(found["error"])
    return found


def _child_failure(message: str) -> str | None:
    """Which bound the probe's child ran into, if it was one of its own rlimits."""
    if "MemoryError" in message:
        return "memory"
    if f"exit code -{signal.SIGXCPU}" in message:
        return "CPU time"
    return None


def _split_chunks(listing: Path, duration_s: float) -> list[Chunk]:
    """The chunks as the segmenter actually cut them (its CSV: file, start, end)."""
    with listing.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    chunks = []
    for index, row in enumerate(rows):
        start = float(row[1])
        end = float(rows[index + 1][1]) if index + 1 < len(rows) else max(duration_s, float(row[2]))
        chunks.append(Chunk(index=index, start_s=start, end_s=end))
    if not chunks:
        raise RuntimeError("splitting produced no chunks")
    return chunks


@jobs.handler("transcode-chunk", payload=ChunkPayload, max_attempts=3, internal=True)
async def transcode_chunk(payload: ChunkPayload, ctx: JobContext) -> dict[str, Any]:
    """Encode one chunk into every rung (video only), and put the results under work/."""
    if ctx.parent_id is None:
        raise NonRetryable("a chunk runs only as a transcode's child job")
    [parent] = await ctx.jobs([ctx.parent_id])
    if parent.terminal:
        # Started between its transcode's end and that end cancelling its unfinished children:
        # cancelled like them, not a failure (no DLQ message, no failure alarm).
        ctx.log.info(
            "its transcode already ended: chunk cancelled",
            extra={"parent_state": parent.state.value},
        )
        raise JobCancelled(ctx.job_id)
    preset = preset_named(payload.preset)
    resources = resources_of(ctx)
    settings = settings_of(resources)
    s3 = await resources.aws.get("s3")
    bucket = str(resources.settings.bucket_name)
    work = work_prefix(parent.id)
    rungs = [rung_of(preset, r.name, r.width, r.height) for r in payload.rungs]
    duration = max(0.001, payload.end_s - payload.start_s)
    began = time.monotonic()

    async def on_progress(line: str) -> None:
        seconds = progress_seconds(line)
        if seconds is not None:
            await ctx.progress(min(0.99, seconds / duration), f"chunk {payload.index}")

    with scratch(settings.scratch_dir, f"chunk-{payload.index}-") as tmp:
        source = await download(s3, bucket, f"{work}src/{payload.index:05d}.nut", tmp / "in.nut")
        outputs = [tmp / f"{r.name}.mp4" for r in rungs]
        argv = encode_command(
            ffmpeg_binary(settings),
            source,
            rungs,
            preset,
            payload.rotation,
            forced_keyframes(payload.start_s, payload.end_s, preset.gop_s),
            outputs,
            settings.max_pixels,
        )
        # Each rung at twice its peak rate for the chunk's length, per file.
        bound = int(2 * duration * max(r.rendition.maxrate_kbps for r in rungs) * 125) + 64 * MIB
        try:
            code, stderr = await ctx.run_process(
                argv,
                timeout_s=settings.chunk_timeout_s,
                on_stdout_line=on_progress,
                rlimits=ffmpeg_limits(settings, settings.chunk_timeout_s, bound),
            )
        except TimeoutError:
            raise RuntimeError(
                f"chunk {payload.index} took longer than {settings.chunk_timeout_s:.0f} s"
            ) from None
        if code != 0:
            reason = stderr_tail(stderr, settings)
            raise RuntimeError(f"encoding chunk {payload.index} failed: {reason}")
        keys = {r.name: f"{work}enc/{r.name}/{payload.index:05d}.mp4" for r in rungs}
        await asyncio.gather(
            *(upload(s3, bucket, keys[r.name], out) for r, out in zip(rungs, outputs, strict=True))
        )
    return ChunkResult(
        index=payload.index, outputs=keys, encode_s=round(time.monotonic() - began, 3)
    ).model_dump(mode="json")
