"""A job's messages on the queue: delete, hide, replace with a fresh copy, dead-letter.

Every receive of a message counts towards the queue's maxReceiveCount, and SQS moves a
message that reaches it to the DLQ whatever its job's state. So a live job never cycles
one message through releases, retries and waits: it gets a fresh copy (receive count
zero) and the old one is deleted. Only a message whose job kills worker after worker keeps
counting, and the takeover limit fails that job first.
"""

from __future__ import annotations

import logging
from typing import Any

from longhaul.jobs.queue import enqueue
from longhaul.jobs.worker import metrics
from longhaul.jobs.worker.config import MAX_DELAY_S

__all__ = ["Messages", "receive_count"]

log = logging.getLogger(__name__)


def receive_count(message: dict[str, Any]) -> int:
    """How many times SQS has handed `message` out, this receive included."""
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))


class Messages:
    """The job messages of one queue and its DLQ."""

    def __init__(self, service: str, sqs: Any, queue_url: str, dlq_url: str | None) -> None:
        self.service = service
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url

    async def delete(self, receipt: str) -> None:
        """Delete a received message."""
        await self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)

    async def hide(self, receipt: str, seconds: int) -> None:
        """Make a received message visible again in `seconds`."""
        await self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
        )

    async def send(self, job_id: str, *, delay_s: float = 0, check: str | None = None) -> str:
        """A new message for `job_id`, visible after `delay_s` (at most SQS's 15 minutes)."""
        delay = int(max(0, min(MAX_DELAY_S, delay_s)))
        return await enqueue(self.sqs, self.queue_url, job_id, delay_s=delay, check=check)

    async def replace(
        self, receipt: str, job_id: str, *, delay_s: float = 0, check: str | None = None
    ) -> str | None:
        """Send a fresh copy visible after `delay_s`, then delete the received one; the new
        message's id. If the send fails, the old message comes back after `delay_s` instead
        (None): one more receive counted, nothing lost."""
        try:
            message_id = await self.send(job_id, delay_s=delay_s, check=check)
        except Exception as exc:
            log.warning("could not send a fresh message; reusing this one: %s", exc)
            await self.hide(receipt, int(max(0, min(MAX_DELAY_S, delay_s))))
            return None
        try:
            await self.delete(receipt)
        except Exception as exc:  # a stray copy: its start finds the job taken and drops it
            log.warning("could not delete the replaced message: %s", exc)
        return message_id

    async def dead_letter(self, receipt: str, job_id: str) -> None:
        """Move the job's message to the DLQ (copy, then delete), where redrive finds it."""
        if self.dlq_url is None:
            await self.delete(receipt)
            return
        await enqueue(self.sqs, self.dlq_url, job_id)
        metrics.dead_lettered.add(1, {"service": self.service})
        await self.delete(receipt)
