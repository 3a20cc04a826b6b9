"""Writes from outside a run: submitting (with its idempotency record), cancelling, a
redrive's reset, and marking a job enqueued."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Any

from longhaul.jobs.exceptions import IdempotencyConflict, JobNotFound
from longhaul.jobs.store.items import (
    PARKED,
    body_hash,
    child_owner,
    from_item,
    iso,
    job_of,
    state_key,
    to_item,
    utcnow,
)
from longhaul.jobs.store.queries import JobQueries
from longhaul.jobs.types import Job, JobState

__all__ = ["JobSubmissions"]

log = logging.getLogger(__name__)

# A submission cancelled by another with the same Idempotency-Key reads that one's record
# after each of these pauses (a conflict means it is committing, which takes milliseconds),
# and writes again if the record never appears (it failed), at most this many times.
_LOST_RACE = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
_RECORD_WAITS_S = (0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
_WRITE_ROUNDS = 4


class JobSubmissions(JobQueries):
    """Job writes made by the API, a parent job, the reconciler or a redrive."""

    async def submit(
        self,
        *,
        owner: str,
        job_type: str,
        payload: dict[str, Any],
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Write a queued job; return it and whether it is new. A repeated Idempotency-Key
        with the same body returns the first job, even while the first request's write is
        still committing; with another body, `IdempotencyConflict`."""
        fingerprint = body_hash(job_type, payload)
        record_key = to_item({"PK": f"IDEM#{owner}#{idempotency_key}", "SK": "IDEM"})
        rounds = 0
        while True:
            rounds += 1
            now = utcnow()
            job_id = uuid.uuid4().hex
            values = {
                "PK": f"JOB#{job_id}",
                "SK": "META",
                "id": job_id,
                "type": job_type,
                "owner": owner,
                "state": JobState.QUEUED.value,
                "payload": payload,
                "progress": 0,
                "attempts": 0,
                "runs": 0,
                "cancel_requested": False,
                "created_at": iso(now),
                "updated_at": iso(now),
                "correlation_id": correlation_id,
                "GSI1PK": f"OWNER#{owner}",
                "GSI1SK": f"{iso(now)}#{job_id}",
                "GSI2PK": state_key(JobState.QUEUED.value, job_id),
                "GSI2SK": f"{iso(now)}#{job_id}",
            }
            writes: list[dict[str, Any]] = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_item(values),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            ]
            if idempotency_key is not None:
                writes.append(
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **record_key,
                                **to_item({"job_id": job_id, "body_hash": fingerprint}),
                            },
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    }
                )
            try:
                await self._db.transact_write_items(TransactItems=writes)
            except self._db.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                record = reasons[1].get("Code") if len(reasons) > 1 else None
                if idempotency_key is None or record not in _LOST_RACE:
                    raise
                # Another request with this key holds the record: written already
                # (ConditionalCheckFailed), or still committing (TransactionConflict).
                for delay in _RECORD_WAITS_S:
                    await asyncio.sleep(delay)
                    found = await self._db.get_item(
                        TableName=self._table, Key=record_key, ConsistentRead=True
                    )
                    if "Item" not in found:
                        continue
                    first = from_item(found["Item"])
                    if first["body_hash"] != fingerprint:
                        raise IdempotencyConflict(idempotency_key) from None
                    try:
                        return await self.get(first["job_id"], owner), False
                    except JobNotFound:
                        continue  # the record is visible a moment before the job's row
                # Never written: the other transaction failed. Write again, apart from any
                # request it cancelled along with this one.
                if rounds == _WRITE_ROUNDS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.1 * rounds))
                continue
            try:
                await self._event(job_id, "state", JobState.QUEUED, 0.0, "submitted")
            except Exception as exc:  # the job is written: accepted, with or without history
                log.warning("job %s written without its 'submitted' history entry: %s", job_id, exc)
            return job_of(values), True

    async def mark_enqueued(self, job_id: str) -> None:
        """Record that a message for the job is on the queue."""
        await self._update(job_id, {"enqueued_at": iso(utcnow())}, "attribute_exists(PK)", {})

    async def cancel(self, job_id: str, owner: str) -> tuple[Job, bool]:
        """Cancel a queued or parked job at once, or ask a running one to stop. Returns the
        job and whether this call ended it."""
        job = await self.get(job_id, owner)
        while not job.terminal:
            now = utcnow()
            raw = await self._update(
                job_id,
                {
                    **self._state_fields(JobState.CANCELLED, now, job_id),
                    "finished_at": iso(now),
                    "cancel_requested": True,
                    "effects_pending": True,  # run by the worker that gets its message
                },
                "#state = :queued OR (#state = :running AND #lease_owner = :parked)",
                {":queued": "queued", ":running": "running", ":parked": PARKED},
                remove=("lease_owner", "lease_expires", "park_token"),
            )
            if raw is not None:
                await self._event(
                    job_id, "state", JobState.CANCELLED, float(raw.get("progress", 0)), "cancelled"
                )
                return job_of(raw), True
            # Running under a worker's lease: ask it (a park after this fails, and the worker
            # ends the job cancelled). If the job was queued or parked again in between, loop.
            raw = await self._update(
                job_id,
                {"cancel_requested": True},
                "#state = :running AND #lease_owner <> :parked",
                {":running": "running", ":parked": PARKED},
            )
            if raw is not None:
                return job_of(raw), False
            job = await self.get(job_id, owner)
        return job, False

    async def cancel_children(self, job_id: str) -> int:
        """Cancel every unfinished child job `job_id` spawned; return how many."""
        owner = child_owner(job_id)
        count = 0
        cursor: str | None = None
        while True:
            page = await self.page(owner, limit=100, cursor=cursor)
            for child in page.jobs:
                if not child.terminal:
                    await self.cancel(child.id, owner)
                    count += 1
            if page.cursor is None:
                return count
            cursor = page.cursor

    async def reset_failed(self, job_id: str) -> bool:
        """Give a failed job a fresh set of attempts (a DLQ redrive)."""
        raw = await self._update(
            job_id,
            {
                **self._state_fields(JobState.QUEUED, utcnow(), job_id),
                "attempts": 0,
                "takeovers": 0,
            },
            "#state = :failed",
            {":failed": "failed"},
            # Queued with no message until the redrive's copy is recorded (or the reconciler
            # sends one); the failed run's bookkeeping goes.
            remove=(
                "finished_at",
                "error",
                "enqueued_at",
                "effects_pending",
                "effects_rounds",
                "dead_letter",
            ),
        )
        if raw is None:
            return False
        await self._event(
            job_id, "state", JobState.QUEUED, float(raw.get("progress", 0)), "redriven"
        )
        return True
