"""Media's smoke check (`longhaul smoke`, after every deployment and on `make dev`): a two
second clip uploaded as the smoke user through the presigned PUT; S3's "Object Created"
event reaches the worker through EventBridge and the queue, and the transcode it starts
succeeds in the deployed image. Developer tooling: the service never imports it."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from longhaul.smoke import SmokeContext
from longhaul_media.config import MediaSettings, ffmpeg_binary

__all__ = ["smoke"]

PRESET = "fast"  # a few seconds of encoding; thumbnails every 2 s, so a 2 s clip has one
TERMINAL = ("succeeded", "failed", "cancelled")


def clip(seconds: float = 2, size: str = "320x180") -> bytes:
    """A test pattern with a tone, H.264/AAC MP4, made with the pinned ffmpeg."""
    ffmpeg = ffmpeg_binary(MediaSettings.model_construct())
    with tempfile.TemporaryDirectory(prefix="longhaul-smoke-") as folder:
        path = Path(folder) / "smoke.mp4"
        argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
        argv += ["-i", f"testsrc2=size={size}:rate=25:duration={seconds}", "-f", "lavfi"]
        argv += ["-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25"]
        argv += ["-c:a", "aac", "-shortest", "-movflags", "+faststart", str(path)]
        subprocess.run(argv, check=True, timeout=60)
        return path.read_bytes()


async def smoke(ctx: SmokeContext) -> None:
    """Upload, see the event start a transcode, see it succeed."""
    data = clip()
    async with ctx.step(f"POST /uploads and PUT {len(data)} bytes to S3"):
        ticket = ctx.expect(
            await ctx.api.post(
                "/uploads",
                json={
                    "filename": "smoke.mp4",
                    "content_type": "video/mp4",
                    "size": len(data),
                    "preset": PRESET,
                },
            ),
            201,
        )
        async with httpx.AsyncClient(timeout=60) as s3:
            put = await s3.put(ticket["url"], content=data, headers=ticket["headers"])
        if put.status_code != 200:
            ctx.fail(f"S3 answered the presigned PUT {put.status_code}: {put.text[:200]}")
    key = ticket["key"]

    async def job_of_upload() -> dict[str, Any] | None:
        page = ctx.expect(await ctx.api.get("/jobs", params={"limit": 20}), 200)
        return next((j for j in page["jobs"] if j["payload"].get("key") == key), None)

    async with ctx.step("the upload's event starts a transcode (S3, EventBridge, SQS, worker)"):
        job = await ctx.until(job_of_upload, "transcode job for the upload")

    async def ended() -> dict[str, Any] | None:
        found: dict[str, Any] = ctx.expect(await ctx.api.get(f"/jobs/{job['id']}"), 200)
        return found if found["state"] in TERMINAL else None

    async with ctx.step(f"transcode {job['id']} succeeds"):
        final = await ctx.until(ended, f"end of transcode {job['id']}")
        if final["state"] != "succeeded":
            ctx.fail(f"the transcode {final['state']}: {final.get('error')}")
        outputs = ctx.expect(await ctx.api.get(f"/jobs/{job['id']}/outputs"), 200)
        if not str(outputs.get("master", "")).endswith("master.m3u8"):
            ctx.fail(f"the outputs name no HLS master: {str(outputs)[:200]}")
