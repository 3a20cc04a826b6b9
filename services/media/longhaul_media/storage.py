"""Where things live in the media bucket, and moving files in and out of it.

- uploads/{owner}/{upload id}/{file name}: what callers upload (their prefix, their files)
- work/{job id}/...: a transcode's intermediates (chunks, audio, encoded chunks); deleted
  when the job ends, and expired by a lifecycle rule if that ever fails
- outputs/{job id}/...: the finished renditions, MP4, poster and thumbnails
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from longhaul.aws.objects import download, object_size, safe_filename, scratch

__all__ = [
    "delete_prefix",
    "download",
    "object_size",
    "output_prefix",
    "safe_filename",
    "scratch",
    "upload",
    "upload_prefix",
    "work_prefix",
]

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".nut": "video/x-nut",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}


def upload_prefix(owner: str, upload_id: str) -> str:
    """Where one upload of `owner` goes."""
    return f"uploads/{owner}/{upload_id}/"


def work_prefix(job_id: str) -> str:
    """A transcode's intermediates."""
    return f"work/{job_id}/"


def output_prefix(job_id: str) -> str:
    """A transcode's outputs."""
    return f"outputs/{job_id}/"


def content_type(path: Path | str) -> str:
    """The Content-Type an output is served with."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


async def upload(s3: Any, bucket: str, key: str, path: Path) -> int:
    """Upload `path` with its content type; return its size."""
    size = os.path.getsize(path)  # noqa: ASYNC240  (a stat of a local file does not block)
    await s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type(path)})
    return size


async def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix`; return how many."""
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
