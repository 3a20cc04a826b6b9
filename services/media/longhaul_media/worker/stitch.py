"""The transcode's last step: stitch each rendition's chunks with the audio, package HLS,
the MP4, the poster and the thumbnails, and upload them under outputs/{job id}/."""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path
from typing import Any

from longhaul.jobs import JobContext, JobResources
from longhaul_media.config import MIB, MediaSettings, ffmpeg_binary
from longhaul_media.media.ffmpeg import (
    concat_command,
    hls_command,
    poster_command,
    sprite_command,
)
from longhaul_media.media.packaging import (
    Variant,
    avc1_codec,
    master_playlist,
    playlist_bitrates,
    thumbnails_vtt,
)
from longhaul_media.media.plan import Rung, mp4_rung, rung_of, thumb_size
from longhaul_media.models import (
    Chunk,
    MediaInfo,
    Output,
    RenditionOutput,
    RungSize,
    TranscodeResult,
)
from longhaul_media.presets import Preset
from longhaul_media.storage import (
    content_type,
    download,
    output_prefix,
    scratch,
    upload,
    work_prefix,
)
from longhaul_media.worker._utils import ENCODED, run_ffmpeg

__all__ = ["stitch"]

UPLOAD_CONCURRENCY = 16


def stream_facts(path: Path) -> dict[str, Any]:
    """Duration, frame rate and the H.264 codec string of a stitched MP4 (our own output)."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        extradata = bytes(video.codec_context.extradata or b"")
        if len(extradata) >= 4 and extradata[0] == 1:  # avcC: version, profile, flags, level
            codec = f"avc1.{extradata[1]:02X}{extradata[2]:02X}{extradata[3]:02X}"
        else:
            codec = avc1_codec(str(video.codec_context.profile or "high"), 40)
        rate = video.average_rate or video.guessed_rate or 0
        return {
            "duration_s": round((container.duration or 0) / av.time_base, 3),
            "codec": codec,
            "frame_rate": float(rate),
        }


async def stitch(
    ctx: JobContext,
    resources: JobResources,
    settings: MediaSettings,
    preset: Preset,
    *,
    source_key: str,
    info: MediaInfo,
    chunks: list[Chunk],
    rungs: list[RungSize],
    has_audio: bool,
    preset_name: str,
) -> TranscodeResult:
    """Build and upload every output; return the job's result."""
    s3 = await resources.aws.get("s3")
    bucket = str(resources.settings.bucket_name)
    ffmpeg = ffmpeg_binary(settings)
    work = work_prefix(ctx.job_id)
    ladder = [rung_of(preset, r.name, r.width, r.height) for r in rungs]
    # Any file a step writes: the top rung at twice its peak rate for the whole video.
    file_bound = int(2 * info.duration_s * max(r.rendition.maxrate_kbps for r in ladder) * 125)
    file_bound += 256 * MIB
    with scratch(settings.scratch_dir, f"stitch-{ctx.job_id[:8]}-") as tmp:
        audio = (
            await download(s3, bucket, f"{work}audio.m4a", tmp / "audio.m4a") if has_audio else None
        )
        out = tmp / "out"
        joined: dict[str, Path] = {}
        facts: dict[str, dict[str, Any]] = {}
        packaged: list[str] = []

        async def package(rung: Rung) -> Variant:
            """Stitch one rung's chunks with the audio and cut it into HLS segments."""
            parts = tmp / "parts" / rung.name
            parts.mkdir(parents=True)
            paths = await asyncio.gather(
                *(
                    download(
                        s3,
                        bucket,
                        f"{work}enc/{rung.name}/{c.index:05d}.mp4",
                        parts / f"{c.index:05d}.mp4",
                    )
                    for c in chunks
                )
            )
            listing = parts / "list.txt"
            listing.write_text("".join(f"file '{p}'\n" for p in paths))
            joined[rung.name] = tmp / f"{rung.name}.mp4"
            await run_ffmpeg(
                ctx,
                concat_command(ffmpeg, listing, audio, joined[rung.name]),
                f"stitching {rung.name}",
                settings,
                media_s=info.duration_s,
                max_file_bytes=file_bound,
            )
            shutil.rmtree(parts)
            hls = out / "hls" / rung.name
            hls.mkdir(parents=True)
            await run_ffmpeg(
                ctx,
                hls_command(ffmpeg, joined[rung.name], preset.segment_s, hls),
                f"packaging {rung.name}",
                settings,
                media_s=info.duration_s,
                max_file_bytes=file_bound,
            )
            facts[rung.name] = await asyncio.to_thread(stream_facts, joined[rung.name])
            peak, average = playlist_bitrates(hls / "index.m3u8")
            packaged.append(rung.name)
            await ctx.progress(
                ENCODED + 0.06 * len(packaged) / len(ladder), f"packaged {rung.name}"
            )
            return Variant(
                uri=f"{rung.name}/index.m3u8",
                peak_bps=peak,
                average_bps=average,
                width=rung.width,
                height=rung.height,
                codecs=facts[rung.name]["codec"] + (",mp4a.40.2" if has_audio else ""),
                frame_rate=facts[rung.name]["frame_rate"] or info.frame_rate,
            )

        # Stream copies, mostly I/O: every rung at once.
        variants = list(await asyncio.gather(*(package(rung) for rung in ladder)))
        (out / "hls" / "master.m3u8").write_text(master_playlist(variants))

        mp4 = mp4_rung(preset, ladder)
        (out / "mp4").mkdir()
        mp4_path = out / "mp4" / f"{mp4.name}.mp4"
        shutil.copyfile(joined[mp4.name], mp4_path)
        duration = facts[mp4.name]["duration_s"] or info.duration_s
        at = min(duration * preset.poster.at_fraction, max(0.0, duration - 0.1))
        await asyncio.gather(
            run_ffmpeg(
                ctx,
                poster_command(ffmpeg, mp4_path, at, out / "poster.jpg"),
                "the poster",
                settings,
                media_s=info.duration_s,
                max_file_bytes=file_bound,
            ),
            _thumbnails(
                ctx, settings, preset, ffmpeg, joined[ladder[-1].name], ladder[-1], duration, out
            ),
        )
        await ctx.progress(0.97, "uploading")
        prefix = output_prefix(ctx.job_id)
        files = sorted(p for p in out.rglob("*") if p.is_file())
        gate = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def put(path: Path) -> int:
            async with gate:
                return await upload(s3, bucket, prefix + path.relative_to(out).as_posix(), path)

        sizes = dict(zip(files, await asyncio.gather(*(put(p) for p in files)), strict=True))

    outputs: list[Output] = []
    renditions: list[RenditionOutput] = []
    for rung, variant in zip(ladder, variants, strict=True):
        segments = [p for p in sizes if p.suffix == ".ts" and p.parent.name == rung.name]
        renditions.append(
            RenditionOutput(
                name=rung.name,
                width=rung.width,
                height=rung.height,
                playlist=f"{prefix}hls/{rung.name}/index.m3u8",
                segments=len(segments),
                segment_bytes=sum(sizes[p] for p in segments),
                duration_s=facts[rung.name]["duration_s"],
                peak_bps=variant.peak_bps,
                average_bps=variant.average_bps,
            )
        )
    for path, size in sizes.items():
        if path.suffix == ".ts":
            continue
        relative = path.relative_to(out).as_posix()
        kind = _kind(relative)
        entry = Output(key=prefix + relative, kind=kind, size=size, content_type=content_type(path))
        if kind == "mp4":
            entry = entry.model_copy(
                update={
                    "rendition": mp4.name,
                    "duration_s": duration,
                    "width": mp4.width,
                    "height": mp4.height,
                }
            )
        elif kind == "playlist":
            name = path.parent.name
            entry = entry.model_copy(
                update={"rendition": name, "duration_s": facts[name]["duration_s"]}
            )
        outputs.append(entry)
    return TranscodeResult(
        source_key=source_key,
        source=info,
        preset=preset_name,
        chunks=len(chunks),
        master=f"{prefix}hls/master.m3u8",
        mp4=f"{prefix}mp4/{mp4.name}.mp4",
        poster=f"{prefix}poster.jpg",
        sprite=f"{prefix}thumbs/sprite.jpg",
        vtt=f"{prefix}thumbs/thumbnails.vtt",
        renditions=renditions,
        outputs=outputs,
        bytes=sum(sizes.values()),
    )


def _kind(relative: str) -> Any:
    if relative.endswith("master.m3u8"):
        return "master"
    if relative.endswith(".m3u8"):
        return "playlist"
    if relative.endswith(".mp4"):
        return "mp4"
    if relative.endswith(".vtt"):
        return "vtt"
    if relative.endswith("sprite.jpg"):
        return "sprite"
    return "poster"


async def _thumbnails(
    ctx: JobContext,
    settings: MediaSettings,
    preset: Preset,
    ffmpeg: str,
    source: Path,
    rung: Rung,
    duration: float,
    out: Path,
) -> None:
    """The sprite of thumbnails every few seconds, and its WebVTT track."""
    spec = preset.thumbnails
    every = max(spec.every_s, duration / spec.max_count)
    count = max(1, math.ceil(duration / every - 1e-6))
    columns = min(spec.columns, count)
    rows = math.ceil(count / columns)
    size = thumb_size(rung.width, rung.height, spec.width)
    thumbs = out / "thumbs"
    thumbs.mkdir()
    argv = sprite_command(ffmpeg, source, every, size, (columns, rows), thumbs / "sprite.jpg")
    await run_ffmpeg(
        ctx, argv, "the thumbnails", settings, media_s=duration, max_file_bytes=256 * MIB
    )
    (thumbs / "thumbnails.vtt").write_text(
        thumbnails_vtt("sprite.jpg", count, every, duration, size, columns)
    )
