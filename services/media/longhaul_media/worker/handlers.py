"""Event handlers: an upload landing in the bucket starts its transcode."""

from __future__ import annotations

import logging
import re

from longhaul.events import Delivery, EventRouter, S3ObjectCreated
from longhaul.jobs import IdempotencyConflict, JobResources
from longhaul_media.models import TranscodePayload
from longhaul_media.worker._utils import settings_of

__all__ = ["events"]

log = logging.getLogger(__name__)

events = EventRouter()

_UPLOAD = re.compile(r"^uploads/(?P<owner>[^/]+)/(?P<upload>[a-f0-9]{32})/[^/]+$")
NO_TRANSCODE = "no"  # x-amz-meta-longhaul-transcode: the caller asked for upload only


@events.on(S3ObjectCreated)
async def on_upload(delivery: Delivery[S3ObjectCreated]) -> None:
    """Create the uploader's transcode job (once per upload, however often S3 tells us)."""
    created = delivery.event
    resources: JobResources = delivery.resources
    key = created.object_.key
    found = _UPLOAD.match(key)
    if found is None or created.bucket.name != resources.settings.bucket_name:
        log.info("object is not an upload; ignored", extra={"key": key})
        return
    s3 = await resources.aws.get("s3")
    try:
        head = await s3.head_object(Bucket=created.bucket.name, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            log.info("upload is gone; nothing to transcode", extra={"key": key})
            return
        raise
    metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
    if metadata.get("longhaul-transcode") == NO_TRANSCODE:
        log.info("upload asked for no transcode", extra={"key": key})
        return
    preset = metadata.get("longhaul-preset") or settings_of(resources).default_preset
    try:
        payload = TranscodePayload(key=key, preset=preset)
    except ValueError as exc:
        log.warning("upload cannot be transcoded: %s", exc, extra={"key": key})
        return
    try:
        job, new = await resources.submit(
            owner=found["owner"],
            job_type="transcode",
            payload=payload.model_dump(mode="json"),
            idempotency_key=f"upload-{found['upload']}",
        )
    except IdempotencyConflict:
        log.warning("the upload id was used for another object; ignored", extra={"key": key})
        return
    log.info("transcode job for the upload", extra={"job": job.id, "new": new, "key": key})
