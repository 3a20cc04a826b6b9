"""The job worker: long-polls the queue with bounded concurrency and runs each job under a
lease, with a visibility heartbeat, scale-in protection, cancellation, retries with backoff,
a graceful shutdown that hands unfinished jobs straight to another worker, and a reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from longhaul.events.consumer import SqsConsumer
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
from longhaul.jobs.queue import CHECK_ATTRIBUTE, WAKE, enqueue, parse_job_message
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.store import JobStore, StartResult, parent_of, timedelta_ago
from longhaul.jobs.submit import JobResources, publish_fact
from longhaul.jobs.types import Job, JobState
from longhaul.observability import context
from longhaul.observability.tracing import extract, meter, tracer

__all__ = ["JobWorker", "WorkerConfig"]

log = logging.getLogger(__name__)

_started = meter().create_counter("longhaul.jobs.started", description="Job attempts started")
_finished = meter().create_counter("longhaul.jobs.finished", description="Jobs ended, by state")
_retries = meter().create_counter("longhaul.jobs.retries", description="Failed attempts retried")
_duration = meter().create_histogram(
    "longhaul.jobs.duration", unit="s", description="Submit to end"
)
_queue_wait = meter().create_histogram(
    "longhaul.jobs.queue_wait", unit="s", description="Submit to first start"
)

MAX_VISIBILITY_S = 43_200
DEFAULT_ATTEMPTS = 3  # for a job whose type this worker does not know


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker paces itself (see KitSettings for the variables)."""

    visibility_s: int
    concurrency: int = 2
    poll_wait_s: int = 20
    heartbeat_s: float | None = None  # default: a third of the visibility timeout
    cancel_poll_s: float = 1.0
    shutdown_deadline_s: float = 100.0
    reconcile_every_s: float = 30.0
    reconcile_after_s: float = 60.0
    retry_base_s: int = 5
    retry_max_s: int = 900
    max_takeovers: int = 5  # runs that ended with their worker dead before the job is failed

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s * 2 > self.visibility_s:
            raise ValueError(
                f"heartbeat every {self.heartbeat_interval_s}s cannot keep a "
                f"{self.visibility_s}s visibility timeout; use at most half of it"
            )

    @property
    def heartbeat_interval_s(self) -> float:
        """How often a running job's lease and message invisibility are renewed."""
        return self.heartbeat_s or max(1.0, self.visibility_s / 3)


@dataclass
class _Run:
    job_id: str
    receipt: str
    lease: str  # this run's own lease token: fences even another run of this process
    ctx: JobContext | None = None
    task: asyncio.Task[Any] | None = None
    reason: str | None = None  # why the handler task was cancelled: cancel|shutdown|lease|timeout
    done: asyncio.Event = field(default_factory=asyncio.Event)


class JobWorker:
    """Runs the service's jobs (and hands other messages to its event consumer)."""

    def __init__(
        self,
        *,
        service: str,
        types: JobTypes,
        store: JobStore,
        sqs: Any,
        queue_url: str,
        dlq_url: str | None,
        publisher: EventPublisher,
        events: SqsConsumer,
        protection: TaskProtection,
        config: WorkerConfig,
        resources: JobResources | None = None,
    ) -> None:
        self.service = service
        self.types = types
        self.store = store
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.publisher = publisher
        self.events = events
        self.protection = protection
        self.config = config
        self.resources = resources
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runs: dict[str, _Run] = {}
        self._free = config.concurrency  # job slots not taken
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False  # shutdown asked for checkpoints
        self._releasing = False  # shutdown's deadline: no new handler may start

    # -- main loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and reconcile until `stop`, then shut down within the deadline."""
        log.info("job worker started", extra={"worker": self.worker_id, "types": self.types.names})
        reconciler = asyncio.create_task(self._reconcile_loop(stop), name="reconciler")
        try:
            await self._poll(stop)
        finally:
            reconciler.cancel()
            await self.shutdown()

    async def _poll(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            if self._free == 0:  # receive only with a free slot
                self._slot_freed.clear()
                slot = asyncio.ensure_future(self._slot_freed.wait())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({slot, stopping}, return_when=asyncio.FIRST_COMPLETED)
                slot.cancel()
                stopping.cancel()
                continue
            free = min(10, self._free)  # SQS returns at most 10 a receive
            self._free -= free
            receive = asyncio.ensure_future(self._receive(free))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not receive.done():
                receive.cancel()
                self._give_back(free)
                break
            try:
                messages = receive.result()
            except Exception as exc:
                self._give_back(free)
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("receive failed; retrying in %.1fs: %s", delay, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            failures = 0
            jobs = [(m, parse_job_message(m["Body"])) for m in messages]
            others = [m for m, job in jobs if job is None]
            self._give_back(free - (len(messages) - len(others)))
            for message, job in jobs:
                if job is not None:
                    task = asyncio.create_task(self._run_job(message, job.job_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if others:
                try:
                    await self.events.handle(others)
                except Exception:
                    log.exception("settling event messages failed")

    def _give_back(self, count: int) -> None:
        if count > 0:
            self._free += count
            self._slot_freed.set()

    async def _receive(self, count: int) -> list[dict[str, Any]]:
        response = await self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self.config.poll_wait_s,
            VisibilityTimeout=self.config.visibility_s,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    # -- one job -------------------------------------------------------------------------

    async def _run_job(self, message: dict[str, Any], job_id: str) -> None:
        attributes = message.get("MessageAttributes", {})
        correlation = attributes.get("correlation_id", {}).get("StringValue")
        parent = extract({"traceparent": attributes.get("traceparent", {}).get("StringValue", "")})
        try:
            with (
                context.bind(correlation=correlation or context.new_correlation_id(), job=job_id),
                tracer().start_as_current_span(
                    "run job", context=parent, attributes={"longhaul.job.id": job_id}
                ),
            ):
                await self._attempt(message, job_id)
        except Exception:
            log.exception("job runtime error; the message will come back")
        finally:
            self._give_back(1)

    async def _attempt(self, message: dict[str, Any], job_id: str) -> None:
        receipt = message["ReceiptHandle"]
        lease = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        check = message.get("MessageAttributes", {}).get(CHECK_ATTRIBUTE, {}).get("StringValue")
        started = await self.store.start(
            job_id, lease, self.config.visibility_s, message.get("MessageId"), check
        )
        if not started.started:
            await self._not_started(job_id, message, started)
            return
        job = started.job
        assert job is not None
        run = _Run(job_id, receipt, lease)
        self.runs[job_id] = run
        try:
            await self._run(job, run)
        finally:
            if self.runs.get(job_id) is run:
                self.runs.pop(job_id)
            run.done.set()

    async def _run(self, job: Job, run: _Run) -> None:
        await self.protection.acquire()
        if job.runs == 1:  # jobs, not runs: resumes and a parked parent's checks are not new
            _started.add(1, {"service": self.service, "type": job.type})
        if job.runs == 1 and job.started_at is not None:
            _queue_wait.record(
                (job.started_at - job.created_at).total_seconds(), {"type": job.type}
            )
        log.info("job started", extra={"type": job.type, "run": job.runs, "attempts": job.attempts})
        # The fact goes out beside the handler, not before it: dispatch does not wait on the bus.
        # Once per job: a parked parent runs again at every check, a resumed job is not new.
        started_fact = asyncio.create_task(
            self._fact("started", job) if job.runs == 1 else asyncio.sleep(0)
        )
        keepalive = asyncio.create_task(self._keepalive(run))
        try:
            if job.takeovers > self.config.max_takeovers:
                reason = (
                    f"its worker died {job.takeovers} times while running it "
                    "(a crash, out of memory, or an event loop blocked past the lease)"
                )
                await self._fail(job, run, reason, dlq=True)
            else:
                await self._execute(job, run)
        finally:
            keepalive.cancel()
            await started_fact
            if run.ctx is not None:
                run.ctx.kill_children()
            await self.protection.release()

    async def _not_started(
        self, job_id: str, message: dict[str, Any], started: StartResult
    ) -> None:
        receipt, job = message["ReceiptHandle"], started.job
        if job is None:
            log.warning("message for a job that does not exist; dropping it")
            await self._delete(receipt)
        elif job.terminal:
            log.info("job already %s; dropping the duplicate message", job.state)
            await self._delete(receipt)
            if job.state is JobState.CANCELLED:  # cancelled while queued: no run saw its end
                await self._on_end(job)
        elif job.state is JobState.QUEUED:
            # Queued again between the start's write and its read (a reconciler, a retry):
            # try again in a moment rather than decide on a stale read.
            await self._visibility(receipt, 1)
        elif started.parked:
            # Parked, and this is neither the message of its next check nor a wake: a stray
            # copy. The parked job's own message (or the reconciler) runs its next check.
            log.info("job is parked and waits on its own message; dropping this one")
            await self._delete(receipt)
        elif started.message_id is not None and started.message_id != message.get("MessageId"):
            # Running elsewhere from another message, which comes back by itself if that
            # worker dies: this one is a duplicate (a wake, a reconciler's, a park's twin).
            # Kept, it would come back at every lease expiry and end in the DLQ.
            log.info("job is running from another message; dropping this duplicate")
            await self._delete(receipt)
        else:
            # Running elsewhere from this very message, made visible again: come back when
            # that lease would have expired, to take over if its worker died.
            wait = int(max(1, min(MAX_VISIBILITY_S, started.lease_expires - time.time() + 1)))
            log.info("job is running elsewhere; this message returns in %ss", wait)
            await self._visibility(receipt, wait)

    async def _execute(self, job: Job, run: _Run) -> None:
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
        if self._releasing:  # shutdown's deadline came while this run was starting
            await self._release(job, run)
            return
        if self._stopping:
            run.ctx.stop()
        run.task = asyncio.create_task(job_type.handler(payload, run.ctx))
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
        except LeaseLost:
            log.warning("lease lost; another worker owns the job now")
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
        result = output.model_dump(mode="json") if isinstance(output, BaseModel) else (output or {})
        finished = await self.store.finish(job.id, run.lease, JobState.SUCCEEDED, result=result)
        if finished is None:
            log.warning("lease lost before the result was written; another worker will redo it")
            return
        await self._delete(run.receipt)
        self._ended(finished)
        log.info("job succeeded")
        await self._fact("succeeded", finished)

    async def _interrupted(self, job: Job, run: _Run, exc: BaseException) -> None:
        ctx_cancelled = run.ctx is not None and run.ctx.cancelled
        if isinstance(exc, JobCancelled) or run.reason == "cancel" or ctx_cancelled:
            finished = await self.store.finish(
                job.id, run.lease, JobState.CANCELLED, error="cancelled"
            )
            if finished is not None:
                await self._delete(run.receipt)
                self._ended(finished)
                log.info("job cancelled")
                await self._fact("cancelled", finished)
        elif run.reason == "lease":
            log.warning("lease lost; stopped without writing")
        else:  # shutdown
            await self._release(job, run)

    async def _release(self, job: Job, run: _Run) -> None:
        await self.store.release(job.id, run.lease)
        await self._visibility(
            run.receipt, 0
        )  # another worker resumes it now, not after the timeout
        log.info("job released for another worker to resume")

    async def _park(self, job: Job, run: _Run, parked: JobParked) -> None:
        delay_s = max(0, min(900, parked.delay_s))  # SQS delays reach 15 minutes
        token = uuid.uuid4().hex
        written = await self.store.park(
            job.id,
            run.lease,
            token=token,
            delay_s=delay_s,
            # A delayed message can wait in a backlog: the reconciler steps in only well past
            # the check, as it does for a queued job without a message.
            grace_s=self.config.visibility_s + self.config.reconcile_after_s * 10,
            message=parked.message,
        )
        if written is None:
            if await self.store.cancel_requested(job.id):  # asked while this check ran
                await self._interrupted(job, run, JobCancelled(job.id))
            return
        # A fresh message, not this one made invisible again: every receive counts towards
        # the queue's maxReceiveCount, and a parent checks on its children many times. Only
        # the message with this token (or a wake) runs the next check; a stray copy is
        # dropped. Sent before the delete: a crash in between leaves a stray copy.
        await enqueue(self.sqs, self.queue_url, job.id, delay_s=delay_s, check=token)
        await self._delete(run.receipt)
        log.debug("job parked for %ss: %s", parked.delay_s, parked.message)

    async def _failed_attempt(self, job: Job, run: _Run, max_attempts: int, reason: str) -> None:
        attempts = job.attempts + 1
        if attempts >= max_attempts:
            await self._fail(
                job,
                run,
                f"failed after {attempts} attempts: {reason}",
                dlq=True,
                failed_attempt=True,
            )
            return
        released = await self.store.release(job.id, run.lease, error=reason, failed_attempt=True)
        if released is None:
            return
        delay = self.backoff_s(attempts)
        await self._visibility(run.receipt, delay)
        _retries.add(1, {"service": self.service, "type": job.type})
        log.warning(
            "attempt %d of %d failed; retrying in %ds",
            attempts,
            max_attempts,
            delay,
            extra={"reason": reason},
        )

    def backoff_s(self, attempts: int) -> int:
        """Delay before the next attempt: exponential in the failed attempts, with jitter in
        the upper half of each step, so a later attempt always waits longer than an earlier one."""
        ceiling = min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempts - 1))
        return max(1, math.ceil(random.uniform(ceiling / 2, ceiling)))

    async def _fail(
        self, job: Job, run: _Run, reason: str, *, dlq: bool, failed_attempt: bool = False
    ) -> None:
        finished = await self.store.finish(
            job.id, run.lease, JobState.FAILED, error=reason, failed_attempt=failed_attempt
        )
        if finished is None:
            return
        if dlq and self.dlq_url:
            await self._to_dlq(run.receipt, job.id)
        else:
            await self._delete(run.receipt)
        self._ended(finished)
        log.error("job failed: %s", reason)
        await self._fact("failed", finished)

    async def _to_dlq(self, receipt: str, job_id: str) -> None:
        """Move the job's message to the DLQ (copy, then delete), where redrive finds it."""
        await enqueue(self.sqs, str(self.dlq_url), job_id)
        await self._delete(receipt)

    async def _keepalive(self, run: _Run) -> None:
        """Renew the lease (then the message's invisibility, best effort) and watch for a
        cancel request. If the lease cannot be renewed before it expires, stop the run: by
        then another worker may own the job."""
        interval = self.config.heartbeat_interval_s
        next_beat = time.monotonic() + interval
        lease_until = time.monotonic() + self.config.visibility_s
        while True:
            await asyncio.sleep(self.config.cancel_poll_s)
            cancel = False
            try:
                cancel = await self.store.cancel_requested(run.job_id)
                if time.monotonic() >= next_beat:
                    beat_at = time.monotonic()
                    cancel = (
                        await self.store.heartbeat(run.job_id, run.lease, self.config.visibility_s)
                        or cancel
                    )
                    lease_until = beat_at + self.config.visibility_s
                    next_beat = beat_at + interval
                    try:
                        await self._visibility(run.receipt, self.config.visibility_s)
                    except Exception as exc:  # the lease, not the message, fences the job
                        log.warning("could not extend the message's visibility: %s", exc)
                    await self.protection.renew_if_due()
            except LeaseLost:
                self._stop_run(run, "lease")
                return
            except Exception as exc:
                log.warning("heartbeat failed; trying again shortly: %s", exc)
                next_beat = time.monotonic()  # at the next tick, not a whole interval later
                if time.monotonic() >= lease_until:
                    log.error("lease expired without a heartbeat; stopping the run")
                    self._stop_run(run, "lease")
                    return
                continue
            if cancel and run.ctx is not None and not run.ctx.cancelled:
                run.reason = "cancel"
                run.ctx.cancel()  # kills child processes at once
                if run.task is not None:
                    run.task.cancel()

    @staticmethod
    def _stop_run(run: _Run, reason: str) -> None:
        run.reason = reason
        if run.ctx is not None:
            run.ctx.kill_children()
        if run.task is not None:
            run.task.cancel()

    # -- shutdown ------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Ask running jobs to checkpoint, wait for them until the deadline nears, then stop
        the rest and make their messages visible at once."""
        if not self.runs and not self._tasks:
            return
        deadline = time.monotonic() + self.config.shutdown_deadline_s
        log.info("shutting down", extra={"running": sorted(self.runs)})
        self._stopping = True
        for run in list(self.runs.values()):
            if run.ctx is not None:
                run.ctx.stop()
        # Leave a tenth of the deadline (at most 10 s) to release what is still running.
        grace = deadline - min(10.0, self.config.shutdown_deadline_s / 10)
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, grace - time.monotonic()))
        self._releasing = True
        for run in list(self.runs.values()):
            self._stop_run(run, run.reason or "shutdown")
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=max(0.1, deadline - time.monotonic()))
        log.info("shutdown complete", extra={"unfinished": sorted(self.runs)})

    # -- reconciler ----------------------------------------------------------------------

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), self.config.reconcile_every_s * random.uniform(0.8, 1.2)
                )
            if stop.is_set():
                return
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed")

    async def reconcile(self) -> list[str]:
        """Re-enqueue jobs left queued without a message, and jobs whose lease expired."""
        after = self.config.reconcile_after_s
        fixed: list[str] = []
        for raw in await self.store.stale(JobState.QUEUED, timedelta_ago(after)):
            enqueued = raw.get("enqueued_at")
            if enqueued is None or enqueued < timedelta_ago(after * 10).isoformat():
                fixed.append(raw["id"])
        # Every running job: a long one stays at the head of the index for hours, and
        # would hide an expired lease behind it from a bounded read.
        for raw in await self.store.stale(JobState.RUNNING, timedelta_ago(after), limit=None):
            if float(
                raw.get("lease_expires", 0)
            ) < time.time() and await self.store.requeue_expired(raw["id"]):
                fixed.append(raw["id"])
        for job_id in fixed:
            with context.bind(job=job_id):
                await enqueue(self.sqs, self.queue_url, job_id)
                await self.store.mark_enqueued(job_id)
                log.warning("reconciler re-enqueued the job")
        return fixed

    # -- helpers -------------------------------------------------------------------------

    async def _delete(self, receipt: str) -> None:
        await self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)

    async def _visibility(self, receipt: str, seconds: int) -> None:
        await self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
        )

    def _ended(self, job: Job) -> None:
        _finished.add(1, {"service": self.service, "type": job.type, "state": job.state.value})
        if job.finished_at is not None:
            _duration.record((job.finished_at - job.created_at).total_seconds(), {"type": job.type})
        if job.state is not JobState.SUCCEEDED:
            self._background(self._cancel_children(job.id))
        if (parent := parent_of(job.owner)) is not None and job.state is not JobState.CANCELLED:
            self._background(self._wake(parent, job))  # a cancelled child's parent is ending
        self._background(self._on_end(job))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the job; shutdown waits for it like for a job."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_end(self, job: Job) -> None:
        job_type = self.types.get(job.type)
        if job_type is None or job_type.on_end is None:
            return
        try:
            await job_type.on_end(job, self.resources)
        except Exception:
            log.exception("the job type's end hook failed")

    async def _wake(self, parent: str, child: Job) -> None:
        """A child ended: if its parent has something to act on (every child ended, or one
        failed), send it a message now rather than leave it parked until its next check.
        Where it is not parked, the wake finds it running or ended and is dropped."""
        try:
            if child.state is JobState.FAILED or await self.store.children_ended(
                parent, ended=child.id
            ):
                await enqueue(self.sqs, self.queue_url, parent, check=WAKE)
                log.debug("woke the parent job %s", parent)
        except Exception as exc:  # its next check comes anyway
            log.warning("could not wake the parent job: %s", exc)

    async def _cancel_children(self, job_id: str) -> None:
        """A parent that failed or was cancelled leaves no child running."""
        try:
            if count := await self.store.cancel_children(job_id):
                log.info("cancelled %d child jobs", count)
        except Exception as exc:
            log.warning("could not cancel child jobs: %s", exc)

    async def _fact(self, fact: str, job: Job) -> None:
        """Publish `<service>.job.<fact>`; the bus being down never fails a job."""
        job_type = self.types.get(job.type)
        if job_type is not None and job_type.internal:
            return  # a child job's life is its parent's business
        await publish_fact(self.service, fact, job, self.publisher)
