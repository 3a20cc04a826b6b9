"""Chaos, bounded in time: 200 jobs, 3 workers, one worker killed (-9 or TERM, at random)
every few seconds and restarted. Nothing may be lost, and no job may ever run twice at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import TERMINAL, JobState
from tests.conftest import Platform
from tests.support.workers import Jobs, Worker, effects_of, kinds, never_concurrent

JOBS = 200
WORKERS = 3
KILL_EVERY_S = (2.0, 4.0)
BOUND_S = 240


@pytest.mark.e2e
@pytest.mark.timeout(BOUND_S + 60)
async def test_chaos_200_jobs_3_workers_killed_at_random_nothing_lost_nothing_doubled(
    aws: AwsClients, platform: Platform, tmp_path: Path
) -> None:
    rng = random.Random(7)
    jobs = Jobs(aws, platform.env)
    env = {"LONGHAUL_SHUTDOWN_DEADLINE_S": "5", "LONGHAUL_JOB_CONCURRENCY": "6"}
    workers = [Worker(platform, tmp_path, f"w{i}", **env) for i in range(WORKERS)]
    every = list(workers)
    started, began = time.monotonic(), time.time()
    ids = await asyncio.gather(*(jobs.submit({"steps": 4, "step_s": 0.5}) for _ in range(JOBS)))
    kills: Counter[str] = Counter()
    store = await jobs.store()

    def finished() -> int:  # from the side effects on disk: cheap enough to ask often
        return sum(1 for job_id in ids if kinds(effects_of(tmp_path, job_id), "done"))

    try:
        while time.monotonic() - started < BOUND_S and finished() < JOBS:
            await asyncio.sleep(rng.uniform(*KILL_EVERY_S))
            victim = rng.randrange(WORKERS)
            how = rng.choice(["kill -9", "TERM"])
            if how == "kill -9":
                workers[victim].kill9()
            else:
                workers[victim].term()
            kills[how] += 1
            workers[victim] = Worker(platform, tmp_path, f"w{victim}-{sum(kills.values())}", **env)
            every.append(workers[victim])
        # Let the last jobs write their terminal state (done is recorded just before it).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = Counter([(await store.get(job_id)).state.value for job_id in ids])
            if sum(states[s.value] for s in TERMINAL) == JOBS:
                break
            await asyncio.sleep(1)
    finally:
        for worker in every:
            worker.stop()
    elapsed = time.monotonic() - started

    final = {job_id: await store.get(job_id) for job_id in ids}
    states = Counter(job.state.value for job in final.values())
    concurrent = [job_id for job_id in ids if not never_concurrent(effects_of(tmp_path, job_id))]
    done_twice = [job_id for job_id in ids if len(kinds(effects_of(tmp_path, job_id), "done")) > 1]
    runs = sum(job.runs for job in final.values())
    redone = sum(
        len(kinds(effects_of(tmp_path, job_id), "step_again"))
        + len(kinds(effects_of(tmp_path, job_id), "done_again"))
        for job_id in ids
    )
    print(
        f"\nchaos: {JOBS} jobs, {WORKERS} workers, {sum(kills.values())} kills "
        f"({kills['kill -9']} kill -9, {kills['TERM']} TERM) in {elapsed:.1f}s; "
        f"states {dict(states)}; {runs} runs for {JOBS} jobs; "
        f"{redone} effects repeated after kills "
        "(absorbed by their idempotency); "
        f"lost {JOBS - sum(states[s.value] for s in TERMINAL)}; concurrent {len(concurrent)}; "
        f"completed twice {len(done_twice)}"
    )
    # The last jobs to finish, with what every worker logged about them: what to read first
    # when a run comes near its bound.
    ends = {
        job_id: records[-1]["t"] - began
        for job_id in ids
        if (records := effects_of(tmp_path, job_id))
    }
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
    assert states == {JobState.SUCCEEDED.value: JOBS}, (
        "every job reached a terminal state, successfully"
    )
    assert concurrent == [], "no job ever ran in two processes at once"
    assert done_twice == []
    assert sum(kills.values()) >= 5, "the chaos actually happened"
