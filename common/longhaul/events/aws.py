"""Events that AWS services put on a bus (S3 "Object Created"), read as platform events.

AWS events do not travel in the Longhaul envelope. The consumer wraps each one in an
envelope whose type is `<source>.<detail-type in snake case>` (`aws.s3.object_created`),
version 1, so that a service handles them like any other registered event.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from longhaul.events.envelope import Envelope
from longhaul.events.registry import Event, event

__all__ = ["S3Bucket", "S3Object", "S3ObjectCreated", "aws_envelope", "is_aws_event"]


class S3Bucket(BaseModel):
    """The bucket of an S3 event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str


class S3Object(BaseModel):
    """The object of an S3 event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    size: int = Field(default=0, ge=0)
    etag: str | None = None


@event("aws.s3.object_created", 1)
class S3ObjectCreated(Event):
    """S3 "Object Created", as EventBridge delivers it (the event's `detail`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    bucket: S3Bucket
    object_: S3Object = Field(alias="object")
    reason: str | None = None


def is_aws_event(document: Any) -> bool:
    """Whether `document` is an event an AWS service put on a bus."""
    return (
        isinstance(document, dict)
        and str(document.get("source", "")).startswith("aws.")
        and "detail-type" in document
        and isinstance(document.get("detail"), dict)
    )


def aws_envelope(document: dict[str, Any], correlation_id: str | None) -> Envelope:
    """The envelope an AWS event is handled in."""
    detail_type = re.sub(r"[^a-z0-9]+", "_", str(document["detail-type"]).lower()).strip("_")
    return Envelope(
        id=str(document.get("id") or "unknown"),
        type=f"{document['source']}.{detail_type}",
        version=1,
        source=str(document["source"]),
        time=document.get("time") or None,
        correlation_id=correlation_id or str(document.get("id") or "unknown"),
        data=document["detail"],
    )
