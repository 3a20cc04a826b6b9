"""The reconciler against DynamoDB and SQS on moto: one worker of a service holds its lease
at a time, and it re-sends only jobs whose message was never sent or whose lease expired."""

from __future__ import annotations

import asyncio
from typing import Any

from longhaul.aws.clients import AwsClients
from longhaul.jobs.worker.config import WorkerConfig
from longhaul.jobs.worker.messages import Messages
from longhaul.jobs.worker.reconciler import RECONCILER_LEASE, Reconciler
from tests.conftest import Platform
from tests.support.workers import Jobs


async def _reconciler(jobs: Jobs, sqs: Any) -> Reconciler:
    """A reconciler of the test service that acts on jobs 0.2 s old."""
    return Reconciler(
        service="echo",
        worker_id="w",
        store=await jobs.store(),
        messages=Messages("echo", sqs, await jobs.queue_url(), None),
        config=WorkerConfig(visibility_s=30, reconcile_after_s=0.2),
    )


async def test_one_worker_holds_the_reconciler_lease_until_it_stops_renewing(
    aws: AwsClients, platform: Platform
) -> None:
    store = await Jobs(aws, platform.env).store()
    claims = await asyncio.gather(*(store.claim(RECONCILER_LEASE, f"w{n}", 1.0) for n in range(8)))
    assert sum(claims) == 1, "of eight workers asking at once, one reconciles"
    holder = f"w{claims.index(True)}"
    other = "w0" if holder != "w0" else "w1"
    assert await store.claim(RECONCILER_LEASE, holder, 1.0), "the holder renews"
    assert not await store.claim(RECONCILER_LEASE, other, 1.0)
    await asyncio.sleep(1.2)  # the holder stopped renewing (it died)
    assert await store.claim(RECONCILER_LEASE, other, 1.0), "another worker takes over"
    assert not await store.claim(RECONCILER_LEASE, holder, 1.0)


async def test_reconciler_sends_a_never_enqueued_job_and_leaves_one_waiting_in_a_backlog(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    lost = await jobs.submit({"steps": 1}, enqueue_it=False)  # the API died before the send
    waiting = await jobs.submit({"steps": 1})  # sent; it only waits behind a backlog
    sqs = await aws.get("sqs")
    reconciler = await _reconciler(jobs, sqs)
    await asyncio.sleep(2.5)  # past ten times reconcile_after_s: a backlog's wait
    assert await reconciler.reconcile() == [lost]
    assert await reconciler.reconcile() == [], "a job sent once is not sent again"
    attributes = await sqs.get_queue_attributes(
        QueueUrl=await jobs.queue_url(), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "2", (
        "one message each: the waiting job's own and the lost job's new one"
    )
    assert waiting != lost


async def test_reconciler_requeues_an_expired_lease_and_the_job_can_be_sent_again(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1})
    assert (await store.start(job_id, "dead-worker", 0.1)).started
    sqs = await aws.get("sqs")
    reconciler = await _reconciler(jobs, sqs)
    await asyncio.sleep(0.5)
    assert await reconciler.reconcile() == [job_id]
    job = await store.get(job_id)
    assert job.state.value == "queued"
    assert job.takeovers == 1
