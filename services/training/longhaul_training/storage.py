"""Where things live in the training bucket and table, and moving files in and out.

Bucket:
- datasets/{owner}/{dataset id}/{file name}: what callers upload (CSV or Parquet)
- imports/{owner}/{model id}/{file name}: a model file a caller uploads for checking
- models/{owner}/{model id}/...: a model's files, card.json and card.md
- predictions/{owner}/{job id}.parquet: a batch prediction's output
- work/{job id}/...: a job's checkpoint (checkpoint.tar), a sweep's trial models; expired
  by a lifecycle rule after 7 days

Table (the service's job table, beside the jobs' own rows; no index attribute is set):
- DATASET#{owner} / {dataset id}: a dataset's record (status, reason, profile)
- MODEL#{owner} / {model id}: a model's record (its card, files, metrics)
- METRICS#{job id} / {first step}-{sequence}: a batch of a job's metric points
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import uuid
from pathlib import Path
from typing import Any

from longhaul.aws.objects import download, object_size, safe_filename, scratch
from longhaul.jobs.store.items import deserialize, serialize

__all__ = [
    "Records",
    "dataset_key",
    "delete_prefix",
    "download",
    "model_prefix",
    "new_id",
    "object_size",
    "owned_by",
    "pack_dir",
    "predictions_key",
    "safe_filename",
    "scratch",
    "unpack_dir",
    "upload",
    "work_prefix",
]

ID = re.compile(r"^[a-f0-9]{32}$")
TAG_CHARS = 8


def _tag(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:TAG_CHARS]


def new_id(owner: str, seed: str | None = None) -> str:
    """A dataset or model id: 32 hex digits that begin with a tag of `owner`, so that a
    request naming another owner's id is refused before any read (POST /jobs answers 404).
    The tag is a convenience, not the fence: every read is keyed by the owner. With
    `seed`, the id is derived from it (a job's model id from the job's id: idempotent)."""
    rest = (hashlib.sha256(seed.encode()).hexdigest() if seed is not None else uuid.uuid4().hex)[
        : 32 - TAG_CHARS
    ]
    return _tag(owner) + rest


def owned_by(item_id: str, owner: str) -> bool:
    """Whether `item_id` is an id this service made for `owner`."""
    return bool(ID.match(item_id)) and item_id.startswith(_tag(owner))


def dataset_key(owner: str, dataset_id: str, name: str) -> str:
    """Where one dataset upload goes."""
    return f"datasets/{owner}/{dataset_id}/{name}"


def import_key(owner: str, model_id: str, name: str) -> str:
    """Where a model file a caller uploads goes before it is checked."""
    return f"imports/{owner}/{model_id}/{name}"


def model_prefix(owner: str, model_id: str) -> str:
    """A registered model's files."""
    return f"models/{owner}/{model_id}/"


def predictions_key(owner: str, job_id: str) -> str:
    """A batch prediction's output."""
    return f"predictions/{owner}/{job_id}.parquet"


def work_prefix(job_id: str) -> str:
    """A job's intermediates (checkpoints, a sweep's trial models)."""
    return f"work/{job_id}/"


async def upload(s3: Any, bucket: str, key: str, path: Path, content_type: str = "") -> int:
    """Upload `path`; return its size."""
    size = os.path.getsize(path)  # noqa: ASYNC240  (a stat of a local file does not block)
    extra = {"ContentType": content_type or _content_type(path)}
    await s3.upload_file(str(path), bucket, key, ExtraArgs=extra)
    return size


def _content_type(path: Path) -> str:
    return {
        ".json": "application/json",
        ".md": "text/markdown; charset=utf-8",
        ".parquet": "application/vnd.apache.parquet",
        ".onnx": "application/octet-stream",
    }.get(path.suffix.lower(), "application/octet-stream")


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


def pack_dir(folder: Path, out: Path) -> bool:
    """Write `folder` as an uncompressed tar to `out`; False if the folder was replaced or
    changed while it was read (the trainer swaps in a new checkpoint whole: the next one
    is packed instead)."""
    try:
        before = os.stat(folder).st_ino
        with tarfile.open(out, "w") as tar:
            tar.add(folder, arcname=".")
        return os.stat(folder).st_ino == before
    except (FileNotFoundError, tarfile.TarError):
        return False


def unpack_dir(archive: Path, folder: Path) -> None:
    """Unpack a tar `pack_dir` wrote into `folder` (no links, nothing outside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")


class Records:
    """Datasets', models' and metric series' records in the service's table."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    async def _put(self, pk: str, sk: str, record: dict[str, Any]) -> None:
        item = {"PK": pk, "SK": sk, "doc": json.dumps(record, separators=(",", ":"))}
        await self._db.put_item(
            TableName=self._table, Item={k: serialize(v) for k, v in item.items()}
        )

    async def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = await self._db.get_item(
            TableName=self._table,
            Key={"PK": serialize(pk), "SK": serialize(sk)},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        found: dict[str, Any] = json.loads(deserialize(response["Item"]["doc"]))
        return found

    async def _query(self, pk: str, limit: int | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": serialize(pk)},
            "ConsistentRead": True,
        }
        while True:
            response = await self._db.query(**request)
            found += [json.loads(deserialize(item["doc"])) for item in response.get("Items", [])]
            if limit is not None and len(found) >= limit:
                return found[:limit]
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- datasets and models ------------------------------------------------------------

    async def put_dataset(self, record: dict[str, Any]) -> None:
        """Write a dataset's record (owner and id inside it)."""
        await self._put(f"DATASET#{record['owner']}", record["id"], record)

    async def dataset(self, owner: str, dataset_id: str) -> dict[str, Any] | None:
        """`owner`'s dataset, or None."""
        return await self._get(f"DATASET#{owner}", dataset_id)

    async def datasets(self, owner: str) -> list[dict[str, Any]]:
        """`owner`'s datasets, newest first."""
        found = await self._query(f"DATASET#{owner}")
        return sorted(found, key=lambda r: r.get("created_at", ""), reverse=True)

    async def put_model(self, record: dict[str, Any]) -> None:
        """Write a model's record (owner and id inside it)."""
        await self._put(f"MODEL#{record['owner']}", record["id"], record)

    async def model(self, owner: str, model_id: str) -> dict[str, Any] | None:
        """`owner`'s model, or None."""
        return await self._get(f"MODEL#{owner}", model_id)

    async def models(self, owner: str) -> list[dict[str, Any]]:
        """`owner`'s models, newest first."""
        found = await self._query(f"MODEL#{owner}")
        return sorted(found, key=lambda r: r.get("created_at", ""), reverse=True)

    # -- metric series ------------------------------------------------------------------

    async def put_metrics(self, job_id: str, batch: list[dict[str, Any]], sequence: int) -> None:
        """Write one batch of a job's metric points; `sequence` (a time in ns) keeps a
        resumed run's batches beside the first run's (it repeats the steps since the last
        checkpoint, with the same values: a reader keeps one of each)."""
        first = int(batch[0].get("step", 0))
        await self._put(f"METRICS#{job_id}", f"{first:010d}-{sequence:020d}", {"points": batch})

    async def metrics(self, job_id: str) -> list[dict[str, Any]]:
        """A job's metric points in step order, one per (step, fold)."""
        points: dict[tuple[int, Any], dict[str, Any]] = {}
        for batch in await self._query(f"METRICS#{job_id}"):
            for point in batch["points"]:
                points[(int(point.get("step", 0)), point.get("fold"))] = point
        return [points[k] for k in sorted(points, key=lambda k: (k[0], str(k[1])))]
