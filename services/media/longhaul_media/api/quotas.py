"""What one upload takes from its owner's quotas: one of the hour's uploads, its declared
bytes for as long as the bucket keeps uploads, and, when it starts a transcode, a job slot
that the transcode's job takes over once the upload lands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from longhaul.quotas import BytesReserved, QuotaStore
from longhaul_media.config import MediaSettings
from longhaul_media.models import UploadRequest
from longhaul_media.spec import SPEC

__all__ = ["UPLOAD_KEEP_DAYS", "upload_quotas"]

assert SPEC.bucket is not None
# Reserved bytes count while the upload may still be in the bucket: its lifecycle rule
# expires uploads after these days, and S3 may take up to a day more to remove them.
UPLOAD_KEEP_DAYS = SPEC.bucket.expire_prefixes["uploads/"] + 1
# How long after its URL expires an upload's transcode may still be submitted: the S3
# event's way through EventBridge, the queue and a worker's backlog.
EVENT_LAG_S = 900


@asynccontextmanager
async def upload_quotas(
    quotas: QuotaStore, owner: str, upload_id: str, body: UploadRequest, settings: MediaSettings
) -> AsyncIterator[None]:
    """Take the upload's share of `owner`'s quotas (`QuotaExceeded` over any), and give it
    back if the block fails."""
    counted = await quotas.count_upload(owner)
    reserved: BytesReserved | None = None
    slot: str | None = None
    try:
        reserved = await quotas.reserve_bytes(owner, body.size, UPLOAD_KEEP_DAYS)
        if body.transcode:
            # The key the upload's event handler submits its transcode with
            # (worker/handlers.py), so the slot finds its job.
            slot = await quotas.take_job_slot(
                owner,
                key=f"upload-{upload_id}",
                pending_s=settings.upload_url_ttl_s + EVENT_LAG_S,
            )
        yield
    except BaseException:
        await quotas.uncount_upload(owner, counted)
        if reserved is not None:
            await quotas.release_bytes(owner, reserved)
        if slot is not None:
            await quotas.release_job_slot(owner, slot)
        raise
