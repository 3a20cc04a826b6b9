"""DLQ redrive against SQS and DynamoDB on moto: every failed job whose message is in the
DLQ is reset and queued again, however many there are, and nothing is lost on the way.

LONGHAUL_DLQ_JOBS sets how many failed jobs the large redrive moves (default 1,010: past
the 1,000 messages a look at the DLQ (`dlq list`, `peek`) stops at, where a redrive that
resets only what one look saw, as the first one did, leaves jobs failed; its cost grows with
the count, each job a few calls to moto)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobMessage, JobState, JobStore
from longhaul.jobs.dlq import redrive
from longhaul.jobs.store import timedelta_ago
from tests.conftest import Platform
from tests.support.workers import Jobs

FAILED_JOBS = int(os.environ.get("LONGHAUL_DLQ_JOBS", "1010"))


async def _failed_job(store: JobStore) -> str:
    """A job failed as the worker fails one: submitted, started, finished `failed`."""
    job, _ = await store.submit(owner="user-1", job_type="work", payload={"steps": 1})
    assert (await store.start(job.id, "worker-a", 30)).started
    assert await store.finish(
        job.id, "worker-a", JobState.FAILED, error="failed after 3 attempts: boom"
    )
    return job.id


async def _failed_jobs(aws: AwsClients, store: JobStore, table: str, count: int) -> list[str]:
    """`count` failed jobs: one failed through the store, the others copies of its items
    (the job and its history) under new ids, written 25 a call. moto deep-copies the table
    on every transaction, so submitting each would take minutes."""
    first = await _failed_job(store)
    dynamodb = await aws.get("dynamodb")
    items = (
        await dynamodb.query(
            TableName=table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": f"JOB#{first}"}},
        )
    )["Items"]
    template = json.dumps(items)  # the job and its history, each naming the job's id
    ids = [first] + [uuid.uuid4().hex for _ in range(count - 1)]
    copies = [item for job_id in ids[1:] for item in json.loads(template.replace(first, job_id))]
    for i in range(0, len(copies), 25):
        requests = [{"PutRequest": {"Item": item}} for item in copies[i : i + 25]]
        while requests:
            response = await dynamodb.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])
    return ids


async def _send(sqs: Any, url: str, bodies: list[str]) -> None:
    """`bodies` onto the queue, ten a call, as the worker's copy to the DLQ would leave them."""
    batches = [bodies[i : i + 10] for i in range(0, len(bodies), 10)]
    limit = asyncio.Semaphore(16)

    async def one(batch: list[str]) -> None:
        async with limit:
            sent = await sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)],
            )
            assert not sent.get("Failed")

    await asyncio.gather(*(one(batch) for batch in batches))


def _job_message(job_id: str) -> str:
    return JobMessage(job_id=job_id).model_dump_json()


async def _counts(sqs: Any, url: str) -> tuple[int, int, int]:
    """Visible, in flight and delayed messages (exact on moto)."""
    attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
        "Attributes"
    ]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


async def _drain(sqs: Any, url: str) -> list[str]:
    """Every message body on the queue, each received once and deleted (moto's every
    receive reads all of the queue's messages: a shrinking queue reads faster)."""
    bodies: list[str] = []
    while True:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0
        )
        batch = response.get("Messages", [])
        if not batch:
            return bodies
        bodies += [m["Body"] for m in batch]
        await sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


# moto reads all of a queue's messages several times for each message it receives or
# sends: 1,010 through the DLQ and into the work queue take minutes on a busy machine.
@pytest.mark.timeout(480)
async def test_redrive_of_more_failed_jobs_than_a_look_returns_resets_every_one_and_moves_each(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    sqs = await aws.get("sqs")
    queue_url, dlq_url = await jobs.queue_url(), await jobs.queue_url(dlq=True)
    began = time.monotonic()
    assert jobs.names.table is not None
    failed = await _failed_jobs(aws, store, jobs.names.table, FAILED_JOBS)
    await _send(sqs, dlq_url, [_job_message(job_id) for job_id in failed])
    assert await _counts(sqs, dlq_url) == (FAILED_JOBS, 0, 0)
    prepared = time.monotonic()

    done = await redrive(sqs, dlq_url, queue_url, store)
    redriven = time.monotonic()

    later = timedelta_ago(-60)
    still_failed = await store.stale(JobState.FAILED, later, limit=None)
    assert len(still_failed) == 0, f"{len(still_failed)} failed job(s) were not reset"
    entries = await store.stale(JobState.QUEUED, later, limit=None)
    assert {entry["id"] for entry in entries} == set(failed)
    assert all(entry.get("enqueued_at") for entry in entries), "the reconciler leaves them be"
    assert sorted(done.jobs_reset) == sorted(failed)
    assert done.moved == FAILED_JOBS
    assert done.not_failed == []
    assert await _counts(sqs, dlq_url) == (0, 0, 0), "the DLQ is empty"
    assert await _counts(sqs, queue_url) == (FAILED_JOBS, 0, 0)
    print(
        f"\n{FAILED_JOBS} failed jobs prepared in {prepared - began:.1f}s,"
        f" redriven in {redriven - prepared:.1f}s"
    )


async def test_redrive_moves_every_kind_of_message_and_resets_only_failed_jobs(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    sqs = await aws.get("sqs")
    queue_url, dlq_url = await jobs.queue_url(), await jobs.queue_url(dlq=True)
    failed = await _failed_job(store)
    queued = await jobs.submit({"steps": 1}, enqueue_it=False)  # reset already, say
    event = json.dumps({"type": "echo.pinged", "version": 1, "data": {}})
    await _send(sqs, dlq_url, [_job_message(failed), _job_message(queued), event])

    done = await redrive(sqs, dlq_url, queue_url, store)

    assert (done.moved, done.jobs_reset, done.not_failed, done.other) == (
        3,
        [failed],
        [queued],
        1,
    )
    assert (await store.get(failed)).state is JobState.QUEUED
    assert sorted(await _drain(sqs, queue_url)) == sorted(
        [_job_message(failed), _job_message(queued), event]
    )
    assert await _counts(sqs, dlq_url) == (0, 0, 0)


class FailsAgain(JobStore):
    """A job store whose redriven jobs fail again at once and land back in the DLQ, as a
    job whose dependency is still broken would (faster than a worker's attempts)."""

    def __init__(self, dynamodb: Any, table: str, sqs: Any, dlq_url: str) -> None:
        super().__init__(dynamodb, table)
        self.sqs, self.dlq_url = sqs, dlq_url

    async def reset_failed(self, job_id: str) -> bool:
        if not await super().reset_failed(job_id):
            return False
        assert (await self.start(job_id, "worker-b", 30)).started
        assert await self.finish(job_id, "worker-b", JobState.FAILED, error="again")
        await self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=_job_message(job_id))
        return True


async def test_job_that_fails_again_during_a_redrive_is_not_retried_twice_by_it(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    sqs = await aws.get("sqs")
    queue_url, dlq_url = await jobs.queue_url(), await jobs.queue_url(dlq=True)
    job_id = await _failed_job(store)
    await _send(sqs, dlq_url, [_job_message(job_id)])

    assert jobs.names.table is not None
    again = FailsAgain(await aws.get("dynamodb"), jobs.names.table, sqs, dlq_url)

    done = await redrive(sqs, dlq_url, queue_url, again)

    assert (done.moved, done.jobs_reset, done.kept) == (1, [job_id], [job_id])
    assert (await store.get(job_id)).state is JobState.FAILED
    assert await _counts(sqs, dlq_url) == (1, 0, 0), "its new message waits in the DLQ, visible"
    assert await _drain(sqs, queue_url) == [_job_message(job_id)]
