"""Chaos, bounded in time: 150 jobs (LONGHAUL_CHAOS_JOBS; more for a soak), 3 workers, one
worker at a time killed -9, TERMed or frozen (SIGSTOP, continued past its lease) at random
and replaced,
while the emulator throttles, fails and slows a share of DynamoDB, SQS and EventBridge
calls. Nothing may be lost, no two runs of a job may overlap, no live job may reach the
DLQ, and every job's end hook and terminal fact must happen."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import TERMINAL, JobState
from tests.conftest import Platform
from tests.support.moto import MotoServer
from tests.support.workers import Jobs, Worker, effects_of, kinds, never_concurrent

JOBS = int(os.environ.get("LONGHAUL_CHAOS_JOBS", "150"))
WORKERS = 3
KILL_EVERY_S = (2.0, 4.0)
FROZEN_S = 9.0  # past the echo queue's 6 s lease: the frozen worker's jobs are taken over
BOUND_S = 420


@pytest.mark.e2e
@pytest.mark.timeout(BOUND_S + 180)
async def test_chaos_jobs_survive_kills_freezes_and_aws_faults_nothing_lost_or_doubled(
    aws: AwsClients, platform: Platform, moto: MotoServer, tmp_path: Path
) -> None:
    rng = random.Random(7)
    jobs = Jobs(aws, platform.env)
    faults = moto.faults
    rules = {
        "dynamodb throttled": faults.inject(
            "dynamodb", "throttle", match=platform.env, probability=0.02
        ),
        "dynamodb 500": faults.inject(
            "dynamodb", "error", status=500, match=platform.env, probability=0.01
        ),
        "dynamodb +0.5 s": faults.inject(
            "dynamodb", "latency", seconds=0.5, match=platform.env, probability=0.02
        ),
        # 2%: at 150 jobs 1% fired 15 times in a long run on a loaded machine; a quick run
        # makes fewer idle calls, and no SQS fault at all must stay out of reach.
        "sqs 503": faults.inject("sqs", "error", status=503, match=platform.env, probability=0.02),
        "events throttled": faults.inject(
            "events", "throttle", match=platform.env, probability=0.05
        ),
    }
    env = {
        "LONGHAUL_SHUTDOWN_DEADLINE_S": "5",
        "LONGHAUL_JOB_CONCURRENCY": "6",
        "LONGHAUL_RECONCILE_EVERY_S": "2",
        "LONGHAUL_CANCEL_POLL_S": "1",  # a read per running job each poll: the load to keep low
    }
    workers = [Worker(platform, tmp_path, f"w{i}", **env) for i in range(WORKERS)]
    every = list(workers)
    frozen: list[tuple[float, Worker]] = []
    started, began = time.monotonic(), time.time()
    ids = await asyncio.gather(*(jobs.submit({"steps": 1, "step_s": 0.8}) for _ in range(JOBS)))
    kills: Counter[str] = Counter()
    store = await jobs.store()

    def finished() -> int:  # from the side effects on disk: cheap enough to ask often
        return sum(1 for job_id in ids if kinds(effects_of(tmp_path, job_id), "done"))

    try:
        while time.monotonic() - started < BOUND_S and finished() < JOBS:
            await asyncio.sleep(rng.uniform(*KILL_EVERY_S))
            for thaw_at, worker in list(frozen):
                if time.monotonic() >= thaw_at:
                    # Continued, it must let go of what it held, not run beside its successor;
                    # then it is stopped, as ECS would a task it had given up on.
                    worker.resume()
                    worker.term()
                    frozen.remove((thaw_at, worker))
            victim = rng.randrange(WORKERS)
            how = rng.choice(["kill -9", "TERM", "SIGSTOP"])
            if how == "kill -9":
                workers[victim].kill9()
            elif how == "TERM":
                workers[victim].term()
            else:
                workers[victim].pause()
                frozen.append((time.monotonic() + FROZEN_S, workers[victim]))
            kills[how] += 1
            workers[victim] = Worker(platform, tmp_path, f"w{victim}-{sum(kills.values())}", **env)
            every.append(workers[victim])
        for _, worker in frozen:
            worker.resume()
        # Let the last jobs write their terminal state and every end hook and fact land.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = Counter([(await store.get(job_id)).state.value for job_id in ids])
            records = {job_id: effects_of(tmp_path, job_id) for job_id in ids}
            ended = sum(1 for r in records.values() if kinds(r, "on_end") and kinds(r, "fact"))
            if sum(states[s.value] for s in TERMINAL) == JOBS and ended == JOBS:
                break
            await asyncio.sleep(1)
        fired = {name: faults.fired(rule) for name, rule in rules.items()}
    finally:
        faults.clear()
        for worker in every:
            worker.resume()
            worker.stop()
    elapsed = time.monotonic() - started

    final = {job_id: await store.get(job_id) for job_id in ids}
    records = {job_id: effects_of(tmp_path, job_id) for job_id in ids}
    states = Counter(job.state.value for job in final.values())
    lost = JOBS - sum(states[s.value] for s in TERMINAL)
    overlapping = [job_id for job_id in ids if not never_concurrent(records[job_id])]
    done_twice = [job_id for job_id in ids if len(kinds(records[job_id], "done")) > 1]
    no_hook = [job_id for job_id in ids if not kinds(records[job_id], "on_end")]
    no_fact = [job_id for job_id in ids if not kinds(records[job_id], "fact")]
    sqs = await aws.get("sqs")
    dlq = (
        await sqs.get_queue_attributes(
            QueueUrl=await jobs.queue_url(dlq=True),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    )["Attributes"]
    in_dlq = sum(int(value) for value in dlq.values())
    runs = sum(job.runs for job in final.values())
    takeovers = sum(job.takeovers for job in final.values())
    redone = sum(
        len(kinds(records[job_id], "step_again")) + len(kinds(records[job_id], "done_again"))
        for job_id in ids
    )
    print(
        f"\nchaos: {JOBS} jobs, {WORKERS} workers, {sum(kills.values())} kills "
        f"({kills['kill -9']} kill -9, {kills['TERM']} TERM, {kills['SIGSTOP']} SIGSTOP) "
        f"in {elapsed:.1f}s; faults fired {fired}; states {dict(states)}; "
        f"{runs} runs ({takeovers} takeovers) for {JOBS} jobs; "
        f"{redone} effects repeated after kills (absorbed by their idempotency); "
        f"lost {lost}; overlapping runs {len(overlapping)}; completed twice {len(done_twice)}; "
        f"messages in the DLQ {in_dlq}; jobs without their end hook {len(no_hook)}, "
        f"without their terminal fact {len(no_fact)}"
    )
    # The last jobs to finish, with what every worker logged about them: what to read first
    # when a run comes near its bound.
    ends = {job_id: r[-1]["t"] - began for job_id, r in records.items() if r}
    for job_id in sorted(ends, key=ends.__getitem__, reverse=True)[:3]:
        job = final[job_id]
        print(
            f"last: {job_id} done {ends[job_id]:.1f}s into the run, {job.state.value}, "
            f"runs {job.runs}, takeovers {job.takeovers}, attempts {job.attempts}"
        )
        if ends[job_id] > BOUND_S / 2:
            for worker in every:
                for line in worker.log().splitlines():
                    if job_id in line:
                        print(f"  {worker.name}: {line[:300]}")
    assert states == {JobState.SUCCEEDED.value: JOBS}, "every job succeeded: none lost"
    assert overlapping == [], "no job ever ran in two processes at once"
    assert done_twice == []
    assert in_dlq == 0, "no live job's message reached the DLQ"
    assert no_hook == [], "every job's end hook ran"
    assert no_fact == [], "every job's terminal fact was published"
    assert sum(kills.values()) >= 5, "the chaos actually happened"
    assert all(count > 0 for count in fired.values()), f"every fault fired: {fired}"
