"""Job messages on the service's queue."""

from __future__ import annotations

import json
from typing import Any

from longhaul.jobs.types import JobMessage
from longhaul.observability import context
from longhaul.observability.tracing import inject

__all__ = [
    "CHECK_ATTRIBUTE",
    "WAKE",
    "dlq_url_of",
    "enqueue",
    "max_receives_of",
    "parse_job_message",
]

CHECK_ATTRIBUTE = "check"  # the message attribute naming the parked check a message is for
WAKE = "wake"  # the check of a message that wakes a parked parent whatever its next check


async def enqueue(
    sqs: Any, queue_url: str, job_id: str, *, delay_s: int = 0, check: str | None = None
) -> str:
    """Send the message that asks a worker to run `job_id`, with the request's context.
    `check` marks the message of a parked job's next check (its token), or a wake."""
    attributes: dict[str, Any] = {
        "correlation_id": {
            "DataType": "String",
            "StringValue": context.correlation_id() or context.new_correlation_id(),
        }
    }
    if check is not None:
        attributes[CHECK_ATTRIBUTE] = {"DataType": "String", "StringValue": check}
    if traceparent := inject().get("traceparent"):
        attributes["traceparent"] = {"DataType": "String", "StringValue": traceparent}
    response = await sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=JobMessage(job_id=job_id).model_dump_json(),
        MessageAttributes=attributes,
        DelaySeconds=delay_s,
    )
    return str(response["MessageId"])


def parse_job_message(body: str) -> JobMessage | None:
    """The job message in `body`, or None when it is something else (an event)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("kind") != "job":
        return None
    try:
        return JobMessage.model_validate(document)
    except ValueError:
        return None


async def _redrive_policy(sqs: Any, queue_url: str) -> dict[str, Any] | None:
    attributes = (
        await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    )["Attributes"]
    policy: dict[str, Any] | None = (
        json.loads(attributes["RedrivePolicy"]) if "RedrivePolicy" in attributes else None
    )
    return policy


async def dlq_url_of(sqs: Any, queue_url: str) -> str | None:
    """The URL of the dead-letter queue named in `queue_url`'s redrive policy."""
    policy = await _redrive_policy(sqs, queue_url)
    if policy is None:
        return None
    arn = policy["deadLetterTargetArn"]
    return str((await sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1]))["QueueUrl"])


async def max_receives_of(sqs: Any, queue_url: str) -> int | None:
    """The maxReceiveCount of `queue_url`'s redrive policy (None without a DLQ)."""
    policy = await _redrive_policy(sqs, queue_url)
    return None if policy is None else int(policy["maxReceiveCount"])
