"""One run of one job: take the lease, run the handler under it, and end in exactly one
way (succeeded, failed, cancelled, retried, released, parked, or stopped because the lease
lapsed). The ends themselves are in `ends`."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from pydantic import ValidationError

from longhaul.events.publisher import EventPublisher
from longhaul.jobs.context import JobContext
from longhaul.jobs.exceptions import (
    JobCancelled,
    JobInterrupted,
    JobParked,
    LeaseLost,
    NonRetryable,
)
from longhaul.jobs.protection import TaskProtection
from longhaul.jobs.queue import CHECK_ATTRIBUTE
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.store import JobStore, StartResult
from longhaul.jobs.submit import JobResources, publish_fact
from longhaul.jobs.types import Job, JobState
from longhaul.jobs.worker import metrics
from longhaul.jobs.worker.config import MAX_VISIBILITY_S, WorkerConfig
from longhaul.jobs.worker.effects import AfterEnd
from longhaul.jobs.worker.ends import RunEnds
from longhaul.jobs.worker.keepalive import Run, detach, keepalive, start_fenced, stop_run
from longhaul.jobs.worker.messages import Messages, receive_count

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 3  # for a job whose type this worker does not know


class JobRunner(RunEnds):
    """Runs jobs one message at a time, each under its own lease."""

    def __init__(
        self,
        *,
        service: str,
        worker_id: str,
        types: JobTypes,
        store: JobStore,
        messages: Messages,
        after_end: AfterEnd,
        publisher: EventPublisher,
        protection: TaskProtection,
        config: WorkerConfig,
        resources: JobResources | None,
    ) -> None:
        self.service = service
        self.worker_id = worker_id
        self.types = types
        self.store = store
        self.messages = messages
        self.after_end = after_end
        self.publisher = publisher
        self.protection = protection
        self.config = config
        self.resources = resources
        self.runs: dict[str, Run] = {}
        self.stopping = False  # shutdown asked for checkpoints
        self.releasing = False  # shutdown's deadline: no new handler may start

    # -- taking the lease ------------------------------------------------------------------

    async def attempt(self, message: dict[str, Any], job_id: str, received_at: float) -> None:
        """Try to start `job_id` from `message` and run it to one of its ends."""
        lease = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        check = message.get("MessageAttributes", {}).get(CHECK_ATTRIBUTE, {}).get("StringValue")
        asked_at = time.monotonic()  # the lease in the table starts after this, never before
        try:
            started = await self.store.start(
                job_id, lease, self.config.visibility_s, message.get("MessageId"), check
            )
        except ValidationError as exc:
            await self._unreadable(job_id, message, exc)
            return
        if not started.started:
            await self._not_started(job_id, message, started)
            return
        job = started.job
        assert job is not None
        if started.took_over:
            metrics.takeovers.add(1, {"service": self.service, "type": job.type})
        run = Run(
            job_id=job_id,
            message=message,
            lease=lease,
            lease_until=asked_at + self.config.visibility_s,
            margin_s=self.config.lease_margin_s,
            received_at=received_at,
            receipt=message["ReceiptHandle"],
        )
        self.runs[job_id] = run
        try:
            await self._run(job, run)
        finally:
            if self.runs.get(job_id) is run:
                self.runs.pop(job_id)
            run.done.set()

    async def _unreadable(self, job_id: str, message: dict[str, Any], exc: ValidationError) -> None:
        """A row this worker cannot read (written by a newer or broken version) would fail
        every delivery; fail the job with the reason and dead-letter its message."""
        reason = f"the job's record does not validate: {exc.errors(include_url=False)}"[:1000]
        if await self.store.fail_unreadable(job_id, reason):
            log.error("job record unreadable; failed it: %s", reason)
            await self.messages.dead_letter(message["ReceiptHandle"], job_id)
        else:  # failed already (by an earlier delivery): this message is a duplicate
            log.info("job record unreadable and the job failed already; dropping the message")
            await self.messages.delete(message["ReceiptHandle"])

    async def _not_started(
        self, job_id: str, message: dict[str, Any], started: StartResult
    ) -> None:
        receipt, job = message["ReceiptHandle"], started.job
        if job is None:
            log.warning("message for a job that does not exist; dropping it")
            await self.messages.delete(receipt)
        elif job.terminal:
            if started.effects_pending and _stray_copy(message, started):
                # A copy of the job's message (a child's wake, a park's twin) while the run
                # that ended it may still be running the effects: look again once they are
                # likely done, so they do not run twice at once. If they are still pending
                # then (that run died), this copy runs them.
                log.info("job already %s, its effects under way; this copy waits", job.state)
                await self.messages.hide(receipt, int(self.config.effects_retry_s) + 5)
            elif started.effects_pending:  # its run ended before the effects were done
                log.info("job already %s; running its after-end effects", job.state)
                await self.after_end.settle(job, receipt, dead_letter=started.dead_letter)
            elif started.dead_letter:  # its run died between the effects and the move
                await self.messages.dead_letter(receipt, job_id)
            else:
                log.info("job already %s; dropping the duplicate message", job.state)
                await self.messages.delete(receipt)
        elif job.state is JobState.QUEUED:
            # Queued again between the start's write and its read (a reconciler, a retry):
            # try again in a moment rather than decide on a stale read.
            await self.messages.hide(receipt, 1)
        elif started.parked:
            # Parked, and this is neither the message of its next check nor a wake: a stray
            # copy. The parked job's own message (or the reconciler) runs its next check.
            log.info("job is parked and waits on its own message; dropping this one")
            await self.messages.delete(receipt)
        elif started.message_id is not None and started.message_id != message.get("MessageId"):
            # Running elsewhere from another message, which comes back by itself if that
            # worker dies: this one is a duplicate (a wake, a reconciler's, a park's twin).
            log.info("job is running from another message; dropping this duplicate")
            await self.messages.delete(receipt)
        else:
            await self._wait_on_lease(job_id, message, started)

    async def _wait_on_lease(
        self, job_id: str, message: dict[str, Any], started: StartResult
    ) -> None:
        """The job runs elsewhere from this very message, made visible again: come back when
        that lease would have expired, to take over if its worker died. A message received
        this often would reach maxReceiveCount and the DLQ: it is replaced by a fresh one."""
        receipt = message["ReceiptHandle"]
        wait = int(max(1, min(MAX_VISIBILITY_S, started.lease_expires - time.time() + 1)))
        limit = self.config.max_receives
        if limit is not None and receive_count(message) >= limit - 1:
            new = await self.messages.replace(receipt, job_id, delay_s=wait)
            if new is not None:
                await self.store.swap_message(job_id, str(message.get("MessageId")), new)
            log.info("job is running elsewhere; its message was renewed, back in %ss", wait)
            return
        log.info("job is running elsewhere; this message returns in %ss", wait)
        await self.messages.hide(receipt, wait)

    # -- running ---------------------------------------------------------------------------

    async def _run(self, job: Job, run: Run) -> None:
        keep = asyncio.create_task(
            keepalive(
                run,
                store=self.store,
                messages=self.messages,
                config=self.config,
            )
        )
        attributes = {"service": self.service, "type": job.type}
        # The fact goes out beside the handler, not before it: dispatch does not wait on the bus.
        # Once per job: a parked parent runs again at every check, a resumed job is not new.
        started_fact = asyncio.create_task(
            self._started(job) if job.runs == 1 else asyncio.sleep(0)
        )
        try:
            await self.protection.acquire()
            if job.runs == 1:
                metrics.started.add(1, attributes)
                if job.started_at is not None:
                    wait = (job.started_at - job.created_at).total_seconds()
                    metrics.queue_wait.record(wait, attributes)
            log.info(
                "job started", extra={"type": job.type, "run": job.runs, "attempts": job.attempts}
            )
            limit = self.config.max_receives
            if limit is not None and receive_count(run.message) >= limit - 1:
                await detach(run, store=self.store, messages=self.messages, config=self.config)
            if job.takeovers > self.config.max_takeovers:
                reason = (
                    f"its worker died {job.takeovers} times while running it "
                    "(a crash, out of memory, or an event loop blocked past the lease)"
                )
                await self._fail(job, run, reason, dlq=True)
            else:
                await self._execute(job, run)
        finally:
            keep.cancel()
            await started_fact
            if run.ctx is not None:
                run.ctx.kill_children()
            await self.protection.release()

    async def _started(self, job: Job) -> None:
        job_type = self.types.get(job.type)
        if job_type is None or not job_type.internal:
            await publish_fact(self.service, "started", job, self.publisher)

    async def _execute(self, job: Job, run: Run) -> None:
        if job.cancel_requested:  # asked while it was parked, queued for a retry or released
            await self._interrupted(job, run, JobCancelled(job.id))
            return
        # Unknown types and payloads this worker cannot read are retried and end in the DLQ,
        # not deleted: in a rolling deploy the API may be newer than this worker, and a
        # redrive after the deploy runs them.
        job_type = self.types.get(job.type)
        if job_type is None:
            await self._failed_attempt(job, run, DEFAULT_ATTEMPTS, f"unknown job type {job.type!r}")
            return
        try:
            payload = job_type.payload.model_validate(job.payload)
        except ValidationError as exc:
            reason = f"invalid payload: {exc.errors(include_url=False)}"
            await self._failed_attempt(job, run, job_type.max_attempts, reason)
            return
        resume = await self.store.checkpoint_of(job.id) if job.runs > 1 else None
        run.ctx = JobContext(
            job_id=job.id,
            attempt=job.attempts + 1,
            worker=run.lease,
            store=self.store,
            resume=resume,
            log=logging.getLogger(f"longhaul.jobs.{job.type}"),
            owner=job.owner,
            resources=self.resources,
        )
        if self.releasing:  # shutdown's deadline came while this run was starting
            await self._release(job, run)
            return
        if self.stopping:
            run.ctx.stop()
        run.task = start_fenced(job_type.handler(payload, run.ctx), run)
        timeout = job_type.timeout_s
        try:
            output = (
                await asyncio.wait_for(asyncio.shield(run.task), timeout)
                if timeout
                else await run.task
            )
        except TimeoutError:
            run.reason = "timeout"
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
            await self._failed_attempt(
                job, run, job_type.max_attempts, f"timed out after {timeout}s"
            )
            return
        except (JobCancelled, asyncio.CancelledError) as exc:
            await self._interrupted(job, run, exc)
            return
        except JobInterrupted:
            await self._release(job, run)
            return
        except JobParked as exc:
            await self._park(job, run, exc)
            return
        except LeaseLost:  # the fence: resumed after the lease may have lapsed
            await self.let_go(job, run)
            return
        except NonRetryable as exc:
            await self._fail(job, run, str(exc) or type(exc).__name__, dlq=False)
            return
        except Exception as exc:
            log.warning("attempt failed: %s", exc, exc_info=True)
            await self._failed_attempt(
                job, run, job_type.max_attempts, f"{type(exc).__name__}: {exc}"[:1000]
            )
            return
        await self._succeed(job, run, output)

    def stop_all(self) -> None:
        """Stop every run in this process (shutdown's deadline)."""
        for run in list(self.runs.values()):
            stop_run(run, run.reason or "shutdown")


def _stray_copy(message: dict[str, Any], started: StartResult) -> bool:
    """Whether `message` is a first delivery of a message other than the one the job's last
    run started from. The effects' own retries come as fresh messages too: delayed once
    here, they run on their next delivery."""
    return (
        started.message_id is not None
        and started.message_id != message.get("MessageId")
        and receive_count(message) <= 1
    )
