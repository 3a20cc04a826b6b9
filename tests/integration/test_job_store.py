"""The job store's conditional writes, against DynamoDB and S3 on moto."""

from __future__ import annotations

import asyncio
from typing import Any

from longhaul.aws.clients import AwsClients
from longhaul.jobs import Job, JobState, LeaseLost
from longhaul.jobs.queue import WAKE
from longhaul.jobs.store import CHECKPOINT_INLINE_BYTES, JobStore, child_owner
from tests.conftest import Platform
from tests.support.workers import Jobs


async def _running(
    aws: AwsClients, platform: Platform, lease_s: float = 30, message_id: str | None = None
) -> tuple[JobStore, str]:
    """A job of the test service, started under the lease `lease-a` (from `message_id`)."""
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)
    assert (await store.start(job_id, "lease-a", lease_s, message_id)).started
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


async def _parked(store: JobStore, job_id: str, **park: Any) -> Job:
    """Park the job `_running` started, as a parent waiting on its children does."""
    options: dict[str, Any] = {"delay_s": 5, "grace_s": 30, "message": "waiting", **park}
    parked = await store.park(job_id, "lease-a", token="check-1", **options)
    assert parked is not None
    return parked


async def test_a_parked_job_stays_running_and_only_its_own_message_or_a_wake_runs_it(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform)
    parked = await _parked(store, job_id, message="2 of 6 chunks encoded")
    assert parked.state is JobState.RUNNING, "a waiting job is still running to its owner"
    assert parked.message == "2 of 6 chunks encoded"
    again = await store.park(job_id, "lease-a", token="x", delay_s=5, grace_s=30, message=None)
    assert again is None, "the parking worker gave its lease up"
    try:
        await store.heartbeat(job_id, "lease-a", 30)
    except LeaseLost:
        pass
    else:
        raise AssertionError("the parking worker kept its lease")

    for stray in (None, "check-0"):  # a copy of an older message, an earlier park's message
        refused = await store.start(job_id, "lease-x", 30, check=stray)
        assert not refused.started, stray
        assert refused.parked, stray

    # Its next check, delivered twice over: one run takes it, without a takeover.
    results = await asyncio.gather(
        *(store.start(job_id, f"c-{n}", 30, check="check-1") for n in "ab")
    )
    assert sum(r.started for r in results) == 1
    job = await store.get(job_id)
    assert (job.runs, job.takeovers) == (2, 0)
    states = [e.state for e in await store.events(job_id) if e.kind == "state"]
    assert states == [JobState.QUEUED, JobState.RUNNING], "no state flaps while parked"

    # Parked again, a wake runs it whatever the token.
    [lease] = [f"c-{n}" for n, r in zip("ab", results, strict=True) if r.started]
    assert await store.park(job_id, lease, token="check-2", delay_s=600, grace_s=30, message=None)
    assert (await store.start(job_id, "lease-w", 30, check=WAKE)).started


async def test_cancel_ends_a_parked_job_at_once_and_stops_a_running_one_parking(
    aws: AwsClients, platform: Platform
) -> None:
    store, running_id = await _running(aws, platform)
    _, parked_id = await _running(aws, platform)
    await _parked(store, parked_id, delay_s=60)

    parked, ended = await store.cancel(parked_id, "user-1")
    assert ended
    assert parked.state is JobState.CANCELLED
    check = await store.start(parked_id, "lease-b", 30, check="check-1")
    assert not check.started, "its next check finds it ended"

    running, ended = await store.cancel(running_id, "user-1")
    assert not ended
    assert running.state is JobState.RUNNING
    assert running.cancel_requested, "the worker holding it stops it"
    refused = await store.park(
        running_id, "lease-a", token="t", delay_s=5, grace_s=30, message=None
    )
    assert refused is None, "a job asked to stop does not park (its worker ends it cancelled)"


async def test_a_parked_job_whose_message_was_lost_is_requeued_without_a_takeover(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform)
    await _parked(store, job_id, delay_s=0, grace_s=0.5)
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


async def test_children_ended_counts_the_asking_child_and_rereads_the_others(
    aws: AwsClients, platform: Platform
) -> None:
    store, parent_id = await _running(aws, platform)
    first, _ = await store.submit(owner=child_owner(parent_id), job_type="work", payload={})
    second, _ = await store.submit(owner=child_owner(parent_id), job_type="work", payload={})
    for child in (first, second):
        assert (await store.start(child.id, f"lease-{child.id}", 30)).started
    assert not await store.children_ended(parent_id)
    # The first child has ended; the second asks as it ends, before its own end is read.
    await store.finish(first.id, f"lease-{first.id}", JobState.SUCCEEDED, result={})
    assert await store.children_ended(parent_id, ended=second.id)
    assert not await store.children_ended(parent_id, ended=first.id), "the second still runs"


async def test_a_park_whose_message_was_never_sent_is_checked_by_the_message_it_ran_from(
    aws: AwsClients, platform: Platform
) -> None:
    store, job_id = await _running(aws, platform, message_id="m-1")
    await _parked(store, job_id)  # and the worker died before sending the check's message
    stray = await store.start(job_id, "lease-x", 30, message_id="m-0")
    assert not stray.started, "a copy of another message does not run the check"
    back = await store.start(job_id, "lease-b", 30, message_id="m-1")
    assert back.started, "the parking run's own message, back after its visibility timeout"
    assert back.job is not None
    assert (back.job.runs, back.job.takeovers) == (2, 0)
