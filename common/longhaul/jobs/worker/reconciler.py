"""The reconciler: puts back on the queue what lost its message. A job queued with no
message (the API died between the write and the send), a running job whose lease expired
(its worker died and its message is gone), a parked job whose delayed message never came.

One worker of the service reconciles at a time: every worker asks for the reconciler's
lease (a row in the job table) each pass, and only its holder reads the table. So the read
cost is one pass every `reconcile_every_s`, not one per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from longhaul.jobs.store import JobStore, timedelta_ago
from longhaul.jobs.types import JobState
from longhaul.jobs.worker import metrics
from longhaul.jobs.worker.config import WorkerConfig
from longhaul.jobs.worker.messages import Messages
from longhaul.observability import context

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)

RECONCILER_LEASE = "reconciler"


class Reconciler:
    """Re-enqueues jobs that have lost their message."""

    def __init__(
        self,
        *,
        service: str,
        worker_id: str,
        store: JobStore,
        messages: Messages,
        config: WorkerConfig,
    ) -> None:
        self.service = service
        self.worker_id = worker_id
        self.store = store
        self.messages = messages
        self.config = config
        self.passes = 0  # passes this worker ran as the holder of the reconciler's lease

    async def loop(self, stop: asyncio.Event) -> None:
        """Reconcile every `reconcile_every_s` (with jitter) until `stop`."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), self.config.reconcile_every_s * random.uniform(0.8, 1.2)
                )
            if stop.is_set():
                return
            try:
                if await self.store.claim(
                    RECONCILER_LEASE, self.worker_id, self.config.reconcile_every_s * 3
                ):
                    await self.reconcile()
            except Exception:
                log.exception("reconcile failed")

    async def reconcile(self) -> list[str]:
        """One pass: re-enqueue jobs queued without a message and jobs whose lease expired."""
        self.passes += 1
        after = self.config.reconcile_after_s
        fixed: list[str] = []
        # Queued with no message ever sent: the API (or a redrive) stopped between the write
        # and the send. A job whose message was sent is left alone however long it waits in a
        # backlog: re-sending it would only add duplicates and inflate the backlog metric.
        for raw in await self.store.stale(JobState.QUEUED, timedelta_ago(after)):
            if raw.get("enqueued_at") is None:
                fixed.append(raw["id"])
        # Every running job: a long one stays at the head of the index for hours, and
        # would hide an expired lease behind it from a bounded read.
        running = await self.store.stale(JobState.RUNNING, timedelta_ago(after), limit=None)
        rows = await self.store.rows([entry["id"] for entry in running])
        for job_id, raw in rows.items():
            if float(
                raw.get("lease_expires", 0)
            ) < time.time() and await self.store.requeue_expired(job_id):
                fixed.append(job_id)
        for job_id in fixed:
            with context.bind(job=job_id):
                await self.messages.send(job_id)
                await self.store.mark_enqueued(job_id)
                metrics.reconciler_requeues.add(1, {"service": self.service})
                log.warning("reconciler re-enqueued the job")
        return fixed
