"""The job store's conditional writes, against DynamoDB and S3 on moto."""

from __future__ import annotations

import asyncio

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState, LeaseLost
from longhaul.jobs.store import CHECKPOINT_INLINE_BYTES, JobStore
from tests.conftest import Platform
from tests.support.workers import Jobs


async def _running(
    aws: AwsClients, platform: Platform, lease_s: float = 30
) -> tuple[JobStore, str]:
    """A job of the test service, started under the lease `lease-a`."""
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)
    assert (await store.start(job_id, "lease-a", lease_s)).started
    return store, job_id


async def test_large_checkpoint_goes_to_s3_small_one_stays_in_the_row(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform)

    big = {"frames": ["x" * 100] * (CHECKPOINT_INLINE_BYTES // 50)}
    await store.checkpoint(job_id, "lease-a", big)
    raw = await store._get_raw(job_id)
    assert raw is not None
    assert "checkpoint" not in raw
    assert raw["checkpoint_key"].startswith(f"checkpoints/{job_id}/")
    assert await store.checkpoint_of(job_id) == big

    await store.checkpoint(job_id, "lease-a", {"next": 3})
    raw = await store._get_raw(job_id)
    assert raw is not None
    assert raw["checkpoint"] == {"next": 3}
    assert "checkpoint_key" not in raw
    assert await store.checkpoint_of(job_id) == {"next": 3}


async def test_only_the_lease_holder_writes_and_a_second_start_is_refused(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)

    first = await store.start(job_id, "lease-a", 30)
    second = await store.start(job_id, "lease-b", 30)
    assert first.started
    assert not second.started, "a live lease cannot be taken"
    assert second.job is not None
    assert second.job.state is JobState.RUNNING

    for write in (
        store.heartbeat(job_id, "lease-b", 30),
        store.checkpoint(job_id, "lease-b", {"next": 1}),
        store.progress(job_id, "lease-b", 0.5, None),
    ):
        try:
            await write
        except LeaseLost:
            continue
        raise AssertionError("a write without the lease went through")
    assert await store.finish(job_id, "lease-b", JobState.SUCCEEDED, result={}) is None
    done = await store.finish(job_id, "lease-a", JobState.SUCCEEDED, result={"ok": True})
    assert done is not None
    assert done.state is JobState.SUCCEEDED
    assert not (await store.start(job_id, "lease-c", 30)).started, "finished is final"


async def test_expired_lease_is_taken_over_once_and_counted(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform, lease_s=0.5)
    await asyncio.sleep(1)

    results = await asyncio.gather(*(store.start(job_id, f"lease-{n}", 30) for n in "bcd"))
    assert sum(r.started for r in results) == 1, "one taker wins"
    job = await store.get(job_id)
    assert job.takeovers == 1
    assert job.runs == 2


async def test_a_parked_job_stays_running_and_its_next_check_takes_it_once(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform)
    parked = await store.park(job_id, "lease-a", 5, 30, "2 of 6 chunks encoded")
    assert parked is not None
    assert parked.state is JobState.RUNNING, "a waiting job is still running to its owner"
    assert parked.message == "2 of 6 chunks encoded"
    assert await store.park(job_id, "lease-a", 5, 30, None) is None, "the lease is given up"
    try:
        await store.heartbeat(job_id, "lease-a", 30)
    except LeaseLost:
        pass
    else:
        raise AssertionError("the parking worker kept its lease")

    # The next check, twice delivered: one run takes it, without a takeover.
    results = await asyncio.gather(*(store.start(job_id, f"check-{n}", 30) for n in "ab"))
    assert sum(r.started for r in results) == 1
    job = await store.get(job_id)
    assert (job.runs, job.takeovers) == (2, 0)
    states = [e.state for e in await store.events(job_id) if e.kind == "state"]
    assert states == [JobState.QUEUED, JobState.RUNNING], "no state flaps while parked"


async def test_cancel_ends_a_parked_job_at_once_but_only_asks_a_running_one(
    aws: AwsClients, platform: Platform
) -> None:
    store, running_id = await _running(aws, platform)
    _, parked_id = await _running(aws, platform)
    assert await store.park(parked_id, "lease-a", 60, 30, "waiting") is not None

    parked, ended = await store.cancel(parked_id, "user-1")
    assert ended
    assert parked.state is JobState.CANCELLED
    assert not (await store.start(parked_id, "lease-b", 30)).started, "its check finds it ended"

    running, ended = await store.cancel(running_id, "user-1")
    assert not ended
    assert running.state is JobState.RUNNING
    assert running.cancel_requested, "the worker holding it stops it"


async def test_a_parked_job_whose_message_was_lost_is_requeued_without_a_takeover(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform)
    assert await store.park(job_id, "lease-a", 0, 0.5, None) is not None
    assert not await store.requeue_expired(job_id), "not before its check is overdue"
    await asyncio.sleep(1)
    assert await store.requeue_expired(job_id)
    job = await store.get(job_id)
    assert job.state is JobState.QUEUED
    assert job.takeovers == 0, "no worker died: its message was lost"


async def test_a_running_job_whose_lease_expired_is_requeued_as_a_takeover(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform, lease_s=0.5)
    assert not await store.requeue_expired(job_id), "its lease is live"
    await asyncio.sleep(1)
    assert await store.requeue_expired(job_id)
    job = await store.get(job_id)
    assert (job.state, job.takeovers) == (JobState.QUEUED, 1)
