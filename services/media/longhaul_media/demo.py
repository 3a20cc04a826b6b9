"""`python -m longhaul_media.demo` (`make demo`): the whole media flow against `make dev`.

Generates a clip with ffmpeg, uploads it through POST /uploads and its presigned PUT as the
local dev user, follows the transcode the upload started, and prints where the outputs are.
Developer tooling: the service never imports it.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from longhaul.local import platform
from longhaul.local.errors import unreachable_in_one_line
from longhaul.local.platform import local_clients
from longhaul.local.token import dev_token
from longhaul_media.config import MediaSettings, ffmpeg_binary
from longhaul_media.spec import SPEC

app = typer.Typer(add_completion=False, help=__doc__)


def make_clip(path: Path, size: str, seconds: float) -> Path:
    """A test pattern with a tone, H.264/AAC."""
    ffmpeg = ffmpeg_binary(MediaSettings.model_construct())
    source = f"testsrc2=size={size}:rate=25:duration={seconds}"
    tone = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    argv += ["-f", "lavfi", "-i", source, "-f", "lavfi", "-i", tone]
    argv += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    argv += ["-shortest", "-movflags", "+faststart", str(path)]
    subprocess.run(argv, check=True)
    return path


async def run(
    api: str, endpoint: str, env: str, region: str, clip: bytes, preset: str, timeout_s: float
) -> dict[str, Any]:
    """Upload `clip`, wait for its transcode, and return the outputs with their URLs."""
    aws = local_clients(endpoint, region)
    try:
        token = await dev_token(aws, env)
    finally:
        await aws.close()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        size = len(clip)
        ticket = await client.post(
            "/uploads",
            json={
                "filename": "demo.mp4",
                "content_type": "video/mp4",
                "size": size,
                "preset": preset,
            },
        )
        ticket.raise_for_status()
        upload = ticket.json()
        async with httpx.AsyncClient(timeout=60) as s3:
            put = await s3.put(upload["url"], content=clip, headers=upload["headers"])
            put.raise_for_status()
        typer.echo(f"uploaded demo.mp4 ({size} bytes) to s3://.../{upload['key']}")
        deadline = time.monotonic() + timeout_s
        job: dict[str, Any] | None = None
        last = ""
        while time.monotonic() < deadline:
            listed = (await client.get("/jobs", params={"limit": 20})).json()["jobs"]
            job = next((j for j in listed if j["payload"].get("key") == upload["key"]), None)
            if job is not None:
                line = (
                    f"job {job['id']}: {job['state']} {job['progress']:.0%} {job['message'] or ''}"
                )
                if line != last:
                    typer.echo(line)
                    last = line
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    break
            await asyncio.sleep(1)
        if job is None or job["state"] != "succeeded":
            raise SystemExit(f"the transcode did not succeed: {job}")
        outputs = await client.get(f"/jobs/{job['id']}/outputs", params={"urls": "true"})
        outputs.raise_for_status()
        return {**outputs.json(), "job_id": job["id"]}


@app.command()
def demo(
    api: Annotated[str, typer.Option(help="The media API")] = f"http://127.0.0.1:{SPEC.port}",
    endpoint: Annotated[
        str, typer.Option(envvar="AWS_ENDPOINT_URL", help="The local AWS endpoint (moto)")
    ] = platform.DEFAULT_ENDPOINT,
    env: Annotated[str, typer.Option(envvar="LONGHAUL_ENV")] = platform.DEFAULT_ENV,
    region: Annotated[str, typer.Option(envvar="AWS_REGION")] = platform.DEFAULT_REGION,
    size: Annotated[str, typer.Option(help="Frame size of the generated clip")] = "1280x720",
    seconds: Annotated[float, typer.Option(help="Length of the generated clip")] = 10,
    preset: Annotated[str, typer.Option(help="Transcoding preset")] = "fast",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the transcode")] = 600,
) -> None:
    """Transcode a generated clip on the running local platform and print its outputs."""
    with tempfile.TemporaryDirectory(prefix="longhaul-demo-") as folder:
        clip = make_clip(Path(folder) / "demo.mp4", size, seconds)
        data = clip.read_bytes()
    with unreachable_in_one_line(endpoint):
        result = asyncio.run(run(api, endpoint, env, region, data, preset, timeout))
    typer.echo(
        f"\nsource: {result['source']['width']}x{result['source']['height']}, "
        f"{result['source']['duration_s']} s, {result['chunks']} chunks"
    )
    for rendition in result["renditions"]:
        typer.echo(
            f"  {rendition['name']:>6} {rendition['width']}x{rendition['height']} "
            f"{rendition['segments']} segments, {rendition['average_bps'] // 1000} kb/s"
        )
    typer.echo("\noutputs (presigned for {} s):".format(result["urls_expire_in_s"]))
    for key in (result["master"], result["mp4"], result["poster"], result["sprite"], result["vtt"]):
        typer.echo(f"  {key}\n    {result['urls'][key]}")
    typer.echo(
        f"\nplay it (a player that sends your bearer token, e.g. hls.js):"
        f" {api}/jobs/{result['job_id']}/hls/master.m3u8"
    )


def main() -> None:
    """Entry point of `python -m longhaul_media.demo`."""
    app()


if __name__ == "__main__":
    main()
