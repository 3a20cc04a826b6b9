"""The job store's conditional writes, against DynamoDB and S3 on moto."""

from __future__ import annotations

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState, LeaseLost
from longhaul.jobs.store import CHECKPOINT_INLINE_BYTES
from tests.conftest import Platform
from tests.support.workers import Jobs


async def test_large_checkpoint_goes_to_s3_small_one_stays_in_the_row(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)
    assert (await store.start(job_id, "lease-a", 30)).started

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
    import asyncio

    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)
    assert (await store.start(job_id, "lease-a", 0.5)).started
    await asyncio.sleep(1)

    results = await asyncio.gather(*(store.start(job_id, f"lease-{n}", 30) for n in "bcd"))
    assert sum(r.started for r in results) == 1, "one taker wins"
    job = await store.get(job_id)
    assert job.takeovers == 1
    assert job.runs == 2
