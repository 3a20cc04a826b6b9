"""After-end effects: what must happen once a job is terminal, at least once.

The terminal write sets `effects_pending` on the row, and the job's message is deleted (or
dead-lettered) only after every effect has happened and the flag is cleared. A worker
killed in between, a failed delete, or a bus refusing events leaves the message to come
back, and whichever worker receives it finds the job terminal with effects pending and runs
them again. So every effect runs at least once; each must be idempotent.

The effects: the job's terminal fact (`<service>.job.succeeded|failed|cancelled`), the job
type's `on_end`, a wake for a parked parent whose children have all ended (or one failed),
and the cancellation of a failed or cancelled parent's unfinished children.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from longhaul.jobs.queue import WAKE
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.store import JobStore, parent_of
from longhaul.jobs.submit import fact_of
from longhaul.jobs.types import Job, JobState
from longhaul.jobs.worker import metrics
from longhaul.jobs.worker.config import WorkerConfig
from longhaul.jobs.worker.messages import Messages

__all__ = ["AfterEnd"]

log = logging.getLogger(__name__)

RETRY_DELIVERY_S = 30  # a message whose effects failed comes back this much later


class AfterEnd:
    """Runs a terminal job's effects, then settles its message."""

    def __init__(
        self,
        *,
        service: str,
        types: JobTypes,
        store: JobStore,
        messages: Messages,
        publisher: Any,
        resources: Any,
        config: WorkerConfig,
    ) -> None:
        self.service = service
        self.types = types
        self.store = store
        self.messages = messages
        self.publisher = publisher
        self.resources = resources
        self.config = config

    async def settle(self, job: Job, receipt: str | None, *, dead_letter: bool) -> bool:
        """Run `job`'s effects, then delete its message (or move it to the DLQ). Where an
        effect still fails, the message comes back later to run them again (a fresh one
        where this run holds none); True when everything happened."""
        if await self.run(job):
            if receipt is not None:
                if dead_letter:
                    await self.messages.dead_letter(receipt, job.id)
                else:
                    await self.messages.delete(receipt)
            return True
        rounds = await self.store.effects_failed(job.id)
        metrics.effects_failed.add(1, {"service": self.service, "type": job.type})
        if rounds >= self.config.max_effect_rounds:
            log.error("after-end effects failed %d times; giving up on them", rounds)
            await self.store.effects_done(job.id)
            if receipt is not None:
                await self.messages.delete(receipt)
            return False
        log.warning("after-end effects failed; the job's message returns in %ss", RETRY_DELIVERY_S)
        if receipt is not None:
            await self.messages.replace(receipt, job.id, delay_s=RETRY_DELIVERY_S)
        else:
            await self.messages.send(job.id, delay_s=RETRY_DELIVERY_S)
        return False

    async def run(self, job: Job) -> bool:
        """Run every effect of terminal `job`, retrying those that fail for a few seconds;
        True when all happened (and the row says so)."""
        effects = self._effects(job)
        deadline = time.monotonic() + self.config.effects_retry_s
        delay = 0.25
        while True:
            for name, effect in list(effects.items()):
                try:
                    await effect()
                except Exception as exc:
                    log.warning("after-end effect %s failed: %s", name, exc)
                else:
                    effects.pop(name)
            if not effects:
                await self.store.effects_done(job.id)
                return True
            if time.monotonic() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    def _effects(self, job: Job) -> dict[str, Callable[[], Awaitable[None]]]:
        job_type = self.types.get(job.type)
        effects: dict[str, Callable[[], Awaitable[None]]] = {}
        if job_type is None or not job_type.internal:  # a child's life is its parent's business
            effects["fact"] = lambda: self._fact(job)
        if job_type is not None and job_type.on_end is not None:
            hook = job_type.on_end
            effects["on_end"] = lambda: hook(job, self.resources)
        if job.state is not JobState.SUCCEEDED:
            effects["children"] = lambda: self._cancel_children(job)
        parent = parent_of(job.owner)
        if parent is not None and job.state is not JobState.CANCELLED:  # its parent is ending
            effects["wake"] = lambda: self._wake(parent, job)
        return effects

    async def _fact(self, job: Job) -> None:
        await self.publisher.publish(fact_of(self.service, job.state.value, job))

    async def _wake(self, parent: str, child: Job) -> None:
        """A child ended: if its parent has something to act on (every child ended, or one
        failed), send it a message now rather than leave it parked until its next check.
        Where it is not parked, the wake finds it running or ended and is dropped."""
        if child.state is JobState.FAILED or await self.store.children_ended(
            parent, ended=child.id
        ):
            await self.messages.send(parent, check=WAKE)
            log.debug("woke the parent job %s", parent)

    async def _cancel_children(self, job: Job) -> None:
        """A parent that failed or was cancelled leaves no child running."""
        if count := await self.store.cancel_children(job.id):
            log.info("cancelled %d child jobs", count)
