"""Child jobs and parking: a parent fans out, waits without holding a slot, and checks on
its children more times than the queue's maxReceiveCount without ever reaching the DLQ."""

from __future__ import annotations

from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.queue import enqueue
from longhaul.jobs.store import child_owner
from tests.conftest import Platform
from tests.support.echo.spec import SPEC as ECHO
from tests.support.workers import Jobs, Worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_a_parent_parks_past_max_receive_count_and_its_children_run_once(
    aws: AwsClients, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    assert ECHO.queue is not None
    checks = ECHO.queue.max_receive_count + 5
    jobs = Jobs(aws, platform.env)
    # One slot: the parent must give it up while it waits, or its children never run.
    workers.append(Worker(platform, tmp_path, LONGHAUL_JOB_CONCURRENCY="1"))
    store = await jobs.store()
    parent, _ = await store.submit(
        owner="alice", job_type="fanout", payload={"children": 3, "min_checks": checks}
    )
    await enqueue(await aws.get("sqs"), await jobs.queue_url(), parent.id)
    done = await jobs.wait(parent.id, JobState.SUCCEEDED, JobState.FAILED, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result == {"checks": checks, "children": ["succeeded"] * 3}
    states = [e.state for e in await store.events(parent.id) if e.kind == "state"]
    assert states == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], (
        "between its checks the parent shows running, not a flap back to queued"
    )
    children = (await store.page(child_owner(parent.id))).jobs
    assert len(children) == 3
    assert all(c.state is JobState.SUCCEEDED and c.runs == 1 for c in children)
    # The children are the parent's, never listed to its owner.
    assert [j.id for j in (await store.page("alice")).jobs] == [parent.id]
    assert await jobs.dead_letters() == []


async def test_a_parked_parent_is_woken_when_its_last_child_ends(
    aws: AwsClients, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    jobs = Jobs(aws, platform.env)
    workers.append(Worker(platform, tmp_path))
    store = await jobs.store()
    # Parked for 10 minutes after its first check, while its children work for 2 s.
    parent, _ = await store.submit(
        owner="alice", job_type="fanout", payload={"children": 2, "child_s": 2, "park_s": 600}
    )
    await enqueue(await aws.get("sqs"), await jobs.queue_url(), parent.id)
    done = await jobs.wait(parent.id, JobState.SUCCEEDED, JobState.FAILED, timeout=60)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result == {"checks": 2, "children": ["succeeded"] * 2}, (
        "one check before the children ended, one when the last woke it"
    )
