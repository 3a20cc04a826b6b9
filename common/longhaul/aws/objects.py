"""Plain helpers for a service's objects in S3 and its scratch space, shared by the
services (media, training)."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["download", "object_size", "safe_filename", "scratch"]


def safe_filename(name: str) -> str:
    """A file name reduced to letters, digits, dot, dash and underscore."""
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    return cleaned[-128:]


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
