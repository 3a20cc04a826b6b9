"""Operations on a service's dead-letter queue: list a sample of its messages, and redrive
every one of them.

Redrive means retry. It drains the DLQ itself, up to ten messages a receive, each hidden
while it is handled: the message's job is reset to `queued` if it is `failed`, the message
is copied to the work queue (and the reset job marked enqueued), then deleted from the DLQ.
In that order a crash between two steps leaves either a queued job without a message (the
reconciler enqueues it) or two messages for one job (the conditional start drops the
second), never a failed job whose message is gone. Receives are long polls, which ask
every SQS server; a short poll asks a sample of them and can come back empty while
messages wait. The drain ends when a long poll finds nothing and the queue's counts agree
that nothing is left but what this redrive set aside, or, when the caller bounds it (the
admin route does, to answer within a load balancer's idle timeout), at its bound.

SQS's StartMessageMoveTask is not used: it moves every message in the DLQ, including any
whose job no reset reached (one that a read before it missed, or that arrived after that
read), and such a job does not run again: the worker drops its message, or sends it back
to the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from longhaul.jobs.queue import parse_job_message
from longhaul.jobs.store import JobStore
from longhaul.jobs.types import JobState

__all__ = ["Counts", "Redrive", "Sample", "counts", "describe", "peek", "redrive"]

log = logging.getLogger(__name__)

WAIT_S = 2  # any wait above 0 is a long poll; the counts, not the wait, decide the end
HIDE_S = 60  # how long a received batch stays hidden: far above the time to handle it
BATCH = 10  # SQS's most per receive, send and delete
PROGRESS_S = 5  # how often a redrive reports its progress


@dataclass(frozen=True)
class Counts:
    """A queue's approximate message counts (exact on moto, a little late on AWS)."""

    visible: int
    hidden: int  # received and not yet deleted (in flight)
    delayed: int

    @property
    def total(self) -> int:
        """Every message the queue holds: visible, hidden and delayed. The one count a look,
        a redrive and the admin routes give as "in the DLQ" or "left"."""
        return self.visible + self.hidden + self.delayed


async def counts(sqs: Any, url: str) -> Counts:
    """The queue's message counts."""
    names = {
        "visible": "ApproximateNumberOfMessages",
        "hidden": "ApproximateNumberOfMessagesNotVisible",
        "delayed": "ApproximateNumberOfMessagesDelayed",
    }
    response = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names.values()))
    attributes = response["Attributes"]
    return Counts(**{key: int(attributes.get(name, 0)) for key, name in names.items()})


@dataclass
class Sample:
    """What a look at the DLQ saw: SQS hands out a sample of its messages per receive, so
    a large DLQ may hold messages no look returns."""

    messages: list[dict[str, Any]]
    about: int  # the DLQ's approximate message count when the look ended (`Counts.total`)
    limited: bool  # stopped at the limit, with more messages in the DLQ


async def peek(sqs: Any, dlq_url: str, *, limit: int = 1000, wait_s: int = WAIT_S) -> Sample:
    """Up to `limit` distinct DLQ messages, left in place and visible (received with a zero
    visibility timeout). It ends at the limit, when a receive finds nothing, or after three
    receives in a row that bring nothing new."""
    seen: dict[str, dict[str, Any]] = {}
    quiet = 0
    while len(seen) < limit and quiet < 3:
        response = await sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=BATCH,
            VisibilityTimeout=0,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:  # a long poll that finds nothing: nothing is visible anywhere
            break
        fresh = [m for m in messages if m["MessageId"] not in seen]
        quiet = 0 if fresh else quiet + 1
        seen.update((m["MessageId"], m) for m in fresh)
    total = (await counts(sqs, dlq_url)).total
    return Sample(list(seen.values())[:limit], total, len(seen) >= limit and total > limit)


@dataclass
class Redrive:
    """What a redrive did."""

    moved: int = 0  # messages copied to the work queue and deleted from the DLQ
    jobs_reset: list[str] = field(default_factory=list)  # failed jobs now queued again
    not_failed: list[str] = field(default_factory=list)  # jobs moved, not reset: not failed
    other: int = 0  # messages that are not job messages (events), moved
    kept: list[str] = field(default_factory=list)  # failed again during this redrive
    stopped: bool = False  # ended at its bound (`most`, `for_s`), not with the DLQ drained

    def summary(self) -> str:
        """One line for a person."""
        line = (
            f"moved {self.moved} message(s) by copy; {len(self.jobs_reset)} job(s) reset; "
            f"{len(self.not_failed)} job(s) not failed (moved, not reset); "
            f"{self.other} other message(s) moved"
        )
        if self.kept:
            line += f"; {len(self.kept)} job(s) failed again during the redrive, left in the DLQ"
        return line


async def redrive(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    store: JobStore | None = None,
    *,
    wait_s: int = WAIT_S,
    hide_s: int = HIDE_S,
    progress: Callable[[Redrive, Counts], None] | None = None,
    most: int | None = None,
    for_s: float | None = None,
) -> Redrive:
    """Drain the DLQ into the work queue, resetting each `failed` job of its messages
    before its message moves. A job reset by this redrive that fails again before the
    drain ends is not reset twice: its new message stays in the DLQ, so a job that keeps
    failing cannot keep a redrive going. `progress` hears what is done and the DLQ's counts
    every `PROGRESS_S` while messages flow, and after every receive that finds none.
    Without `store`, a job message ends the redrive with an error, before it moves.

    `most` and `for_s` bound one call: it receives at most `most` messages, and starts no
    receive once `for_s` seconds have passed (so it ends within `for_s` plus one long poll
    and one batch), whichever comes first; then it returns with `stopped` set, whatever is
    left still in the DLQ, every message it received either moved or shown again. Each
    bounded call is a redrive of its own: a job one call reset that failed again since is
    reset again by the next."""
    done = Redrive()
    held: dict[str, str] = {}  # message id -> receipt handle, of what this redrive hides
    kept: set[str] = set()  # ids of the held messages left in the DLQ (failed again)
    reset: set[str] = set()
    reported = started = time.monotonic()
    received = 0  # messages received by this call, the bound `most` counts
    try:
        while True:
            if (most is not None and received >= most) or (
                for_s is not None and time.monotonic() - started >= for_s
            ):
                done.stopped = True
                return done
            response = await sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=BATCH if most is None else min(BATCH, most - received),
                VisibilityTimeout=hide_s,
                WaitTimeSeconds=wait_s,
                MessageAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            received += len(batch)
            held.update((m["MessageId"], m["ReceiptHandle"]) for m in batch)
            if batch:
                await _redrive_batch(sqs, dlq_url, queue_url, store, batch, done, held, kept, reset)
                if progress is None or time.monotonic() - reported < PROGRESS_S:
                    continue
            left = await counts(sqs, dlq_url)
            reported = time.monotonic()
            if progress is not None:
                progress(done, left)
            if not batch and left.visible == 0 and left.delayed == 0 and left.hidden <= len(kept):
                return done
            if not batch and left.hidden > len(kept):
                # Another reader's, one whose delete failed, or counts not yet caught up.
                log.info("waiting on %d hidden DLQ message(s)", left.hidden - len(kept))
    finally:
        # What is left held is either kept (failed again) or, after an error, not yet
        # handled: visible again now, for a look or the next redrive.
        await _show(sqs, dlq_url, held.values())


async def _redrive_batch(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    store: JobStore | None,
    batch: list[dict[str, Any]],
    done: Redrive,
    held: dict[str, str],
    kept: set[str],
    reset: set[str],
) -> None:
    """Reset, copy (recorded on the reset job), delete: the steps for one receive's
    messages, in that order."""
    job_ids = [job.job_id if (job := parse_job_message(m["Body"])) else None for m in batch]
    if store is None and any(job_ids):
        raise ValueError("the DLQ holds job messages: a redrive needs the job table (--table)")

    async def settle(message: dict[str, Any], job_id: str | None) -> str:
        """Reset the message's job if it is failed: "reset", "move" or "keep"."""
        if job_id is None or store is None:
            done.other += 1
        elif job_id in reset and (await store.get(job_id)).state is JobState.FAILED:
            if message["MessageId"] not in kept:  # not one seen again after `hide_s`
                kept.add(message["MessageId"])
                done.kept.append(job_id)
            return "keep"
        elif await store.reset_failed(job_id):
            reset.add(job_id)
            done.jobs_reset.append(job_id)
            return "reset"
        else:
            done.not_failed.append(job_id)
        return "move"

    outcomes = await asyncio.gather(
        *(settle(m, job_id) for m, job_id in zip(batch, job_ids, strict=True))
    )
    moving = [
        (m, job_id, outcome)
        for m, job_id, outcome in zip(batch, job_ids, outcomes, strict=True)
        if outcome != "keep"
    ]
    if not moving:
        return
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
            for i, (m, _, _) in enumerate(moving)
        ],
    )
    copied = [moving[int(entry["Id"])] for entry in sent.get("Successful", [])]
    if store is not None:
        await asyncio.gather(
            *(_mark_enqueued(store, job_id) for _, job_id, outcome in copied if outcome == "reset")
        )
    if copied:
        deleted = await sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, (m, _, _) in enumerate(copied)
            ],
        )
        for entry in deleted.get("Successful", []):
            del held[copied[int(entry["Id"])][0]["MessageId"]]
            done.moved += 1
        # A copied message whose delete failed comes back after `hide_s` and is copied
        # again: a duplicate, which the conditional start drops.
        for entry in deleted.get("Failed", []):
            del held[copied[int(entry["Id"])][0]["MessageId"]]
    if sent.get("Failed"):
        raise RuntimeError(
            f"{len(sent['Failed'])} message(s) not copied to the work queue "
            f"({sent['Failed'][0].get('Code')}); they stay in the DLQ: run the redrive again"
        )


async def _mark_enqueued(store: JobStore, job_id: str | None) -> None:
    """Record that the reset job has its message again (best effort: unrecorded, the
    reconciler sends it another, and the conditional start drops one of the two)."""
    if job_id is None:
        return
    try:
        await store.mark_enqueued(job_id)
    except Exception as exc:
        log.warning("job %s redriven but not marked enqueued: %s", job_id, exc)


async def _show(sqs: Any, url: str, receipts: Iterable[str]) -> None:
    """Make the messages of `receipts` visible again (best effort: at worst they come back
    by themselves when their visibility timeout ends)."""
    handles = list(receipts)
    for i in range(0, len(handles), BATCH):
        with contextlib.suppress(Exception):
            await sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for n, handle in enumerate(handles[i : i + BATCH])
                ],
            )


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
