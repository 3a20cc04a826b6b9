"""The durable-jobs guarantees, proven with real worker processes killed for real against a
real moto server."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from tests.conftest import Platform
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
def effects(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def jobs(aws: AwsClients, platform: Platform) -> Jobs:
    return Jobs(aws, platform.env)


async def test_job_runs_to_success_and_records_its_result(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    workers.append(Worker(platform, effects))
    job_id = await jobs.submit({"steps": 3, "step_s": 0.1})
    job = await jobs.wait(job_id, JobState.SUCCEEDED)
    assert job.result == {"steps": 3}
    assert job.progress == 1.0
    assert job.message is None, "no step's message outlives the job"
    assert job.runs == 1
    records = effects_of(effects, job_id)
    run_log = [r["kind"] for r in records if r["kind"] in RUN_KINDS]
    assert run_log == ["start", "step", "step", "step", "done"]

    def ended() -> list[str]:  # the end hook and the fact come after the job's end
        return sorted(r["kind"] for r in effects_of(effects, job_id) if r["kind"] not in RUN_KINDS)

    await until(lambda: ended() == ["fact", "on_end"], timeout=20, what="end hook and fact")

    def succeeded_lines() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in workers[0].log().splitlines() if line.startswith("{")]
        return [line for line in lines if line["message"] == "job succeeded"]

    # The row turns succeeded a moment before the worker writes its log line.
    await until(lambda: bool(succeeded_lines()), timeout=10, what="the worker logs 'job succeeded'")
    succeeded = succeeded_lines()
    assert succeeded[0]["job_id"] == job_id, "the worker's log lines carry the job id"
    assert succeeded[0]["role"] == "worker"


async def test_kill_9_mid_job_another_worker_finishes_from_the_checkpoint_once(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    first = Worker(platform, effects, "first")
    workers.append(first)
    job_id = await jobs.submit({"steps": 8, "step_s": 0.5})
    await until(lambda: len(kinds(effects_of(effects, job_id), "step")) >= 3, what="three steps")
    first.kill9()
    done_before = len(kinds(effects_of(effects, job_id), "step"))

    workers.append(Worker(platform, effects, "second"))
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)

    records = effects_of(effects, job_id)
    starts = kinds(records, "start")
    assert len(starts) == 2
    assert starts[1]["pid"] != first.pid
    assert starts[1]["resume"] >= done_before - 1, "resumed from the last checkpoint"
    assert sorted(r["step"] for r in kinds(records, "step")) == list(range(8)), "each step once"
    assert len(kinds(records, "step_again")) <= 1, "at most the step in flight is redone"
    assert len(kinds(records, "done")) == 1
    assert never_concurrent(records)
    assert job.runs == 2
    assert job.attempts == 0, "a kill is not a failed attempt"


async def test_sigterm_releases_the_job_at_once_and_it_resumes_elsewhere(
    aws: AwsClients, jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    first = Worker(platform, effects, "first", LONGHAUL_SHUTDOWN_DEADLINE_S="8")
    workers.append(first)
    job_id = await jobs.submit({"steps": 20, "step_s": 0.3})
    await until(lambda: len(kinds(effects_of(effects, job_id), "step")) >= 2, what="two steps")

    signalled = time.monotonic()
    first.term()
    assert first.wait(timeout=8) == 0, first.log()
    exit_s = time.monotonic() - signalled
    assert exit_s < 8, "exits within the shutdown deadline"

    # The message is visible again at once (the queue's visibility timeout is 6 s).
    sqs = await aws.get("sqs")
    received = await sqs.receive_message(QueueUrl=await jobs.queue_url(), WaitTimeSeconds=1)
    assert len(received.get("Messages", [])) == 1
    await sqs.change_message_visibility(
        QueueUrl=await jobs.queue_url(),
        ReceiptHandle=received["Messages"][0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    released = await jobs.get(job_id)
    assert released.state is JobState.QUEUED

    workers.append(Worker(platform, effects, "second"))
    await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)
    records = effects_of(effects, job_id)
    first_steps = [r["step"] for r in kinds(records, "step") if r["pid"] == first.pid]
    second_start = [r for r in kinds(records, "start") if r["pid"] != first.pid]
    assert second_start[0]["resume"] == max(first_steps) + 1, "nothing after the checkpoint is lost"
    assert kinds(records, "step_again") == [], "a graceful stop redoes nothing"
    assert sorted(r["step"] for r in kinds(records, "step")) == list(range(20))


async def test_cpu_job_three_times_the_visibility_timeout_is_never_redelivered(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    # The queue's visibility timeout is 6 s; the job burns 3 x 6 s of CPU in a child process
    # while a second worker polls the same queue, ready to take any message that reappears.
    workers.append(Worker(platform, effects, "a", LONGHAUL_JOB_CONCURRENCY="1"))
    workers.append(Worker(platform, effects, "b", LONGHAUL_JOB_CONCURRENCY="1"))
    job_id = await jobs.submit({"steps": 3, "cpu_s": 6})
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=90)
    records = effects_of(effects, job_id)
    assert len(kinds(records, "start")) == 1
    assert job.runs == 1
    assert records[-1]["t"] - records[0]["t"] >= 18


async def test_duplicate_messages_and_racing_workers_run_the_job_once(
    aws: AwsClients, jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    from longhaul.jobs.queue import enqueue

    job_id = await jobs.submit({"steps": 6, "step_s": 2})  # 12 s: twice the 6 s lease
    sqs = await aws.get("sqs")
    queue_url = await jobs.queue_url()
    for _ in range(3):  # the same job asked for four times over
        await enqueue(sqs, queue_url, job_id)
    workers.extend(Worker(platform, effects, name) for name in ("a", "b", "c"))

    async def on_queue() -> tuple[int, int]:
        attributes = await sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        counts = attributes["Attributes"]
        return (
            int(counts["ApproximateNumberOfMessages"]),
            int(counts["ApproximateNumberOfMessagesNotVisible"]),
        )

    # While the job runs, only the message it runs from is left: the duplicates are deleted,
    # not hidden until the lease expires again and again (each receive counting towards the
    # DLQ's maxReceiveCount).
    await jobs.wait(job_id, JobState.RUNNING)
    deadline = time.monotonic() + 8
    while (counts := await on_queue()) != (0, 1):
        assert time.monotonic() < deadline, f"visible, in flight: {counts}"
        await asyncio.sleep(0.2)
    assert (await jobs.get(job_id)).state is JobState.RUNNING

    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)
    records = effects_of(effects, job_id)
    assert len(kinds(records, "start")) == 1
    assert len(kinds(records, "done")) == 1
    assert job.runs == 1
    deadline = time.monotonic() + 10
    while (counts := await on_queue()) != (0, 0):
        assert time.monotonic() < deadline, f"left on the queue (visible, in flight): {counts}"
        await asyncio.sleep(0.2)


async def test_job_written_but_never_enqueued_is_finished_by_the_reconciler(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    # What a kill between the table write and the SQS send leaves behind.
    job_id = await jobs.submit({"steps": 2, "step_s": 0.1}, enqueue_it=False)
    workers.append(Worker(platform, effects))
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)
    assert job.runs == 1
    await until(
        lambda: "reconciler re-enqueued the job" in workers[0].log(),
        timeout=10,
        what="the reconciler logs that it re-enqueued the job",
    )


async def test_cancel_while_running_kills_the_child_within_two_seconds(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    worker = Worker(platform, effects)
    workers.append(worker)
    job_id = await jobs.submit({"steps": 1, "cpu_s": 60})
    await jobs.wait(job_id, JobState.RUNNING)
    await until(lambda: bool(worker.children()), what="the CPU child to start")
    children = worker.children()

    await (await jobs.store()).cancel(job_id, "user-1")
    asked = time.monotonic()
    await until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
        timeout=5,
        what="child gone",
    )
    gone_s = time.monotonic() - asked
    job = await jobs.wait(job_id, JobState.CANCELLED, timeout=10)
    assert gone_s < 2, f"the child outlived the cancel by {gone_s:.2f}s"
    assert job.error == "cancelled"
    assert worker.process.poll() is None, "the worker lives on"


async def test_always_failing_job_backs_off_then_fails_lands_in_dlq_and_redrive_retries_it(
    aws: AwsClients,
    jobs: Jobs,
    platform: Platform,
    effects: Path,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from tests.support.workers import ROOT

    blocker = tmp_path / "broken-dependency"
    blocker.touch()
    workers.append(Worker(platform, effects))
    job_id = await jobs.submit({"steps": 1, "step_s": 0.1, "fail_while": str(blocker)})
    job = await jobs.wait(job_id, JobState.FAILED, timeout=90)

    starts = [r["t"] for r in kinds(effects_of(effects, job_id), "start")]
    assert len(starts) == 3, "max_attempts of the job type"
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[1] > gaps[0], f"delays grow: {gaps}"
    assert job.attempts == 3
    assert job.error is not None
    assert job.error.startswith("failed after 3 attempts: RuntimeError: asked to fail")

    command = [sys.executable, "-m", "longhaul.local.cli", "dlq"]
    spec = ["--service", "tests.support.echo.spec:SPEC", "--env", platform.env]
    # Named explicitly, as on AWS where the stacks name the queues (URLs or names): the
    # environment's own names would not be found.
    explicit = ["--queue", await jobs.queue_url(), "--dlq", await jobs.queue_url(dlq=True)]
    elsewhere = ["--service", "tests.support.echo.spec:SPEC", "--env", "nowhere"]
    listed = subprocess.run(
        [*command, "list", "echo", *elsewhere, *explicit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'"job_id": "{job_id}"' in listed.stdout

    blocker.unlink()  # the dependency is fixed; retry what failed
    redriven = subprocess.run(
        [*command, "redrive", "echo", *spec], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "moved 1 message(s) by copy; 1 job(s) reset" in redriven.stdout
    job = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=60)
    assert job.result == {"steps": 1}
    assert await jobs.dead_letters() == []


async def test_non_retryable_error_fails_at_once(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    workers.append(Worker(platform, effects))
    job_id = await jobs.submit({"non_retryable": True})
    job = await jobs.wait(job_id, JobState.FAILED, timeout=30)
    assert job.error == "asked to fail for good"
    assert len(kinds(effects_of(effects, job_id), "start")) == 1


class FakeEcsAgent:
    """The ECS agent's task-protection endpoint, recording every request it gets."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        requests: list[dict[str, object]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                requests.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
                body = b'{"protection": {"ProtectionEnabled": true}}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.requests = requests
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v3/task"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_task_is_protected_from_scale_in_while_busy_and_released_when_idle(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    agent = FakeEcsAgent()
    try:
        workers.append(Worker(platform, effects, ECS_AGENT_URI=agent.uri))
        await asyncio.sleep(2)
        assert agent.requests == [], "an idle worker does not touch protection"
        job_id = await jobs.submit({"steps": 4, "step_s": 0.3})
        await jobs.wait(job_id, JobState.RUNNING)
        await until(lambda: len(agent.requests) >= 1, what="protection on")
        assert agent.requests[0] == {
            "path": "/v3/task/task-protection/v1/state",
            "body": {"ProtectionEnabled": True, "ExpiresInMinutes": 60},
        }
        await jobs.wait(job_id, JobState.SUCCEEDED)
        await until(lambda: len(agent.requests) >= 2, what="protection off")
        assert agent.requests[-1]["body"] == {"ProtectionEnabled": False}
        assert len(agent.requests) == 2
    finally:
        agent.close()


async def test_job_that_kills_every_worker_ends_failed_in_the_dlq(
    jobs: Jobs, platform: Platform, effects: Path, workers: list[Worker]
) -> None:
    job_id = await jobs.submit({"crash": True})
    deaths = 0
    deadline = time.monotonic() + 90
    while (await jobs.get(job_id)).state is not JobState.FAILED:
        assert time.monotonic() < deadline, "the job never gave up"
        worker = Worker(platform, effects, f"w{deaths}", LONGHAUL_MAX_TAKEOVERS="1")
        workers.append(worker)
        while (
            worker.process.poll() is None and (await jobs.get(job_id)).state is not JobState.FAILED
        ):
            await asyncio.sleep(0.2)
        deaths += worker.process.poll() is not None
    job = await jobs.get(job_id)
    assert deaths == 2, "the first run and one takeover; the second takeover gives up"
    assert job.takeovers == 2
    assert job.error is not None
    assert job.error.startswith("its worker died 2 times")
