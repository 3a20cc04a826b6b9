"""Where things live in the media bucket, and moving files in and out of it.

- uploads/{owner}/{upload id}/{file name}: what callers upload (their prefix, their files)
- work/{job id}/...: a transcode's intermediates (chunks, audio, encoded chunks); deleted
  when the job ends, and expired by a lifecycle rule if that ever fails
- outputs/{job id}/...: the finished renditions, MP4, poster and thumbnails
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def safe_filename(name: str) -> str:
    """A file name reduced to letters, digits, dot, dash and underscore."""
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    return cleaned[-128:]


def content_type(path: Path | str) -> str:
    """The Content-Type an output is served with."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


@contextlib.contextmanager
def scratch(root: str | None, prefix: str) -> Iterator[Path]:
    """A temporary folder, removed on every path out of the block."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def object_size(s3: Any, bucket: str, key: str) -> int | None:
    """The object's size, or None if it does not exist."""
    try:
        head = await s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return int(head["ContentLength"])


async def download(s3: Any, bucket: str, key: str, path: Path) -> Path:
    """Stream an object to `path`."""
    await s3.download_file(bucket, key, str(path))
    return path


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
