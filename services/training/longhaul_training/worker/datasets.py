"""Registering an uploaded dataset (the `register-dataset` job its upload starts), and the
work done in children: reading a dataset, checking a model file, predicting."""

from __future__ import annotations

import re
from typing import Any

from longhaul.jobs import JobContext, NonRetryable
from longhaul_training.events import DatasetRegistered, DatasetRejected
from longhaul_training.models import RegisterDatasetPayload, dataset_format
from longhaul_training.storage import download, object_size, scratch
from longhaul_training.worker._utils import (
    now,
    records_of,
    resources_of,
    settings_of,
    without_paths,
)
from longhaul_training.worker.children import inspect_file

__all__ = ["DATASET_KEY", "register_dataset"]

DATASET_KEY = re.compile(r"^datasets/(?P<owner>[^/]+)/(?P<id>[a-f0-9]{32})/(?P<name>[^/]+)$")


async def register_dataset(payload: RegisterDatasetPayload, ctx: JobContext) -> dict[str, Any]:
    """Read the upload, and record it as registered (with its profile) or rejected (with
    the reason); publish the fact. A rejection also fails the job with its reason."""
    found = DATASET_KEY.match(payload.key)
    if found is None:
        raise NonRetryable("not a dataset upload")
    owner, dataset_id, name = found["owner"], found["id"], found["name"]
    resources = resources_of(ctx)
    settings = settings_of(resources)
    records = await records_of(resources)
    existing = await records.dataset(owner, dataset_id)
    if existing is not None and existing["status"] == "registered":
        return {"dataset_id": dataset_id, "status": "registered"}
    s3 = await resources.aws.get("s3")
    bucket = str(settings.bucket_name)
    size = await object_size(s3, bucket, payload.key)
    fmt = dataset_format(name)
    reason: str | None = None
    info: dict[str, Any] | None = None
    if size is None:
        raise NonRetryable("the upload is gone")
    if fmt is None:
        reason = "the file is neither CSV (.csv) nor Parquet (.parquet)"
    elif size > settings.max_dataset_bytes:
        reason = f"the file is {size} bytes, over the limit of {settings.max_dataset_bytes} bytes"
    else:
        limits = {
            "max_bytes": settings.max_dataset_bytes,
            "max_rows": settings.max_rows,
            "max_columns": settings.max_columns,
            "max_cell_chars": settings.max_cell_chars,
        }
        with scratch(settings.scratch_dir, f"dataset-{dataset_id[:8]}-") as tmp:
            path = await download(s3, bucket, payload.key, tmp / f"data.{fmt}")
            try:
                read = await ctx.run_in_child(
                    inspect_file, str(path), fmt, limits, timeout_s=settings.inspect_timeout_s
                )
            except TimeoutError:
                raise RuntimeError(
                    f"reading the dataset took longer than {settings.inspect_timeout_s:.0f} s"
                ) from None
            except RuntimeError as exc:
                raise RuntimeError(without_paths(str(exc), settings)) from None
        reason = read.get("rejected")
        info = read.get("info")
    record = {
        "id": dataset_id,
        "owner": owner,
        "name": name,
        "key": payload.key,
        "format": fmt,
        "bytes": size,
        "status": "rejected" if reason else "registered",
        "reason": reason,
        "info": info,
        "created_at": (existing or {}).get("created_at") or now(),
    }
    await records.put_dataset(record)
    if reason is not None:
        await resources.publisher.publish(
            DatasetRejected(dataset_id=dataset_id, owner=owner, name=name, reason=reason)
        )
        raise NonRetryable(f"the dataset was rejected: {reason}")
    assert info is not None
    await resources.publisher.publish(
        DatasetRegistered(
            dataset_id=dataset_id,
            owner=owner,
            name=name,
            format=str(fmt),
            rows=int(info["rows"]),
            columns=int(info["columns"]),
            sha256=str(info["sha256"]),
            bytes=size,
        )
    )
    return {"dataset_id": dataset_id, "status": "registered", "rows": info["rows"]}
