"""What happens when a transcode ends, however it ended: its fact on the bus, and its
intermediates (and, unless it succeeded, any partial outputs) removed from the bucket."""

from __future__ import annotations

import logging

from longhaul.jobs import Job, JobResources, JobState
from longhaul_media.events import TranscodeCompleted, TranscodeFailed
from longhaul_media.storage import delete_prefix, output_prefix, work_prefix

__all__ = ["transcode_ended"]

log = logging.getLogger(__name__)


async def transcode_ended(job: Job, resources: JobResources | None) -> None:
    """Publish `media.transcode.completed` or `failed`, and clean up (idempotent)."""
    if resources is None or not resources.settings.bucket_name:
        return
    s3 = await resources.aws.get("s3")
    bucket = resources.settings.bucket_name
    removed = await delete_prefix(s3, bucket, work_prefix(job.id))
    if job.state is not JobState.SUCCEEDED:
        removed += await delete_prefix(s3, bucket, output_prefix(job.id))
    log.info("transcode ended", extra={"state": job.state.value, "removed_objects": removed})
    source_key = str(job.payload.get("key", ""))
    preset = str(job.payload.get("preset", "default"))
    if job.state is JobState.SUCCEEDED and job.result:
        result = job.result
        await resources.publisher.publish(
            TranscodeCompleted(
                job_id=job.id,
                owner=job.owner,
                source_key=source_key,
                preset=preset,
                duration_s=float(result["source"]["duration_s"]),
                master_key=result["master"],
                mp4_key=result["mp4"],
                renditions=[r["name"] for r in result["renditions"]],
                outputs=len(result["outputs"]) + sum(r["segments"] for r in result["renditions"]),
            )
        )
    elif job.state is JobState.FAILED:
        await resources.publisher.publish(
            TranscodeFailed(
                job_id=job.id,
                owner=job.owner,
                source_key=source_key,
                preset=preset,
                reason=job.error or "unknown",
            )
        )
