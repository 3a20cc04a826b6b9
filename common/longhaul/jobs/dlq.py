"""Operations on a service's dead-letter queue: list its messages, and redrive them.

Redrive means retry: jobs of the messages that are `failed` are reset to `queued` first,
then the messages move back to the work queue with SQS StartMessageMoveTask where the
endpoint supports it, and by copy-then-delete otherwise (moto, older endpoints).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from longhaul.jobs.queue import parse_job_message
from longhaul.jobs.store import JobStore

__all__ = ["Redrive", "peek", "redrive"]

log = logging.getLogger(__name__)


async def peek(sqs: Any, dlq_url: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to `limit` DLQ messages, left visible (received with a zero visibility timeout)."""
    seen: dict[str, dict[str, Any]] = {}
    quiet = 0
    while len(seen) < limit and quiet < 3:
        response = await sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        fresh = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        quiet = 0 if fresh else quiet + 1
        seen.update((m["MessageId"], m) for m in fresh)
    return list(seen.values())[:limit]


@dataclass
class Redrive:
    """What a redrive did."""

    moved: int
    jobs_reset: list[str]
    method: str  # "move-task" or "copy"


async def _arn(sqs: Any, url: str) -> str:
    attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


async def redrive(sqs: Any, dlq_url: str, queue_url: str, store: JobStore | None = None) -> Redrive:
    """Reset the failed jobs of the DLQ's messages and move every message back."""
    messages = await peek(sqs, dlq_url)
    reset: list[str] = []
    if store is not None:
        for message in messages:
            job = parse_job_message(message["Body"])
            if job is not None and await store.reset_failed(job.job_id):
                reset.append(job.job_id)
    try:
        await sqs.start_message_move_task(
            SourceArn=await _arn(sqs, dlq_url), DestinationArn=await _arn(sqs, queue_url)
        )
        return Redrive(moved=len(messages), jobs_reset=reset, method="move-task")
    except ClientError as exc:
        log.info(
            "StartMessageMoveTask unavailable (%s); copying instead",
            exc.response.get("Error", {}).get("Code"),
        )
    moved = 0
    while True:
        response = await sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        if not batch:
            break
        # Copy first, delete after: a crash in between duplicates a message, never loses one.
        sent = await sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": m["Body"],
                    **(
                        {"MessageAttributes": m["MessageAttributes"]}
                        if m.get("MessageAttributes")
                        else {}
                    ),
                }
                for i, m in enumerate(batch)
            ],
        )
        copied = {entry["Id"] for entry in sent.get("Successful", [])}
        if copied:
            await sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(batch)
                    if str(i) in copied
                ],
            )
        moved += len(copied)
        if sent.get("Failed"):
            raise RuntimeError(f"{len(sent['Failed'])} message(s) not copied; they stay in the DLQ")
    return Redrive(moved=moved, jobs_reset=reset, method="copy")


def describe(message: dict[str, Any]) -> dict[str, Any]:
    """A DLQ message as the list command prints it."""
    job = parse_job_message(message["Body"])
    body: Any
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = message["Body"][:200]
    return {
        "message_id": message["MessageId"],
        "receives": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
        "job_id": job.job_id if job else None,
        "body": None if job else body,
    }
