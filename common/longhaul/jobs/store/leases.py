"""The writes of one run under its lease: start (from queued, a parked check, or a
takeover), heartbeat, progress, checkpoint, park, release and finish, and the reconciler's
requeue of an expired lease. Each is conditional on the lease, so a run that lost it fails
every later write instead of overwriting its successor."""

from __future__ import annotations

import json
import time
from typing import Any

from longhaul.jobs.exceptions import LeaseLost
from longhaul.jobs.queue import WAKE
from longhaul.jobs.store.items import (
    CHECKPOINT_INLINE_BYTES,
    PARKED,
    StartResult,
    is_parked,
    iso,
    job_of,
    to_item,
    utcnow,
)
from longhaul.jobs.store.table import JobTable
from longhaul.jobs.types import TERMINAL, Job, JobState

__all__ = ["JobLeases"]


class JobLeases(JobTable):
    """The lease holder's writes."""

    async def start(
        self,
        job_id: str,
        worker: str,
        lease_s: float,
        message_id: str | None = None,
        check: str | None = None,
    ) -> StartResult:
        """Take the job's lease: from queued; from a parked job, for the message of its next
        check (`check` is the park's token) or a wake (`check` is WAKE); or from a running
        job whose lease expired. `message_id` records the SQS message the run starts from."""
        now = utcnow()
        lease_expires = time.time() + lease_s
        lease: dict[str, Any] = {"lease_owner": worker, "lease_expires": lease_expires}
        if message_id is not None:
            lease["message_id"] = message_id
        sets = {**self._state_fields(JobState.RUNNING, now, job_id), **lease}
        if check is not None:  # a parked job's check or a wake: one write in the usual case
            raw = await self._start_parked(job_id, sets, check, message_id)
            if raw is not None:
                return StartResult(job_of(raw), True, lease_expires)
        raw = await self._update(
            job_id,
            sets,
            "#state = :queued",
            {":queued": "queued"},
            add={"runs": 1},
            if_missing={"started_at": iso(now)},
        )
        if raw is not None:
            job = job_of(raw)  # a row that does not validate raises here, before the history
            await self._event(job_id, "state", JobState.RUNNING, job.progress, None)
            return StartResult(job, True, lease_expires)
        current = await self._get_raw(job_id)
        if current is None:
            return StartResult(None, False)
        if is_parked(current) and check is None and message_id is not None:
            raw = await self._start_parked(job_id, sets, check, message_id)
            if raw is not None:
                return StartResult(job_of(raw), True, lease_expires)
            current = await self._get_raw(job_id) or current
        if (
            current["state"] == "running"
            and not is_parked(current)
            and float(current.get("lease_expires", 0)) < time.time()
        ):
            # Its worker died holding the lease: take over, and count it, so a job that
            # kills every worker it runs on ends failed instead of looping.
            raw = await self._update(
                job_id,
                sets,
                "#state = :running AND #lease_owner = :previous AND #lease_expires < :now",
                {
                    ":running": "running",
                    ":previous": current.get("lease_owner"),
                    ":now": time.time(),
                },
                add={"runs": 1, "takeovers": 1},
            )
            if raw is not None:
                job = job_of(raw)
                await self._event(job_id, "state", JobState.RUNNING, job.progress, None)
                return StartResult(job, True, lease_expires, took_over=True)
            current = await self._get_raw(job_id) or current  # another taker won: see how
        return StartResult(
            job_of(current),
            False,
            float(current.get("lease_expires", 0)),
            current.get("message_id"),
            is_parked(current),
            effects_pending=bool(current.get("effects_pending")),
            dead_letter=bool(current.get("dead_letter")),
        )

    async def _start_parked(
        self, job_id: str, sets: dict[str, Any], check: str | None, message_id: str | None
    ) -> dict[str, Any] | None:
        """Start a parked job's next check: still running, so no state change and no history
        entry. It is run by the message its park sent (`check` is the park's token), by a
        wake, or by the message the parking run started from (back after its visibility
        timeout if the park's send failed); any other message is a stray copy. Each start
        removes the token, so of two such messages the second finds the job running or
        parked anew, and is dropped."""
        condition = "#state = :running AND #lease_owner = :parked"
        values: dict[str, Any] = {":running": "running", ":parked": PARKED}
        if check != WAKE:
            ours = []
            if check is not None:
                ours.append("#park_token = :token")
                values[":token"] = check
            if message_id is not None:
                ours.append("#message_id = :message")
                values[":message"] = message_id
            condition += f" AND ({' OR '.join(ours)})"
        return await self._update(
            job_id, sets, condition, values, remove=("park_token",), add={"runs": 1}
        )

    async def heartbeat(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancellation was requested. `LeaseLost` if the
        lease is no longer this worker's."""
        raw = await self._update(
            job_id,
            {"lease_expires": time.time() + lease_s},
            "#state = :running AND #lease_owner = :w",
            {":running": "running", ":w": worker},
        )
        if raw is None:
            raise LeaseLost(job_id)
        return bool(raw.get("cancel_requested"))

    async def progress(
        self, job_id: str, worker: str, fraction: float, message: str | None
    ) -> None:
        """Record progress (lease holder only)."""
        raw = await self._update(
            job_id,
            {"progress": fraction, "message": message, "updated_at": iso(utcnow())},
            "#state = :running AND #lease_owner = :w",
            {":running": "running", ":w": worker},
        )
        if raw is None:
            raise LeaseLost(job_id)
        await self._event(job_id, "progress", JobState.RUNNING, fraction, message)

    async def checkpoint(self, job_id: str, worker: str, state: Any) -> None:
        """Save `state` for a resume: in the row when small, in S3 when large."""
        encoded = json.dumps(state)
        if len(encoded) <= CHECKPOINT_INLINE_BYTES or self._s3 is None:
            sets: dict[str, Any] = {"checkpoint": state}
            remove: tuple[str, ...] = ("checkpoint_key",)
        else:
            key = f"checkpoints/{job_id}/{time.time_ns()}.json"
            await self._s3.put_object(Bucket=self._bucket, Key=key, Body=encoded.encode())
            sets, remove = {"checkpoint_key": key}, ("checkpoint",)
        raw = await self._update(
            job_id,
            sets,
            "#state = :running AND #lease_owner = :w",
            {":running": "running", ":w": worker},
            remove=remove,
        )
        if raw is None:
            raise LeaseLost(job_id)

    async def park(
        self,
        job_id: str,
        worker: str,
        *,
        token: str,
        delay_s: float,
        grace_s: float,
        message: str | None,
    ) -> Job | None:
        """Park the lease holder's job until its next check in `delay_s`, run by the message
        carrying `token` (or a wake): it stays running, its lease held by nobody. If that
        message never comes, the reconciler takes the job back `grace_s` after the check was
        due. None when the lease is not this worker's, or a cancel was asked for (the
        worker then ends the job cancelled instead)."""
        sets: dict[str, Any] = {
            "lease_owner": PARKED,
            "lease_expires": time.time() + delay_s + grace_s,
            "park_token": token,
            "updated_at": iso(utcnow()),
        }
        if message is not None:
            sets["message"] = message
        raw = await self._update(
            job_id,
            sets,
            "#state = :running AND #lease_owner = :w AND "
            "(attribute_not_exists(#cancel_requested) OR #cancel_requested = :no)",
            {":running": "running", ":w": worker, ":no": False},
        )
        return job_of(raw) if raw is not None else None

    async def release(
        self,
        job_id: str,
        worker: str,
        *,
        error: str | None = None,
        failed_attempt: bool = False,
    ) -> Job | None:
        """Give the job back to the queue (shutdown, or a retry)."""
        sets = self._state_fields(JobState.QUEUED, utcnow(), job_id)
        sets["enqueued_at"] = iso(utcnow())  # its message stays on the queue, delayed or not
        if error is not None:
            sets["error"] = error
        return await self._hand_back(job_id, worker, JobState.QUEUED, sets, error, failed_attempt)

    async def _hand_back(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        sets: dict[str, Any],
        error: str | None,
        failed_attempt: bool,
    ) -> Job | None:
        """The lease holder gives the job up: to `state`, with its history entry."""
        raw = await self._update(
            job_id,
            sets,
            "#state = :running AND #lease_owner = :w",
            {":running": "running", ":w": worker},
            remove=("lease_owner", "lease_expires"),
            add={"attempts": 1} if failed_attempt else None,
        )
        if raw is None:
            return None
        await self._event(job_id, "state", state, float(raw.get("progress", 0)), error)
        return job_of(raw)

    async def finish(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        failed_attempt: bool = False,
        dead_letter: bool = False,
    ) -> Job | None:
        """End the job in a terminal `state` (lease holder only), its after-end effects
        pending until `effects_done`; `dead_letter` records that its message belongs in the
        DLQ, so a delivery after a crash puts it there."""
        assert state in TERMINAL
        now = utcnow()
        sets = {
            **self._state_fields(state, now, job_id),
            "finished_at": iso(now),
            "effects_pending": True,
            "dead_letter": dead_letter,
        }
        if result is not None:
            sets["result"] = result
            sets["progress"] = 1.0
            sets["message"] = None  # the last step's message ("stitching") is over
        if error is not None:
            sets["error"] = error
        return await self._hand_back(job_id, worker, state, sets, error, failed_attempt)

    async def requeue_expired(self, job_id: str) -> bool:
        """Return a running job whose lease expired to the queue (reconciler). A parked job
        whose message was lost is not counted as a takeover: no worker died running it."""
        values = {":running": "running", ":now": time.time(), ":parked": PARKED}
        for owner, add in (
            ("#lease_owner = :parked", None),
            ("(attribute_not_exists(#lease_owner) OR #lease_owner <> :parked)", {"takeovers": 1}),
        ):
            raw = await self._update(
                job_id,
                self._state_fields(JobState.QUEUED, utcnow(), job_id),
                f"#state = :running AND #lease_expires < :now AND {owner}",
                values,
                # No message is on the queue for it until the reconciler's send is recorded.
                remove=("lease_owner", "lease_expires", "park_token", "enqueued_at"),
                add=add,
            )
            if raw is not None:
                return True
        return False

    async def adopt_message(self, job_id: str, worker: str, message_id: str) -> None:
        """Record `message_id` as the message of the lease holder's run (a fresh message in
        place of the one it started from). `LeaseLost` if the lease is not this worker's."""
        raw = await self._update(
            job_id,
            {"message_id": message_id},
            "#state = :running AND #lease_owner = :w",
            {":running": "running", ":w": worker},
        )
        if raw is None:
            raise LeaseLost(job_id)

    async def swap_message(self, job_id: str, old: str, new: str) -> bool:
        """Record `new` as the running job's message in place of `old` (a message renewed
        before it reached maxReceiveCount); False if the job moved on meanwhile."""
        raw = await self._update(
            job_id,
            {"message_id": new},
            "#state = :running AND #message_id = :old",
            {":running": "running", ":old": old},
        )
        return raw is not None

    async def effects_done(self, job_id: str) -> None:
        """The terminal job's after-end effects have all happened."""
        await self._update(
            job_id,
            {"effects_done_at": iso(utcnow())},
            "attribute_exists(PK)",
            {},
            remove=("effects_pending",),
        )

    async def effects_failed(self, job_id: str) -> int:
        """Count one delivery whose after-end effects failed; how many so far."""
        raw = await self._update(
            job_id,
            {"updated_at": iso(utcnow())},
            "attribute_exists(PK)",
            {},
            add={"effects_rounds": 1},
        )
        return int(raw.get("effects_rounds", 0)) if raw is not None else 0

    async def fail_unreadable(self, job_id: str, reason: str) -> bool:
        """Fail a job whose row this version cannot read, whatever its state but terminal;
        False when it was terminal already."""
        now = utcnow()
        raw = await self._update(
            job_id,
            {
                **self._state_fields(JobState.FAILED, now, job_id),
                "finished_at": iso(now),
                "error": reason,
                "dead_letter": True,
            },
            "attribute_exists(PK) AND NOT #state IN (:succeeded, :failed, :cancelled)",
            {":succeeded": "succeeded", ":failed": "failed", ":cancelled": "cancelled"},
            remove=("lease_owner", "lease_expires", "park_token"),
        )
        return raw is not None

    async def claim(self, name: str, holder: str, lease_s: float) -> bool:
        """Take or keep the singleton lease `name` (one reconciler a service): True while
        `holder` has it. A holder that stops renewing loses it `lease_s` later."""
        now = time.time()
        try:
            await self._db.put_item(
                TableName=self._table,
                Item=to_item(
                    {
                        "PK": f"LEASE#{name}",
                        "SK": "LEASE",
                        "holder": holder,
                        "expires": now + lease_s,
                    }
                ),
                ConditionExpression="attribute_not_exists(PK) OR #holder = :me OR #expires < :now",
                ExpressionAttributeNames={"#holder": "holder", "#expires": "expires"},
                ExpressionAttributeValues={
                    ":me": {"S": holder},
                    ":now": {"N": repr(now)},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True
