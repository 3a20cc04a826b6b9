"""The one envelope every platform event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["EVENT_TYPE_PATTERN", "Envelope"]

# <domain>.<entity>.<fact in the past tense>, e.g. media.transcode.completed
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,4}$"


class Envelope(BaseModel):
    """An immutable fact, with what is needed to trace and correlate it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=128)
    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    version: int = Field(ge=1)
    source: str = Field(min_length=1, max_length=256)
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str = Field(min_length=1, max_length=128)
    traceparent: str | None = Field(default=None, max_length=55)
    data: dict[str, Any]
