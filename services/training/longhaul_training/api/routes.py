"""Datasets (presigned upload, list, get), the model registry (list, card, presigned
download, upload of a model file to check), and a job's metric series."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from longhaul.api import CallerDep, Problem
from longhaul.api.openapi import problems
from longhaul.jobs import JobNotFound
from longhaul_training.api.deps import (
    BucketDep,
    RecordsDep,
    S3Dep,
    StoreDep,
    TrainingSettingsDep,
)
from longhaul_training.models import (
    MODEL_SUFFIXES,
    DatasetList,
    DatasetTicket,
    DatasetUpload,
    MetricSeries,
    ModelDownload,
    ModelList,
    ModelTicket,
    ModelUpload,
    dataset_format,
)
from longhaul_training.storage import (
    dataset_key,
    import_key,
    new_id,
    owned_by,
    safe_filename,
)
from longhaul_training.worker._utils import now

__all__ = ["router"]

router = APIRouter(tags=["training"])

UPLOAD_TYPE = "application/octet-stream"


async def _presigned_put(
    s3: Any, bucket: str, key: str, size: int, ttl: int
) -> tuple[str, dict[str, str]]:
    """A PUT URL that takes exactly `size` bytes (Content-Length is signed)."""
    url: str = await s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key, "ContentType": UPLOAD_TYPE, "ContentLength": size},
        ExpiresIn=ttl,
    )
    return url, {"Content-Type": UPLOAD_TYPE, "Content-Length": str(size)}


@router.post("/datasets", status_code=201, response_model=DatasetTicket)
async def create_dataset(
    body: DatasetUpload,
    caller: CallerDep,
    settings: TrainingSettingsDep,
    s3: S3Dep,
    bucket: BucketDep,
) -> DatasetTicket:
    """Where to upload a CSV or Parquet dataset: one presigned PUT of exactly the declared
    size. Once it lands it is read, validated and profiled; GET /datasets/{id} tells how
    that went. 413 over the size limit; 422 for a name that is neither .csv nor .parquet."""
    if dataset_format(body.filename) is None:
        raise Problem(422, "a dataset is a CSV (.csv) or Parquet (.parquet) file")
    if body.size > settings.max_dataset_bytes:
        raise Problem(
            413,
            f"the file is {body.size} bytes, over the limit of {settings.max_dataset_bytes} bytes",
            max_bytes=settings.max_dataset_bytes,
        )
    dataset_id = new_id(caller.sub)
    key = dataset_key(caller.sub, dataset_id, safe_filename(body.filename))
    ttl = settings.upload_url_ttl_s
    url, headers = await _presigned_put(s3, bucket, key, body.size, ttl)
    return DatasetTicket(dataset_id=dataset_id, key=key, url=url, headers=headers, expires_in_s=ttl)


@router.get("/datasets", response_model=DatasetList)
async def list_datasets(caller: CallerDep, records: RecordsDep) -> DatasetList:
    """The caller's datasets (registered and rejected), newest first."""
    return DatasetList(datasets=await records.datasets(caller.sub))


@router.get("/datasets/{dataset_id}")
async def get_dataset(dataset_id: str, caller: CallerDep, records: RecordsDep) -> dict[str, Any]:
    """One of the caller's datasets: its status (registered or rejected, with the reason)
    and profile. Another caller's is 404, as is one still uploading or being read."""
    record = (
        await records.dataset(caller.sub, dataset_id) if owned_by(dataset_id, caller.sub) else None
    )
    if record is None:
        raise Problem(404, "no such dataset")
    return record


@router.get("/models", response_model=ModelList)
async def list_models(caller: CallerDep, records: RecordsDep) -> ModelList:
    """The caller's models, newest first (their cards left out: GET /models/{id})."""
    found = await records.models(caller.sub)
    return ModelList(models=[{k: v for k, v in m.items() if k != "card"} for m in found])


async def _model(records: Any, owner: str, model_id: str) -> dict[str, Any]:
    record = await records.model(owner, model_id) if owned_by(model_id, owner) else None
    if record is None:
        raise Problem(404, "no such model")
    found: dict[str, Any] = record
    return found


@router.get("/models/{model_id}")
async def get_model(model_id: str, caller: CallerDep, records: RecordsDep) -> dict[str, Any]:
    """One of the caller's models with its card. Another caller's is 404."""
    return await _model(records, caller.sub, model_id)


@router.get("/models/{model_id}/download", response_model=ModelDownload, responses=problems(409))
async def download_model(
    model_id: str,
    caller: CallerDep,
    records: RecordsDep,
    settings: TrainingSettingsDep,
    s3: S3Dep,
    bucket: BucketDep,
) -> ModelDownload:
    """Short-lived presigned GET URLs of the model's files (model, card.json, card.md)."""
    record = await _model(records, caller.sub, model_id)
    if record.get("status") != "ready":
        raise Problem(409, f"the model is {record.get('status')}; files exist once it is ready")
    ttl = settings.download_url_ttl_s
    urls = {}
    for name in record["files"]:
        urls[name] = await s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": record["prefix"] + name}, ExpiresIn=ttl
        )
    return ModelDownload(model_id=model_id, urls=urls, expires_in_s=ttl)


@router.post("/models", status_code=201, response_model=ModelTicket)
async def create_model_upload(
    body: ModelUpload,
    caller: CallerDep,
    settings: TrainingSettingsDep,
    records: RecordsDep,
    s3: S3Dep,
    bucket: BucketDep,
) -> ModelTicket:
    """Where to upload a model file of your own (skops, safetensors or ONNX), and the job
    to submit once it is there: `import-model` checks it (a pickle, or a skops file naming
    a type outside the service's allowlist, is refused with the reason) and registers it."""
    name = safe_filename(body.filename)
    if not name.lower().endswith(MODEL_SUFFIXES):
        raise Problem(422, "a model file is .skops, .safetensors or .onnx")
    if body.size > settings.max_model_bytes:
        raise Problem(
            413,
            f"the file is {body.size} bytes, over the limit of {settings.max_model_bytes} bytes",
            max_bytes=settings.max_model_bytes,
        )
    model_id = new_id(caller.sub)
    key = import_key(caller.sub, model_id, name)
    await records.put_model(
        {
            "id": model_id,
            "owner": caller.sub,
            "status": "uploading",
            "name": name,
            "upload_key": key,
            "created_at": now(),
        }
    )
    ttl = settings.upload_url_ttl_s
    url, headers = await _presigned_put(s3, bucket, key, body.size, ttl)
    return ModelTicket(
        model_id=model_id,
        key=key,
        url=url,
        headers=headers,
        expires_in_s=ttl,
        then={"type": "import-model", "payload": {"model": model_id}},
    )


@router.get("/jobs/{job_id}/metrics", response_model=MetricSeries)
async def job_metrics(
    job_id: str, caller: CallerDep, store: StoreDep, records: RecordsDep
) -> MetricSeries:
    """A training job's metric series: one point per round, epoch or fold, with its train
    and validation metrics, in step order."""
    try:
        job = await store.get(job_id, caller.sub)
    except JobNotFound:
        raise Problem(404, "no such job") from None
    return MetricSeries(job_id=job.id, state=job.state.value, points=await records.metrics(job.id))
