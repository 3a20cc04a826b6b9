"""Batch prediction (`predict`) and models callers upload (`import-model`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from longhaul.jobs import JobContext, NonRetryable
from longhaul_training.models import ImportModelPayload, PredictPayload
from longhaul_training.storage import (
    download,
    model_prefix,
    object_size,
    owned_by,
    predictions_key,
    scratch,
    upload,
)
from longhaul_training.worker._utils import (
    now,
    records_of,
    registered_dataset,
    resources_of,
    settings_of,
    without_paths,
)
from longhaul_training.worker.children import check_file, predict_file
from longhaul_training.worker.train import fetch_dataset

__all__ = ["admit_predict", "import_model", "predict"]


def admit_predict(payload: PredictPayload, owner: str) -> bool:
    """Whether the model and the dataset are ids `owner` may name."""
    return owned_by(payload.model, owner) and owned_by(payload.dataset, owner)


async def predict(payload: PredictPayload, ctx: JobContext) -> dict[str, Any]:
    """Predictions of one of the caller's models on one of their datasets, as Parquet under
    predictions/, with a presigned link."""
    if not admit_predict(payload, ctx.owner):
        raise NonRetryable("no such model or dataset (not yours)")
    resources = resources_of(ctx)
    settings = settings_of(resources)
    records = await records_of(resources)
    model = await records.model(ctx.owner, payload.model)
    if model is None or model.get("status") != "ready":
        raise NonRetryable(f"no model {payload.model} ready (not yours, or not registered)")
    dataset = await registered_dataset(records, ctx.owner, payload.dataset)
    s3 = await resources.aws.get("s3")
    bucket = str(settings.bucket_name)
    key = predictions_key(ctx.owner, ctx.job_id)
    with scratch(settings.scratch_dir, f"predict-{ctx.job_id[:8]}-") as tmp:
        folder = tmp / "model"
        folder.mkdir()
        await asyncio.gather(
            *(
                download(s3, bucket, model["prefix"] + name, _inside(folder, name))
                for name in model["files"]
            )
        )
        data, fmt = await fetch_dataset(s3, bucket, dataset, tmp)
        await ctx.progress(0.2, "predicting")
        out = tmp / "predictions.parquet"
        try:
            done = await ctx.run_in_child(
                predict_file,
                str(folder),
                str(data),
                fmt,
                str(out),
                timeout_s=settings.predict_timeout_s,
            )
        except TimeoutError:
            raise NonRetryable(
                f"prediction ran past its time limit of {settings.predict_timeout_s:.0f} s"
            ) from None
        except RuntimeError as exc:
            raise RuntimeError(without_paths(str(exc), settings)) from None
        if "rejected" in done:
            raise NonRetryable(without_paths(str(done["rejected"]), settings))
        size = await upload(s3, bucket, key, out)
    url: str = await s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=settings.download_url_ttl_s
    )
    return {
        "model_id": payload.model,
        "dataset_id": payload.dataset,
        "key": key,
        "rows": done["rows"],
        "bytes": size,
        "url": url,
        "url_expires_in_s": settings.download_url_ttl_s,
    }


def _inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing a name that leaves the folder."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise NonRetryable("the model's record names a file outside its folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


async def import_model(payload: ImportModelPayload, ctx: JobContext) -> dict[str, Any]:
    """Check a model file the caller uploaded through POST /models (a pickle, a skops file
    naming a type outside the service's allowlist, a bad safetensors: refused with the
    reason), and register it."""
    if not owned_by(payload.model, ctx.owner):
        raise NonRetryable(f"no model {payload.model} (not yours)")
    resources = resources_of(ctx)
    settings = settings_of(resources)
    records = await records_of(resources)
    record = await records.model(ctx.owner, payload.model)
    if record is None:
        raise NonRetryable(f"no model upload {payload.model}")
    if record.get("status") == "ready":
        return {"model_id": payload.model, "format": record.get("format")}
    s3 = await resources.aws.get("s3")
    bucket = str(settings.bucket_name)
    size = await object_size(s3, bucket, record["upload_key"])
    if size is None:
        raise NonRetryable("the model file was not uploaded")
    if size > settings.max_model_bytes:
        reason = f"the file is {size} bytes, over the limit of {settings.max_model_bytes} bytes"
        await records.put_model({**record, "status": "rejected", "reason": reason})
        raise NonRetryable(f"the model was refused: {reason}")
    name = record["name"]
    with scratch(settings.scratch_dir, f"import-{ctx.job_id[:8]}-") as tmp:
        path = await download(s3, bucket, record["upload_key"], tmp / name)
        checked = await ctx.run_in_child(check_file, str(path), timeout_s=600)
        if "rejected" in checked:
            reason = without_paths(str(checked["rejected"]), settings)
            await records.put_model({**record, "status": "rejected", "reason": reason})
            raise NonRetryable(f"the model was refused: {reason}")
        fmt = str(checked["format"])
        stored = f"model.{fmt}"
        await upload(s3, bucket, model_prefix(ctx.owner, payload.model) + stored, path)
    await records.put_model(
        {
            **record,
            "status": "ready",
            "format": fmt,
            "files": [stored],
            "prefix": model_prefix(ctx.owner, payload.model),
            "job_id": ctx.job_id,
            "imported_at": now(),
        }
    )
    return {"model_id": payload.model, "format": fmt}
