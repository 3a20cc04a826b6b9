"""Real worker processes of the echo service, and helpers to submit and watch jobs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from longhaul.aws.clients import AwsClients
from longhaul.jobs import Job, JobState, JobStore
from longhaul.jobs.queue import enqueue
from longhaul.spec import ResourceNames
from tests.support.app import echo_environment
from tests.support.echo.spec import SPEC as ECHO
from tests.support.moto import free_port
from tests.support.processes import kill_tree

ROOT = Path(__file__).resolve().parents[2]

FAST = {
    "LONGHAUL_POLL_WAIT_S": "1",
    "LONGHAUL_CANCEL_POLL_S": "0.3",
    "LONGHAUL_SHUTDOWN_DEADLINE_S": "10",
    "LONGHAUL_RECONCILE_EVERY_S": "1",
    "LONGHAUL_RECONCILE_AFTER_S": "3",
    "LONGHAUL_RETRY_BASE_S": "2",
    "LONGHAUL_RETRY_MAX_S": "8",
    "LONGHAUL_JOB_CONCURRENCY": "4",
}


class Worker:
    """`python -m tests.support.echo --role worker` as its own process."""

    def __init__(self, platform: Any, effects: Path, name: str = "w", **env: str) -> None:
        self.name = name
        self.log_path = effects / f"worker-{name}-{time.time_ns()}.log"
        variables = {
            **os.environ,
            **echo_environment(platform.env, platform.endpoint, platform.auth, role="worker"),
            **FAST,
            "ECHO_EFFECTS_DIR": str(effects),
            **env,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.echo",
                    "--role",
                    "worker",
                    "--port",
                    str(free_port()),
                ],
                cwd=ROOT,
                env=variables,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the process freezes (its timers and sockets do not)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self.process.send_signal(signal.SIGCONT)

    def drain(self) -> None:
        """SIGUSR1: stop taking jobs, finish those running."""
        self.process.send_signal(signal.SIGUSR1)

    def term(self) -> None:
        """SIGTERM: what ECS sends on a deploy, scale-in or Spot interruption."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Kill the worker and what it started (a handler's child), whatever state it is in."""
        if self.process.poll() is None:
            kill_tree(self.pid)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """PIDs of this worker's child processes (a handler's CPU work)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                # multiprocessing's resource tracker is a child too; only count the work.
                if (
                    int(stat.rsplit(")", 1)[1].split()[1]) == self.pid
                    and b"resource_tracker" not in cmdline
                ):
                    found.append(int(entry.name))
        return found


def store_for(aws_clients: dict[str, Any], env: str) -> JobStore:
    names = ResourceNames.of(ECHO, env)
    assert names.table is not None
    return JobStore(aws_clients["dynamodb"], names.table, s3=aws_clients["s3"], bucket=names.bucket)


class Jobs:
    """Submit and watch echo jobs in one environment, as the API does."""

    def __init__(self, aws: AwsClients, env: str) -> None:
        self.aws = aws
        self.env = env
        self.names = ResourceNames.of(ECHO, env)

    async def store(self) -> JobStore:
        assert self.names.table is not None
        return JobStore(
            await self.aws.get("dynamodb"),
            self.names.table,
            s3=await self.aws.get("s3"),
            bucket=self.names.bucket,
        )

    async def queue_url(self, dlq: bool = False) -> str:
        sqs = await self.aws.get("sqs")
        name = self.names.dlq if dlq else self.names.queue
        return str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])

    async def dead_letters(self) -> list[dict[str, Any]]:
        """The messages waiting on the test service's DLQ."""
        sqs = await self.aws.get("sqs")
        found = await sqs.receive_message(
            QueueUrl=await self.queue_url(dlq=True), WaitTimeSeconds=0
        )
        return list(found.get("Messages", []))

    async def submit(
        self, payload: dict[str, Any], *, owner: str = "user-1", enqueue_it: bool = True
    ) -> str:
        store = await self.store()
        job, _ = await store.submit(owner=owner, job_type="work", payload=payload)
        if enqueue_it:
            await enqueue(await self.aws.get("sqs"), await self.queue_url(), job.id)
            await store.mark_enqueued(job.id)
        return job.id

    async def get(self, job_id: str) -> Job:
        return await (await self.store()).get(job_id)

    async def wait(self, job_id: str, *states: JobState, timeout: float = 60) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if job.state in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job.state} (wanted {states}): {job}")
            await asyncio.sleep(0.2)


async def until(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Wait until `predicate()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.1)


def effects_of(effects: Path, job_id: str) -> list[dict[str, Any]]:
    """The side effects the job recorded, in order."""
    path = effects / f"{job_id}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def kinds(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]


# What a handler records as it runs: the run log. The end hook and the facts are after-end
# effects, which any worker may run, at least once, after the job has ended.
RUN_KINDS = {"start", "step", "step_again", "done", "done_again", "fail"}


def never_concurrent(records: list[dict[str, Any]]) -> bool:
    """Once a new process has started the job, no earlier process runs its handler again."""
    finished: set[int] = set()
    current: int | None = None
    run_log = [r for r in records if r["kind"] in RUN_KINDS]
    for record in sorted(run_log, key=lambda r: r.get("m", r["t"])):
        if record["pid"] != current:
            if record["pid"] in finished:
                return False
            if current is not None:
                finished.add(current)
            current = record["pid"]
    return True
