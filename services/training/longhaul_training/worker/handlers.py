"""Event handlers: a dataset landing in the bucket starts its registration."""

from __future__ import annotations

import logging

from longhaul.events import Delivery, EventRouter, S3ObjectCreated
from longhaul.jobs import IdempotencyConflict, JobResources
from longhaul_training.storage import owned_by
from longhaul_training.worker.datasets import DATASET_KEY

__all__ = ["events"]

log = logging.getLogger(__name__)

events = EventRouter()


@events.on(S3ObjectCreated)
async def on_dataset(delivery: Delivery[S3ObjectCreated]) -> None:
    """Create the dataset's `register-dataset` job (once per dataset id, however often S3
    tells us)."""
    created = delivery.event
    resources: JobResources = delivery.resources
    key = created.object_.key
    found = DATASET_KEY.match(key)
    if found is None or created.bucket.name != resources.settings.bucket_name:
        log.info("object is not a dataset upload; ignored", extra={"key": key})
        return
    if not owned_by(found["id"], found["owner"]):
        log.warning("dataset id not issued to its owner; ignored", extra={"key": key})
        return
    try:
        job, new = await resources.submit(
            owner=found["owner"],
            job_type="register-dataset",
            payload={"key": key},
            idempotency_key=f"dataset-{found['id']}",
        )
    except IdempotencyConflict:
        log.warning("the dataset id was used for another object; ignored", extra={"key": key})
        return
    log.info("registration job for the dataset", extra={"job": job.id, "new": new, "key": key})
