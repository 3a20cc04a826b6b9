"""AWS's own events (S3 "Object Created") are routed like platform events."""

from __future__ import annotations

import json
from typing import Any

from longhaul.events import Delivery, EventRouter, S3ObjectCreated

S3_EVENT = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2026-11-25T10:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::longhaul-dev-media"],
    "detail": {
        "version": "0",
        "bucket": {"name": "longhaul-dev-media"},
        "object": {"key": "uploads/alice/x/clip.mp4", "size": 1234, "etag": "abc"},
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "reason": "PutObject",
    },
}


def message(body: dict[str, Any], message_id: str = "m1") -> dict[str, Any]:
    return {"MessageId": message_id, "ReceiptHandle": f"r-{message_id}", "Body": json.dumps(body)}


async def test_an_s3_event_reaches_its_handler_typed() -> None:
    router = EventRouter()
    seen: list[Delivery[S3ObjectCreated]] = []

    @router.on(S3ObjectCreated)
    async def on_created(delivery: Delivery[S3ObjectCreated]) -> None:
        seen.append(delivery)

    outcome = await router.dispatch([message(S3_EVENT)])
    assert outcome.delete == ["r-m1"]
    [delivery] = seen
    assert delivery.envelope.type == "aws.s3.object_created"
    assert delivery.envelope.source == "aws.s3"
    assert delivery.envelope.correlation_id == S3_EVENT["id"]
    assert delivery.event.bucket.name == "longhaul-dev-media"
    assert delivery.event.object_.key == "uploads/alice/x/clip.mp4"
    assert delivery.event.object_.size == 1234


async def test_an_aws_event_nobody_handles_is_counted_not_fatal() -> None:
    router = EventRouter()
    other = {**S3_EVENT, "detail-type": "Object Deleted"}
    outcome = await router.dispatch([message(other)])
    assert outcome.delete == ["r-m1"]
    assert router.unrouted["unknown_type"] == 1
