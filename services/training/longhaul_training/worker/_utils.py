"""What the training jobs share: the resources, the records, reasons without paths."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from typing import Any

from longhaul.jobs import JobContext, JobResources, NonRetryable
from longhaul_training.config import TrainingSettings
from longhaul_training.storage import Records


def resources_of(ctx: JobContext) -> JobResources:
    """The worker's resources; a training worker always has them and a bucket."""
    if ctx.resources is None or not ctx.resources.settings.bucket_name:
        raise RuntimeError("the training worker runs with its resources and its bucket")
    return ctx.resources


def settings_of(resources: JobResources) -> TrainingSettings:
    """The training settings the service started with."""
    if not isinstance(resources.settings, TrainingSettings):
        raise RuntimeError("the training service runs with TrainingSettings")
    return resources.settings


async def records_of(resources: JobResources) -> Records:
    """The service's dataset, model and metric records."""
    return Records(await resources.aws.get("dynamodb"), str(resources.settings.table_name))


def now() -> str:
    """The current time as records keep it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def scratch_root(settings: TrainingSettings) -> str:
    """Where the worker's scratch folders are made."""
    return os.path.realpath(settings.scratch_dir or tempfile.gettempdir())


def without_paths(text: str, settings: TrainingSettings) -> str:
    """`text` with the worker's scratch paths reduced to their file names: a reason speaks
    of the user's file, never of where this worker keeps it."""
    root = re.escape(scratch_root(settings))
    return re.sub(root + r"/[^\s'\":,]*", lambda m: os.path.basename(m.group(0)), text)


async def registered_dataset(records: Records, owner: str, dataset_id: str) -> dict[str, Any]:
    """The owner's registered dataset, or a failure that says why not (not retried)."""
    record = await records.dataset(owner, dataset_id)
    if record is None:
        raise NonRetryable(f"no dataset {dataset_id} (not uploaded yet, or not yours)")
    if record["status"] == "rejected":
        raise NonRetryable(f"dataset {dataset_id} was rejected: {record.get('reason')}")
    if record["status"] != "registered":
        raise NonRetryable(f"dataset {dataset_id} is not registered yet")
    return record
