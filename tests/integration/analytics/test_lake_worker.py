"""Compaction through the job runtime: a real worker process killed -9 in the middle of a
compaction of many rounds, and another that takes it over, leave every distinct event of
the hour exactly once; the scheduler submits compaction for due hours only, once per
partition while one runs, and is followed by another when it ends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from longhaul.api.app import create_app
from longhaul.aws.clients import AwsClients
from longhaul.config import load_settings
from longhaul.events import EventRouter
from longhaul.jobs import Job, JobParked, JobResources, JobState, JobStore
from longhaul.jobs.queue import enqueue
from longhaul.local.platform import LocalAuth, role_environment
from longhaul.local.provision import provision
from longhaul.spec import ResourceNames
from longhaul_analytics.analytics.lake import LakeRow, Partition, list_keys, read_files, write_flush
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.spec import SPEC
from longhaul_analytics.worker.jobs import jobs
from longhaul_analytics.worker.lake_jobs import (
    COMPACT,
    SCHEDULE,
    SYSTEM_OWNER,
    CompactPayload,
    SchedulePayload,
    _next_scheduler,
    schedule_compaction,
)
from tests.support.moto import MotoServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[3]
FAST = {
    "LONGHAUL_POLL_WAIT_S": "1",
    "LONGHAUL_CANCEL_POLL_S": "0.3",
    "LONGHAUL_SHUTDOWN_DEADLINE_S": "5",
    "LONGHAUL_RECONCILE_EVERY_S": "1",
    "LONGHAUL_RECONCILE_AFTER_S": "3",
    "LONGHAUL_RETRY_BASE_S": "1",
    "LONGHAUL_RETRY_MAX_S": "2",
    "LONGHAUL_VISIBILITY_TIMEOUT_S": "5",
}
FLUSH_BATCHES = int(os.environ.get("LAKE_SOAK_BATCHES", "24"))  # more for a soak
HOUR_START = datetime(2026, 3, 1, 10, tzinfo=UTC)


@dataclass
class Lake:
    env: str
    auth: LocalAuth
    endpoint: str
    names: ResourceNames

    @property
    def bucket(self) -> str:
        return str(self.names.bucket)

    def environment(self, **extra: str) -> dict[str, str]:
        variables = role_environment(
            SPEC,
            "worker",
            env=self.env,
            region=REGION,
            endpoint=self.endpoint,
            auth=self.auth,
            host="127.0.0.1",
        )
        return {**variables, **FAST, **extra}


@pytest.fixture(scope="module")
async def lake(moto: MotoServer) -> Lake:
    """The analytics spec provisioned once for these tests (their owners differ)."""
    env = "l" + uuid.uuid4().hex[:8]
    aws = AwsClients(REGION)
    try:
        report = await provision(aws, [SPEC], env=env, region=REGION)
    finally:
        await aws.close()
    assert report.auth is not None
    return Lake(env, report.auth, moto.endpoint, ResourceNames.of(SPEC, env))


class Worker:
    """`python -m longhaul_analytics --role worker` in a session of its own."""

    def __init__(self, lake: Lake, logs: Path, **extra: str) -> None:
        self.log_path = logs / f"analytics-worker-{time.time_ns()}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "longhaul_analytics", "--role", "worker"),
                    *("--port", str(free_port())),
                ],
                cwd=ROOT,
                env={**os.environ, **lake.environment(**extra)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill9(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill9()


async def store_of(aws: AwsClients, lake: Lake) -> JobStore:
    return JobStore(
        await aws.get("dynamodb"), str(lake.names.table), s3=await aws.get("s3"), bucket=lake.bucket
    )


async def wait_for(store: JobStore, job_id: str, *states: JobState, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = await store.get(job_id)
        if job.state in states:
            return job
        assert time.monotonic() < deadline, f"job still {job.state}: {job}"
        await asyncio.sleep(0.1)


def hour_rows(batch: int) -> list[LakeRow]:
    """Batch `batch` of the hour: ten events, five of them also in the batch before."""
    return [
        LakeRow(
            owner="alice",
            id=f"ev-{n}",
            name="tick",
            time=HOUR_START + timedelta(seconds=n),
            received_at=HOUR_START + timedelta(seconds=n + batch),
            source="client",
            properties=json.dumps({"n": n}),
        )
        for n in range(batch * 5, batch * 5 + 10)
    ]


async def test_a_worker_killed_mid_compaction_and_a_successor_leave_each_event_once(
    aws: AwsClients,
    lake: Lake,
    workers: list[Worker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = await aws.get("s3")
    for batch in range(FLUSH_BATCHES):
        await write_flush(s3, lake.bucket, hour_rows(batch))
    await write_flush(s3, lake.bucket, hour_rows(0))  # a redelivery: the same object
    distinct = {r.id for b in range(FLUSH_BATCHES) for r in hour_rows(b)}
    partition = Partition.of("alice", HOUR_START)
    assert len(await list_keys(s3, lake.bucket, partition.flush_prefix)) == FLUSH_BATCHES

    store = await store_of(aws, lake)
    job, _ = await store.submit(
        owner=SYSTEM_OWNER,
        job_type=COMPACT,
        payload=CompactPayload(owner="alice", dt=HOUR_START.date(), hour=10).model_dump(
            mode="json"
        ),
    )
    sqs = await aws.get("sqs")
    queue_url = (await sqs.get_queue_url(QueueName=lake.names.queue))["QueueUrl"]
    await enqueue(sqs, queue_url, job.id)

    # Many rounds of few files, so the kill lands inside the compaction.
    rounds = {"ANALYTICS_LAKE_COMPACT_MAX_FILES": "3"}
    first = Worker(lake, tmp_path, **rounds)
    workers.append(first)
    deadline = time.monotonic() + 90
    while len(await list_keys(s3, lake.bucket, partition.flush_prefix)) >= FLUSH_BATCHES - 3:
        assert first.process.poll() is None, first.log()[-3000:]
        assert time.monotonic() < deadline, "the compaction did not start"
        await asyncio.sleep(0.05)
    first.kill9()
    left = len(await list_keys(s3, lake.bucket, partition.flush_prefix))
    assert 0 < left < FLUSH_BATCHES  # killed with work done and work left

    # The successor: the same worker role, in this process (one interpreter start less).
    for key, value in lake.environment(**rounds).items():
        monkeypatch.setenv(key, value)
    app = create_app(
        SPEC, load_settings(AnalyticsSettings), role="worker", jobs=jobs, events=EventRouter()
    )
    async with app.router.lifespan_context(app):
        done = await wait_for(store, job.id, JobState.SUCCEEDED, JobState.FAILED)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.takeovers == 1

    assert await list_keys(s3, lake.bucket, partition.flush_prefix) == []
    files = await list_keys(s3, lake.bucket, partition.events_prefix)
    assert len(files) == 1  # one file for the hour
    counts = Counter((await read_files(s3, lake.bucket, files))["id"].to_pylist())
    assert set(counts) == distinct
    assert set(counts.values()) == {1}


class SchedulerContext:
    """What the scheduler's handler uses of a job context: checkpoints kept in memory."""

    def __init__(self, resources: JobResources) -> None:
        self.job_id = "sched-" + uuid.uuid4().hex[:8]
        self.resources = resources
        self.resume: Any = None
        self.log = __import__("logging").getLogger("test.scheduler")

    async def checkpoint(self, state: Any) -> None:
        self.resume = json.loads(json.dumps(state))

    def park(self, delay_s: int, message: str | None = None) -> None:
        raise JobParked(self.job_id, delay_s, message)


async def test_the_scheduler_submits_due_hours_once_while_they_run_and_is_followed(
    aws: AwsClients, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = await aws.get("s3")
    now = datetime.now(UTC)
    old = now - timedelta(hours=3)
    fresh = now
    for at in (old, fresh):
        await write_flush(
            s3,
            lake.bucket,
            [
                LakeRow(
                    owner="bob",
                    id=f"b-{at}",
                    name="n",
                    time=at,
                    received_at=at,
                    source="s",
                    properties="{}",
                )
            ],
        )
    for key, value in lake.environment(ANALYTICS_LAKE_SCHEDULE_EVERY_S="7").items():
        monkeypatch.setenv(key, value)
    settings = AnalyticsSettings()
    store = await store_of(aws, lake)
    sqs = await aws.get("sqs")
    queue_url = (await sqs.get_queue_url(QueueName=lake.names.queue))["QueueUrl"]
    resources = JobResources(
        service="analytics",
        settings=settings,
        aws=aws,
        publisher=None,
        store=store,
        sqs=sqs,
        queue_url=queue_url,
    )
    ctx: Any = SchedulerContext(resources)
    for _ in range(2):  # the second pass finds the first's compaction still queued
        with pytest.raises(JobParked) as parked:
            await schedule_compaction(SchedulePayload(), ctx)
        assert parked.value.delay_s == 7
    bobs = [j for j in (await store.page(SYSTEM_OWNER)).jobs if j.payload.get("owner") == "bob"]
    assert [(j.type, j.payload) for j in bobs] == [
        (COMPACT, {"owner": "bob", "dt": old.date().isoformat(), "hour": old.hour})
    ]

    waiting: Any = SchedulerContext(resources)
    later = SchedulePayload(not_before=now + timedelta(seconds=120))
    with pytest.raises(JobParked) as parked:
        await schedule_compaction(later, waiting)
    assert 118 <= parked.value.delay_s <= 120
    assert waiting.resume is None  # no pass before its time

    ended = bobs[0].model_copy(
        update={"id": "ended-scheduler", "state": JobState.FAILED, "finished_at": now}
    )
    await _next_scheduler(ended, resources)
    await _next_scheduler(ended, resources)  # an end hook may run twice
    successors = [j for j in (await store.page(SYSTEM_OWNER)).jobs if j.type == SCHEDULE]
    assert len(successors) == 1
    assert datetime.fromisoformat(successors[0].payload["not_before"]) == now + timedelta(
        seconds=300
    )  # after a failure, the next waits
