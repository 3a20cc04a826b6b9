"""What a service limits per owner, and the error a request over a limit raises."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["QuotaExceeded", "Quotas"]

GIB = 1024**3


class Quotas(BaseModel):
    """Per-owner limits. The kit's defaults suit a small service; a service sets its own
    through its settings (`KitSettings.quotas`)."""

    model_config = ConfigDict(frozen=True)

    concurrent_jobs: int = Field(
        default=100, ge=1, description="top-level jobs queued or running at once"
    )
    uploads_per_hour: int = Field(default=100, ge=1, description="uploads started per hour")
    stored_bytes: int = Field(
        default=100 * GIB, ge=1, description="declared bytes of the uploads still kept"
    )
    streams: int = Field(default=10, ge=1, description="event streams open at once")
    stream_lifetime_s: int = Field(
        default=900, ge=1, description="after this a stream ends; the client resumes it"
    )


class QuotaExceeded(Exception):
    """A request would take the owner over `quota`; the API answers 429 with Retry-After."""

    def __init__(self, quota: str, limit: int, retry_after_s: float, detail: str) -> None:
        super().__init__(detail)
        self.quota = quota
        self.limit = limit
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        self.detail = detail
