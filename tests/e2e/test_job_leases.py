"""The runtime's ways to lose or double a job that moto alone hides, proven with real worker
processes: a worker frozen past its lease, releases and retries under a low
maxReceiveCount, an oversized result, a result DynamoDB cannot store, and a drain under a
steady backlog."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.queue import enqueue
from tests.conftest import Platform
from tests.e2e.test_jobs_durability import FakeEcsAgent
from tests.support.workers import (
    RUN_KINDS,
    Jobs,
    Worker,
    effects_of,
    kinds,
    never_concurrent,
    until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def jobs(aws: AwsClients, platform: Platform) -> Jobs:
    return Jobs(aws, platform.env)


async def test_worker_sigstopped_past_its_lease_never_runs_its_handler_beside_the_new_owner(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    """Never twice at once: a frozen worker (SIGSTOP, a blocked event loop) resumed after
    another took over must not run one more line of the handler."""
    frozen = Worker(platform, tmp_path, "frozen")
    workers.append(frozen)
    job_id = await jobs.submit({"steps": 8, "step_s": 2.0})
    await until(lambda: len(kinds(effects_of(tmp_path, job_id), "step")) >= 2, what="2 steps")
    await asyncio.sleep(0.5)  # past the step's checkpoint: frozen inside the next step's work
    frozen.pause()
    paused_at = time.monotonic()
    successor = Worker(platform, tmp_path, "successor")
    workers.append(successor)

    def successor_started() -> bool:
        return any(r["pid"] == successor.pid for r in kinds(effects_of(tmp_path, job_id), "start"))

    await until(successor_started, timeout=60, what="the successor takes over")
    await asyncio.sleep(1.0)  # the successor is mid-step: the overlap, if any, shows now
    frozen.resume()
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)

    records = effects_of(tmp_path, job_id)
    # Only the run log counts: the frozen worker also consumes the bus, and may well record
    # the job's fact when it wakes.
    run_log = [r for r in records if r["kind"] in RUN_KINDS]
    after_pause = [r for r in run_log if r["pid"] == frozen.pid and r["m"] > paused_at]
    assert after_pause == [], "the frozen worker ran its handler again after it was continued"
    assert never_concurrent(records), "the run log shows two runs overlapping"
    assert job.takeovers == 1
    assert frozen.process.poll() is None, "the continued worker lives on, it only let go"
    await until(lambda: "lease" in frozen.log(), timeout=10, what="the frozen worker logs why")


async def test_job_released_five_times_and_retried_twice_under_max_receive_count_3_succeeds(
    aws: AwsClients, jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    """Failure is bounded and visible, not triggered by a live job's own releases: every
    release and retry sends a fresh message, so none reaches maxReceiveCount."""
    sqs = await aws.get("sqs")
    dlq_arn = (
        await sqs.get_queue_attributes(
            QueueUrl=await jobs.queue_url(dlq=True), AttributeNames=["QueueArn"]
        )
    )["Attributes"]["QueueArn"]
    await sqs.set_queue_attributes(
        QueueUrl=await jobs.queue_url(),
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
        },
    )
    job_id = await jobs.submit({"steps": 24, "step_s": 0.5, "fail_first": 2})
    releases = 0
    worker = Worker(platform, tmp_path, "w0")
    workers.append(worker)
    while releases < 5:
        # Release only a run that is past its failed attempts and into its steps.
        steps_before = len(kinds(effects_of(tmp_path, job_id), "step"))
        pid = worker.pid

        def stepping(steps: int = steps_before, pid: int = pid) -> bool:
            records = kinds(effects_of(tmp_path, job_id), "step")
            return len(records) > steps and any(r["pid"] == pid for r in records)

        await until(
            stepping,
            timeout=60,
            what=f"a step by the worker before release {releases + 1}",
        )
        worker.term()
        assert worker.wait(30) == 0
        releases += 1
        worker = Worker(platform, tmp_path, f"w{releases}")
        workers.append(worker)
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=90)
    assert job.attempts == 2, "two failed attempts, retried"
    assert job.runs >= 8, "three attempts and five releases"
    assert await jobs.dead_letters() == [], "a live job's message never reached the DLQ"


async def test_a_450_kb_result_gives_one_run_and_a_clear_failure_reason(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    """A final write that cannot succeed fails the job once with a reason, instead of
    looking like a dead worker and running again."""
    workers.append(Worker(platform, tmp_path))
    job_id = await jobs.submit({"steps": 1, "step_s": 0, "result_kb": 450})
    job = await jobs.wait(job_id, JobState.FAILED, timeout=60)
    assert job.runs == 1
    assert job.takeovers == 0
    assert job.error is not None
    assert "result is 450 KB" in job.error
    assert "bucket" in job.error, "the reason says what to do instead"
    await asyncio.sleep(8)  # past a lease: nothing runs it again
    assert (await jobs.get(job_id)).runs == 1
    assert len(kinds(effects_of(tmp_path, job_id), "start")) == 1


async def test_a_result_holding_a_number_aws_cannot_store_fails_once_with_where_it_is(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    """DynamoDB refuses 1e-300 (the emulator stores it): the job fails once, naming the
    field, instead of succeeding here and failing its final write on AWS."""
    workers.append(Worker(platform, tmp_path))
    job_id = await jobs.submit({"steps": 1, "step_s": 0, "result_tiny": True})
    job = await jobs.wait(job_id, JobState.FAILED, timeout=60)
    assert job.runs == 1
    assert job.error is not None
    assert "result.metrics.loss is 1e-300" in job.error, job.error
    assert len(kinds(effects_of(tmp_path, job_id), "start")) == 1


async def test_a_draining_worker_takes_no_new_jobs_and_its_protection_lapses_when_its_jobs_end(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    """Scale-in protection never blocks a deployment: under a steady backlog, a worker asked
    to drain finishes what it runs, takes nothing new, and drops its protection."""
    agent = FakeEcsAgent()
    try:
        draining = Worker(platform, tmp_path, "old", ECS_AGENT_URI=agent.uri)
        workers.append(draining)
        backlog = [await jobs.submit({"steps": 4, "step_s": 0.5}) for _ in range(12)]
        await until(lambda: len(agent.requests) >= 1, what="protection on")
        draining.drain()
        drained_at = time.time()
        await until(
            lambda: agent.requests[-1]["body"] == {"ProtectionEnabled": False},
            timeout=30,
            what="protection dropped once its jobs ended",
        )
        dropped_at = time.time()
        workers.append(Worker(platform, tmp_path, "new"))  # the deployment's replacement
        for job_id in backlog:
            await jobs.wait(job_id, JobState.SUCCEEDED, timeout=90)
        late = [
            job_id
            for job_id in backlog
            for r in kinds(effects_of(tmp_path, job_id), "start")
            if r["pid"] == draining.pid and r["t"] > drained_at + 0.5
        ]
        assert late == [], "the draining worker started no job after it was asked to drain"
        assert draining.process.poll() is None, "draining is not stopping: ECS stops the task"
        assert dropped_at - drained_at < 30
        assert agent.requests[-1]["body"] == {"ProtectionEnabled": False}
    finally:
        agent.close()


async def test_a_job_whose_record_no_longer_validates_fails_once_with_the_reason(
    jobs: Jobs, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    """A row this worker cannot read (a newer version's, a broken write) fails the job with
    the validation error instead of coming back at every delivery."""
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)
    await store._update(job_id, {"progress": "not a number"}, "attribute_exists(PK)", {})
    await jobs.submit({"steps": 1})  # a readable job beside it, run as usual
    await enqueue(await jobs.aws.get("sqs"), await jobs.queue_url(), job_id)
    await store.mark_enqueued(job_id)
    workers.append(Worker(platform, tmp_path))
    deadline = time.monotonic() + 60
    while True:
        raw = await store._get_raw(job_id)
        assert raw is not None
        if raw["state"] == "failed":
            break
        assert time.monotonic() < deadline, f"still {raw['state']}"
        await asyncio.sleep(0.2)
    assert "does not validate" in raw["error"]
    assert "progress" in raw["error"], "the reason names the field"
    await until(lambda: "job record unreadable" in workers[0].log(), what="the worker says why")
    await asyncio.sleep(8)  # past a lease and a visibility timeout: it does not come back
    assert workers[0].log().count("job record unreadable") == 1
    assert len(await jobs.dead_letters()) == 1, "its message waits in the DLQ for a redrive"
