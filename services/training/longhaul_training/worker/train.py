"""The train job: a model from one of the caller's registered datasets, resumed exactly
from its last checkpoint on any worker, into the caller's registry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from longhaul.jobs import Job, JobContext, JobResources, JobState, NonRetryable
from longhaul_training.events import ModelCreated
from longhaul_training.models import TrainPayload, checked_spec, dataset_format, spec_fields
from longhaul_training.storage import (
    Records,
    delete_prefix,
    download,
    model_prefix,
    new_id,
    owned_by,
    scratch,
    upload,
    work_prefix,
)
from longhaul_training.training.card import ModelCard
from longhaul_training.training.datasets import DatasetInfo, DatasetRejected
from longhaul_training.worker._utils import (
    now,
    records_of,
    registered_dataset,
    resources_of,
    settings_of,
    without_paths,
)
from longhaul_training.worker.runner import MetricsRecorder, run_trainer

__all__ = ["admit_train", "check_spec", "fill_card", "train", "train_ended", "upload_model"]


def admit_train(payload: TrainPayload, owner: str) -> bool:
    """Whether the dataset is one `owner` may name (POST /jobs answers 404 otherwise)."""
    return owned_by(payload.dataset, owner)


def check_spec(spec: dict[str, Any], info: dict[str, Any]) -> None:
    """The spec checked against the dataset's profile; a user's error is not retried."""
    try:
        checked_spec(spec).check_against(DatasetInfo.model_validate(info))
    except DatasetRejected as exc:
        raise NonRetryable(exc.reason) from None
    except ValueError as exc:
        raise NonRetryable(str(exc)) from None


def fill_card(model_dir: Path, dataset_id: str) -> dict[str, Any]:
    """Fill the card's dataset id (the trainer does not know it); rewrite card.md."""
    card = json.loads((model_dir / "card.json").read_text())
    card["dataset_id"] = dataset_id
    model_card = ModelCard.model_validate(card)
    (model_dir / "card.json").write_text(model_card.model_dump_json(indent=2))
    (model_dir / "card.md").write_text(model_card.to_markdown())
    filled: dict[str, Any] = json.loads(model_card.model_dump_json())
    return filled


async def upload_model(s3: Any, bucket: str, model_dir: Path, prefix: str) -> list[str]:
    """Upload every file of `model_dir` under `prefix`; return their names."""
    files = await asyncio.to_thread(lambda: sorted(p for p in model_dir.rglob("*") if p.is_file()))
    await asyncio.gather(
        *(upload(s3, bucket, prefix + p.relative_to(model_dir).as_posix(), p) for p in files)
    )
    return [p.relative_to(model_dir).as_posix() for p in files]


async def fetch_dataset(
    s3: Any, bucket: str, record: dict[str, Any], tmp: Path
) -> tuple[Path, str]:
    """Download a registered dataset to scratch; its path and format."""
    fmt = record.get("format") or dataset_format(record["key"]) or "csv"
    path = await download(s3, bucket, record["key"], tmp / f"data.{fmt}")
    return path, fmt


async def train(payload: TrainPayload, ctx: JobContext) -> dict[str, Any]:
    """Train from the last checkpoint to the end, then register the model."""
    if not admit_train(payload, ctx.owner):
        raise NonRetryable(f"no dataset {payload.dataset} (not uploaded yet, or not yours)")
    resources = resources_of(ctx)
    settings = settings_of(resources)
    records = await records_of(resources)
    record = await registered_dataset(records, ctx.owner, payload.dataset)
    spec = spec_fields(payload)
    check_spec(spec, record["info"])
    s3 = await resources.aws.get("s3")
    bucket = str(settings.bucket_name)
    recorder = MetricsRecorder(
        records, ctx.job_id, settings.metrics_batch_points, settings.metrics_batch_s
    )
    with scratch(settings.scratch_dir, f"train-{ctx.job_id[:8]}-") as tmp:
        data, fmt = await fetch_dataset(s3, bucket, record, tmp)
        try:
            outcome = await run_trainer(
                ctx,
                settings,
                s3,
                bucket,
                spec=spec,
                data=data,
                fmt=fmt,
                tmp=tmp,
                checkpoint_key=work_prefix(ctx.job_id) + "checkpoint.tar",
                recorder=recorder,
            )
        except (NonRetryable, RuntimeError) as exc:
            text = without_paths(str(exc), settings)
            raise type(exc)(text) from None
        assert outcome.model_dir is not None
        await ctx.progress(0.97, "uploading the model")
        model_id = new_id(ctx.owner, seed=ctx.job_id)
        card = fill_card(outcome.model_dir, payload.dataset)
        prefix = model_prefix(ctx.owner, model_id)
        files = await upload_model(s3, bucket, outcome.model_dir, prefix)
    model = await register_model(
        records,
        resources,
        owner=ctx.owner,
        model_id=model_id,
        job_id=ctx.job_id,
        dataset_id=payload.dataset,
        spec=spec,
        card=card,
        files=files,
        metrics=outcome.metrics,
    )
    return {
        "model_id": model_id,
        "dataset_id": payload.dataset,
        "metrics": outcome.metrics,
        "files": [prefix + f for f in files],
        "card": prefix + "card.json",
        "created_at": model["created_at"],
    }


async def register_model(
    records: Records,
    resources: JobResources,
    *,
    owner: str,
    model_id: str,
    job_id: str,
    dataset_id: str | None,
    spec: dict[str, Any],
    card: dict[str, Any] | None,
    files: list[str],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the model's record (once: a repeat keeps the first's time) and publish
    `training.model.created` (at least once; consumers dedupe by model id)."""
    existing = await records.model(owner, model_id)
    record = {
        "id": model_id,
        "owner": owner,
        "status": "ready",
        "job_id": job_id,
        "dataset_id": dataset_id,
        "family": spec.get("family"),
        "task": spec.get("task"),
        "target": spec.get("target"),
        "metrics": metrics,
        "card": card,
        "files": files,
        "prefix": model_prefix(owner, model_id),
        "created_at": (existing or {}).get("created_at") or now(),
        **(extra or {}),
    }
    await records.put_model(record)
    numbers = {k: v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None}
    await resources.publisher.publish(
        ModelCreated(
            model_id=model_id,
            owner=owner,
            job_id=job_id,
            dataset_id=dataset_id,
            family=str(spec.get("family")),
            task=str(spec.get("task")),
            metrics=numbers,
            sweep_id=(extra or {}).get("sweep_id"),
        )
    )
    return record


def _number(value: Any) -> float | None:
    """A metric's value: a number, or the value of {"value", "ci95"}."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


async def train_ended(job: Job, resources: JobResources | None) -> None:
    """A train job's checkpoint goes once it ends, however it ended (idempotent)."""
    if resources is None or not resources.settings.bucket_name:
        return
    s3 = await resources.aws.get("s3")
    await delete_prefix(s3, resources.settings.bucket_name, work_prefix(job.id))
    if job.state is not JobState.SUCCEEDED:
        return
