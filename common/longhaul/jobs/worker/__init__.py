"""The job worker: long-polls the queue with bounded concurrency and hands each job message
to the runner (one run under one lease), event messages to the service's consumer; runs the
reconciler; drains on request; and shuts down within the stop timeout, handing unfinished
jobs straight to another worker.

Modules: `config` (pacing), `run` (one run's lifecycle), `keepalive` (the lease, its fence
and heartbeat), `effects` (after-end effects, at least once), `messages` (a job's messages
on the queue), `reconciler`, `metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from typing import Any

from longhaul.events.consumer import SqsConsumer
from longhaul.events.publisher import EventPublisher
from longhaul.jobs.protection import TaskProtection
from longhaul.jobs.queue import parse_job_message
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.store import JobStore
from longhaul.jobs.submit import JobResources
from longhaul.jobs.worker.config import WorkerConfig
from longhaul.jobs.worker.effects import AfterEnd
from longhaul.jobs.worker.messages import Messages
from longhaul.jobs.worker.reconciler import Reconciler
from longhaul.jobs.worker.run import JobRunner
from longhaul.observability import context
from longhaul.observability.tracing import extract, tracer

__all__ = ["JobWorker", "WorkerConfig"]

log = logging.getLogger(__name__)


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
        self.sqs = sqs
        self.queue_url = queue_url
        self.events = events
        self.protection = protection
        self.config = config
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.messages = Messages(service, sqs, queue_url, dlq_url)
        after_end = AfterEnd(
            service=service,
            types=types,
            store=store,
            messages=self.messages,
            publisher=publisher,
            resources=resources,
            config=config,
        )
        self.runner = JobRunner(
            service=service,
            worker_id=self.worker_id,
            types=types,
            store=store,
            messages=self.messages,
            after_end=after_end,
            publisher=publisher,
            protection=protection,
            config=config,
            resources=resources,
        )
        self.reconciler = Reconciler(
            service=service,
            worker_id=self.worker_id,
            store=store,
            messages=self.messages,
            config=config,
        )
        self._free = config.concurrency  # job slots not taken
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.draining = False

    @property
    def runs(self) -> dict[str, Any]:
        """The runs in progress, by job id."""
        return self.runner.runs

    def drain(self) -> None:
        """Stop taking messages; the runs in progress go on to their end, and scale-in
        protection lapses when the last one ends, so a deployment can replace this task."""
        if not self.draining:
            log.info("draining: no new jobs; %d running", len(self.runner.runs))
        self.draining = True
        self._slot_freed.set()

    # -- main loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and reconcile until `stop`, then shut down within the deadline."""
        log.info("job worker started", extra={"worker": self.worker_id, "types": self.types.names})
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGUSR1, self.drain)
        reconciler = asyncio.create_task(self.reconciler.loop(stop), name="reconciler")
        protection = asyncio.create_task(self._renew_protection(stop), name="protection")
        try:
            await self._poll(stop)
        finally:
            reconciler.cancel()
            protection.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGUSR1)
            await self.shutdown()

    async def _renew_protection(self, stop: asyncio.Event) -> None:
        """Renew scale-in protection before it expires, apart from any job's keepalive (the
        ECS agent's answers must never delay a lease's renewal)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 60)
            try:
                await self.protection.renew_if_due()
            except Exception as exc:
                log.warning("could not renew task protection: %s", exc)

    async def _wait(self, stop: asyncio.Event) -> None:
        """Until a slot frees up, a drain is asked for, or `stop`."""
        self._slot_freed.clear()
        slot = asyncio.ensure_future(self._slot_freed.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({slot, stopping}, return_when=asyncio.FIRST_COMPLETED)
        slot.cancel()
        stopping.cancel()

    async def _poll(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            if self.draining:
                await stop.wait()
                return
            if self._free == 0:  # receive only with a free slot
                await self._wait(stop)
                continue
            free = min(10, self._free)  # SQS returns at most 10 a receive
            self._free -= free
            receive = asyncio.ensure_future(self._receive(free))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not receive.done():
                if self.runner.runs:
                    # Not cancelled: the shutdown's releases send messages this long poll may
                    # get, and a dropped call would hide them for a visibility timeout. Let it
                    # finish and hand back what it got.
                    self._background(self._hand_back(receive, free))
                else:  # idle: nothing of ours is on its way; stop at once
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
            received_at = time.monotonic()
            jobs = [(m, parse_job_message(m["Body"])) for m in messages]
            others = [m for m, job in jobs if job is None]
            self._give_back(free - (len(messages) - len(others)))
            for message, job in jobs:
                if job is not None:
                    self._background(self._run_job(message, job.job_id, received_at))
            if others:
                try:
                    await self.events.feed(others)
                except Exception:
                    log.exception("settling event messages failed")

    async def _hand_back(self, receive: asyncio.Future[list[dict[str, Any]]], free: int) -> None:
        """Make what a receive still in flight at shutdown gets visible again at once."""
        try:
            messages = await receive
        except Exception:
            return
        finally:
            self._give_back(free)
        for message in messages:
            try:
                await self.messages.hide(message["ReceiptHandle"], 0)
            except Exception as exc:  # it comes back after its visibility timeout instead
                log.warning("could not hand a message back: %s", exc)

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

    async def _run_job(self, message: dict[str, Any], job_id: str, received_at: float) -> None:
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
                await self.runner.attempt(message, job_id, received_at)
        except Exception:
            log.exception("job runtime error; the message will come back")
        finally:
            self._give_back(1)

    def _background(self, work: Any) -> None:
        """Run `work` beside the loop; shutdown waits for it."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reconcile(self) -> list[str]:
        """One reconciler pass (whoever holds the reconciler's lease)."""
        return await self.reconciler.reconcile()

    # -- shutdown ------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Ask running jobs to checkpoint, wait for them until the deadline nears, then stop
        the rest and make their messages visible at once."""
        try:
            await self.events.close()  # the event messages gathered and not yet handled
        except Exception:  # they reappear after their visibility timeout
            log.exception("settling gathered event messages failed")
        runs = self.runner.runs
        if not runs and not self._tasks:
            return
        deadline = time.monotonic() + self.config.shutdown_deadline_s
        log.info("shutting down", extra={"running": sorted(runs)})
        self.runner.stopping = True
        for run in list(runs.values()):
            if run.ctx is not None:
                run.ctx.stop()
        # Leave a tenth of the deadline (at most 10 s) to release what is still running.
        grace = deadline - min(10.0, self.config.shutdown_deadline_s / 10)
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, grace - time.monotonic()))
        self.runner.releasing = True
        self.runner.stop_all()
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=max(0.1, deadline - time.monotonic()))
        log.info("shutdown complete", extra={"unfinished": sorted(runs)})
