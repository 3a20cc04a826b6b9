"""After-end effects happen at least once, and a long job keeps exactly one message, proven
with real worker processes against the emulator with injected AWS faults: a delete that
fails, a worker killed between the job's end and its message's delete, EventBridge refusing
events for five seconds, and SQS's cap on a message's visibility (scaled down to 14 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.queue import enqueue
from tests.conftest import Platform
from tests.support.moto import MotoServer
from tests.support.workers import Jobs, Worker, effects_of, kinds, until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def jobs(aws: AwsClients, platform: Platform) -> Jobs:
    return Jobs(aws, platform.env)


@pytest.fixture
def faults(moto: MotoServer) -> Iterator[MotoServer]:
    """The emulator, its fault rules cleared after the test whatever happened."""
    yield moto
    moto.faults.clear()
    moto.faults.set_visibility_cap(None)


def _ended_once_at_least(effects: Path, job_id: str) -> Callable[[], bool]:
    def check() -> bool:
        records = effects_of(effects, job_id)
        return bool(kinds(records, "fact")) and bool(kinds(records, "on_end"))

    return check


async def _queue_total(aws: AwsClients, jobs: Jobs) -> int:
    """Messages on the job queue: visible, in flight and delayed."""
    sqs = await aws.get("sqs")
    attributes = (
        await sqs.get_queue_attributes(
            QueueUrl=await jobs.queue_url(),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


async def test_end_hook_and_fact_happen_when_the_message_delete_fails(
    aws: AwsClients,
    jobs: Jobs,
    platform: Platform,
    tmp_path: Path,
    workers: list[Worker],
    faults: MotoServer,
) -> None:
    rule = faults.faults.inject(
        "sqs", "error", operation="DeleteMessage", match=platform.env, status=500, times=12
    )
    workers.append(Worker(platform, tmp_path))
    job_id = await jobs.submit({"steps": 1, "step_s": 0})
    await jobs.wait(job_id, JobState.SUCCEEDED)
    await until(lambda: faults.faults.fired(rule) >= 1, what="the delete failed")
    await until(_ended_once_at_least(tmp_path, job_id), what="on_end and the fact", timeout=60)
    faults.faults.clear()
    total = 0
    for _ in range(60):  # the message that could not be deleted comes back and is dropped
        total = await _queue_total(aws, jobs)
        if total == 0:
            break
        await asyncio.sleep(0.5)
    assert total == 0, "the finished job's message is gone in the end"


async def test_end_hook_and_fact_happen_when_the_worker_is_killed_between_the_end_and_the_delete(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker], faults: MotoServer
) -> None:
    # The terminal fact's PutEvents hangs: the worker has written the job's end and sits in
    # its after-end effects, its message not yet deleted, when it is killed.
    rule = faults.faults.inject("events", "hang", match="echo.job.succeeded")
    first = Worker(platform, tmp_path, "first")
    workers.append(first)
    job_id = await jobs.submit({"steps": 1, "step_s": 0})
    await jobs.wait(job_id, JobState.SUCCEEDED)
    await until(lambda: faults.faults.holding() >= 1, what="the fact's publish hangs")
    first.kill9()
    faults.faults.clear()
    assert faults.faults.rules() == []
    assert rule >= 1
    assert kinds(effects_of(tmp_path, job_id), "fact") == [], "the fact did not go out"
    workers.append(Worker(platform, tmp_path, "second"))
    await until(_ended_once_at_least(tmp_path, job_id), what="on_end and the fact", timeout=60)
    assert len(kinds(effects_of(tmp_path, job_id), "done")) == 1, "the job itself ran once"


async def test_the_fact_is_published_through_five_seconds_of_eventbridge_refusals(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker], faults: MotoServer
) -> None:
    rule = faults.faults.inject("events", "throttle", match="echo.job.succeeded")
    workers.append(Worker(platform, tmp_path))
    job_id = await jobs.submit({"steps": 1, "step_s": 0})
    await jobs.wait(job_id, JobState.SUCCEEDED)
    await until(lambda: faults.faults.fired(rule) >= 1, what="EventBridge refuses the fact")
    await asyncio.sleep(5)
    refused = faults.faults.fired(rule)
    faults.faults.clear()
    await until(_ended_once_at_least(tmp_path, job_id), what="on_end and the fact", timeout=60)
    assert refused >= 3, "the publish was refused, retried, and refused again"


async def test_a_job_that_outlives_the_visibility_cap_keeps_one_message_and_one_run(
    aws: AwsClients,
    jobs: Jobs,
    platform: Platform,
    tmp_path: Path,
    workers: list[Worker],
    faults: MotoServer,
) -> None:
    """Long is fine, past SQS's 12-hour cap too (scaled to 14 s, the least above two of the
    echo queue's 6 s leases): a 36 s job never loses its message, never gains a second one,
    never runs twice and never reaches the DLQ. Its own message is handed on at its first
    beat (2 s + 2 x 6 s reaches the cap); the fresh one, visible 6 s later, would reach the
    cap at about 22 s if a receipt did not start its own."""
    faults.faults.set_visibility_cap(14)
    workers.append(Worker(platform, tmp_path, LONGHAUL_VISIBILITY_CAP_S="14"))
    job_id = await jobs.submit({"steps": 18, "step_s": 2.0})
    await until(lambda: len(kinds(effects_of(tmp_path, job_id), "step")) >= 2, what="running")
    samples: list[int] = []
    tick = time.monotonic()
    while len(kinds(effects_of(tmp_path, job_id), "step")) < 17:  # to just before its end
        samples.append(await _queue_total(aws, jobs))
        tick += 0.25  # every 0.25 s however long a sample takes
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)
    assert job.runs == 1
    assert job.takeovers == 0
    assert await jobs.dead_letters() == []
    assert 0 not in samples, "the running job was left without a message"
    assert samples.count(2) <= 2, f"a second message lingered: {samples}"
    assert max(samples) <= 2
    assert len(samples) > 100, "sampled across several caps"
    renewals = workers[0].log().count("replaced by a fresh one")
    print(f"\nvisibility cap 14 s, 36 s job: {renewals} fresh messages, queue samples {samples}")
    # Once: the fresh message is received (and kept waiting on the lease) again and again,
    # and each receipt starts its own 20 s.
    assert renewals == 1, "the run's own message reached the cap and was handed on"


async def test_a_stray_copy_delivered_during_the_effects_does_not_run_them_again(
    aws: AwsClients,
    jobs: Jobs,
    platform: Platform,
    tmp_path: Path,
    workers: list[Worker],
    faults: MotoServer,
) -> None:
    """A copy of a job's message (a child's wake, a park's twin) delivered while the worker
    that ended the job is still in its after-end effects waits for them instead of running
    them a second time beside it: one fact, one end hook."""
    # The fact's publish takes 4 s: the finishing worker sits in its effects meanwhile.
    rule = faults.faults.inject("events", "latency", match="echo.job.succeeded", seconds=4)
    workers += [Worker(platform, tmp_path, name) for name in ("first", "second")]
    job_id = await jobs.submit({"steps": 1, "step_s": 0})
    await jobs.wait(job_id, JobState.SUCCEEDED)
    await until(lambda: faults.faults.fired(rule) >= 1, what="the fact's publish is slowed")
    faults.faults.clear()
    sqs = await aws.get("sqs")
    await enqueue(sqs, await jobs.queue_url(), job_id)  # the stray copy
    await until(_ended_once_at_least(tmp_path, job_id), what="on_end and the fact", timeout=30)
    # The copy waits (hidden 15 s), comes back, finds the effects done and is dropped: a
    # copy that ran them again would have recorded them before its delete.
    total = 1
    for _ in range(120):
        total = await _queue_total(aws, jobs)
        if total == 0:
            break
        await asyncio.sleep(0.25)
    records = effects_of(tmp_path, job_id)
    assert len(kinds(records, "fact")) == 1, "the fact was published twice"
    assert len(kinds(records, "on_end")) == 1, "the end hook ran twice"
    assert total == 0, "the copy was left on the queue"
