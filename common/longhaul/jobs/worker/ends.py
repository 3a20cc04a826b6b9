"""The ends of a run: each a conditional write under the run's lease, then what it means
for the job's message. Succeeded, failed, cancelled: the terminal write, then the after-end
effects, then the message is deleted or dead-lettered. Retried, released: back to queued
with a fresh message (delayed by the backoff for a retry). Parked: a fresh delayed message
carrying the park's token."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import uuid
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from longhaul.jobs.exceptions import JobCancelled, JobParked
from longhaul.jobs.store import JobStore, UnstorableNumber, unstorable_numbers
from longhaul.jobs.types import Job, JobState
from longhaul.jobs.worker import metrics
from longhaul.jobs.worker.config import WorkerConfig
from longhaul.jobs.worker.effects import AfterEnd
from longhaul.jobs.worker.keepalive import Run
from longhaul.jobs.worker.messages import Messages

__all__ = ["RESULT_LIMIT_BYTES", "RunEnds"]

log = logging.getLogger(__name__)

# DynamoDB items hold 400 KB; the row also carries the payload, a checkpoint of up to 32 KB
# and bookkeeping. A larger result fails the job with a reason instead of failing the write.
RESULT_LIMIT_BYTES = 256 * 1024


class RunEnds:
    """How a run ends; the runner supplies the store, messages, effects and pacing."""

    service: str
    store: JobStore
    messages: Messages
    after_end: AfterEnd
    config: WorkerConfig

    async def _succeed(self, job: Job, run: Run, output: Any) -> None:
        result = output.model_dump(mode="json") if isinstance(output, BaseModel) else (output or {})
        size = len(json.dumps(result).encode())
        if size > RESULT_LIMIT_BYTES:
            reason = (
                f"the result is {size // 1024} KB, over the {RESULT_LIMIT_BYTES // 1024} KB a "
                "job's result may hold; store large outputs in the bucket and return their keys"
            )
            await self._fail(job, run, reason, dlq=False)
            return
        for path, number in unstorable_numbers(result):
            reason = f"the result cannot be stored: {UnstorableNumber(('result', *path), number)}"
            await self._fail(job, run, reason, dlq=False)
            return
        finished = await self._finish(job, run, JobState.SUCCEEDED, result=result)
        if finished is None:
            return
        log.info("job succeeded")
        await self._ended(finished, run, dead_letter=False)

    async def _finish(
        self,
        job: Job,
        run: Run,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        failed_attempt: bool = False,
        dead_letter: bool = False,
    ) -> Job | None:
        """The terminal write, retried while the lease holds (throttling, 5xx, a hung call).
        A record DynamoDB refuses as too large ends the job failed with that reason."""
        delay = 0.5
        while True:
            try:
                finished = await self.store.finish(
                    job.id,
                    run.lease,
                    state,
                    result=result,
                    error=error,
                    failed_attempt=failed_attempt,
                    dead_letter=dead_letter,
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ValidationException" and result is not None:
                    state, result = JobState.FAILED, None
                    error = f"the job's final record was refused by DynamoDB: {exc}"[:1000]
                    continue
                if not run.alive:
                    log.error("could not write the job's end before its lease ran out: %s", exc)
                    return None
                log.warning("writing the job's end failed; retrying: %s", exc)
            except Exception as exc:
                if not run.alive:
                    log.error("could not write the job's end before its lease ran out: %s", exc)
                    return None
                log.warning("writing the job's end failed; retrying: %s", exc)
            else:
                if finished is None:
                    log.warning("lease lost before the job's end was written")
                return finished
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    async def _ended(self, job: Job, run: Run, *, dead_letter: bool) -> None:
        attributes = {"service": self.service, "type": job.type}
        metrics.finished.add(1, {**attributes, "state": job.state.value})
        if job.finished_at is not None:
            metrics.duration.record((job.finished_at - job.created_at).total_seconds(), attributes)
        await self.after_end.settle(job, run.receipt, dead_letter=dead_letter)

    async def _interrupted(self, job: Job, run: Run, exc: BaseException) -> None:
        ctx_cancelled = run.ctx is not None and run.ctx.cancelled
        if isinstance(exc, JobCancelled) or run.reason == "cancel" or ctx_cancelled:
            finished = await self._finish(job, run, JobState.CANCELLED, error="cancelled")
            if finished is not None:
                log.info("job cancelled")
                await self._ended(finished, run, dead_letter=False)
        elif run.reason in {"lapse", "lease"}:
            await self.let_go(job, run)
        else:  # shutdown
            await self._release(job, run)

    async def let_go(self, job: Job, run: Run) -> None:
        """The run stopped because its lease lapsed or was taken. If no other run took it
        (a slow or hung AWS call, a stalled loop, a frozen process), hand the job back at
        once, so another worker resumes it now and no takeover is counted against a job that
        did nothing wrong; the write is conditional on this run's lease, so it is refused if
        another run has the job."""
        metrics.leases_lost.add(1, {"service": self.service, "type": job.type})
        if await self._release(job, run):
            log.warning("lease about to lapse; the job was handed back for another worker")
        else:
            log.warning("lease lost; another run has the job, stopped without writing")

    async def _release(self, job: Job, run: Run) -> bool:
        """Hand the job back for another worker to resume now, with a fresh message (so
        releases never count towards the queue's maxReceiveCount); False if the lease is no
        longer this run's."""
        if await self.store.release(job.id, run.lease) is None:
            return False
        if run.receipt is not None:
            await self.messages.replace(run.receipt, job.id)
        else:
            await self.messages.send(job.id)
        log.info("job released for another worker to resume")
        return True

    async def _park(self, job: Job, run: Run, parked: JobParked) -> None:
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
        await self.messages.send(job.id, delay_s=delay_s, check=token)
        if run.receipt is not None:
            await self.messages.delete(run.receipt)
        log.debug("job parked for %ss: %s", parked.delay_s, parked.message)

    async def _failed_attempt(self, job: Job, run: Run, max_attempts: int, reason: str) -> None:
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
        # A fresh message delayed by the backoff: a retry is not a receive towards the DLQ.
        if run.receipt is not None:
            await self.messages.replace(run.receipt, job.id, delay_s=delay)
        else:
            await self.messages.send(job.id, delay_s=delay)
        metrics.retries.add(1, {"service": self.service, "type": job.type})
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
        self, job: Job, run: Run, reason: str, *, dlq: bool, failed_attempt: bool = False
    ) -> None:
        dead_letter = dlq and self.messages.dlq_url is not None
        finished = await self._finish(
            job,
            run,
            JobState.FAILED,
            error=reason,
            failed_attempt=failed_attempt,
            dead_letter=dead_letter,
        )
        if finished is None:
            return
        log.error("job failed: %s", reason)
        await self._ended(finished, run, dead_letter=dead_letter)
