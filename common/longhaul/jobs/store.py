"""Jobs in the service's DynamoDB table (single-table design).

Items (key attributes; GSI1 lists a caller's jobs newest first, GSI2 finds jobs by state):

- job: PK `JOB#<id>`, SK `META`; GSI1 `OWNER#<sub>` / `<created>#<id>`;
  GSI2 `STATE#<state>` / `<updated>#<id>`
- job history (the SSE stream): PK `JOB#<id>`, SK `EVENT#<time ns>-<random>`
- idempotency key: PK `IDEM#<sub>#<key>`, SK `IDEM`, holding the job id and a body hash

Every state change is a conditional write: a job starts only from queued (or from running
whose lease has expired), and only the lease holder may heartbeat, checkpoint, retry or
finish it. A lost update or a double start fails the condition instead of happening.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from longhaul.jobs.exceptions import IdempotencyConflict, JobNotFound, LeaseLost
from longhaul.jobs.queue import WAKE
from longhaul.jobs.types import TERMINAL, Job, JobEvent, JobState

__all__ = [
    "CHECKPOINT_INLINE_BYTES",
    "CHILD_OWNER_PREFIX",
    "JobStore",
    "Page",
    "StartResult",
    "child_owner",
    "parent_of",
]

CHECKPOINT_INLINE_BYTES = 32 * 1024  # larger checkpoints go to S3
CHILD_OWNER_PREFIX = "job:"  # child jobs are owned by their parent, never listed to a caller
PARKED = "parked"  # the lease owner of a running job that waits, parked, for its next check
OWNER_INDEX = "GSI1"
STATE_INDEX = "GSI2"

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give JSON-friendly values back."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(_dynamo(v)) for k, v in values.items() if v is not None}


def _dynamo(value: Any) -> Any:
    """JSON values as DynamoDB accepts them (no floats: Decimals)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserialize(v)) for k, v in item.items()}


def _job(values: dict[str, Any]) -> Job:
    return Job.model_validate(values)


def _parked(raw: dict[str, Any]) -> bool:
    return raw.get("state") == "running" and raw.get("lease_owner") == PARKED


def child_owner(job_id: str) -> str:
    """The owner of the child jobs that job `job_id` spawns."""
    return f"{CHILD_OWNER_PREFIX}{job_id}"


def parent_of(owner: str) -> str | None:
    """The id of the job that owns a child job owned by `owner`; None for a caller's job."""
    return owner.removeprefix(CHILD_OWNER_PREFIX) if owner.startswith(CHILD_OWNER_PREFIX) else None


def body_hash(job_type: str, payload: dict[str, Any]) -> str:
    """A stable fingerprint of a submission, to compare idempotent retries."""
    canonical = json.dumps({"type": job_type, "payload": payload}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Page:
    """One page of a listing and the opaque cursor of the next (None at the end)."""

    def __init__(self, jobs: list[Job], cursor: str | None) -> None:
        self.jobs = jobs
        self.cursor = cursor


class StartResult:
    """What `start` found: the job it started, or why it did not."""

    def __init__(
        self,
        job: Job | None,
        started: bool,
        lease_expires: float = 0.0,
        message_id: str | None = None,
        parked: bool = False,
    ) -> None:
        self.job = job
        self.started = started
        self.lease_expires = lease_expires
        self.message_id = message_id  # the SQS message the job's current run started from
        self.parked = parked  # the job waits, parked, for its next check


class JobStore:
    """Reads and conditional writes of jobs in one table."""

    def __init__(
        self, dynamodb: Any, table: str, *, s3: Any = None, bucket: str | None = None
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._s3 = s3
        self._bucket = bucket

    # -- reads -----------------------------------------------------------------------------

    async def _get_raw(self, job_id: str) -> dict[str, Any] | None:
        response = await self._db.get_item(
            TableName=self._table,
            Key=_to_item({"PK": f"JOB#{job_id}", "SK": "META"}),
            ConsistentRead=True,
        )
        return _from_item(response["Item"]) if "Item" in response else None

    async def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job, if it exists and (when `owner` is given) belongs to `owner`."""
        raw = await self._get_raw(job_id)
        if raw is None or (owner is not None and raw["owner"] != owner):
            raise JobNotFound(job_id)  # another caller's job looks exactly like a missing one
        return _job(raw)

    async def checkpoint_of(self, job_id: str) -> Any:
        """The job's last checkpoint (None if it never made one)."""
        raw = await self._get_raw(job_id)
        if raw is None:
            return None
        if "checkpoint_key" in raw and self._s3 is not None:
            body = await self._s3.get_object(Bucket=self._bucket, Key=raw["checkpoint_key"])
            return json.loads(await body["Body"].read())
        return raw.get("checkpoint")

    async def page(
        self,
        owner: str,
        *,
        state: JobState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """The owner's jobs, newest first, `limit` at a time."""
        start = _decode_cursor(cursor, owner) if cursor else None
        jobs: list[Job] = []
        while len(jobs) < limit:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "GSI1PK = :owner",
                "ExpressionAttributeValues": {":owner": {"S": f"OWNER#{owner}"}},
                "ScanIndexForward": False,
                "Limit": limit - len(jobs),
            }
            if state is not None:
                arguments["FilterExpression"] = "#state = :state"
                arguments["ExpressionAttributeNames"] = {"#state": "state"}
                arguments["ExpressionAttributeValues"][":state"] = {"S": state.value}
            if start:
                arguments["ExclusiveStartKey"] = start
            response = await self._db.query(**arguments)
            jobs += [_job(_from_item(item)) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return Page(jobs, _encode_cursor(start) if start else None)

    async def events(self, job_id: str, after: str | None = None) -> list[JobEvent]:
        """The job's history after event id `after`, oldest first."""
        lower = f"EVENT#{after}" if after else "EVENT#"
        response = await self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND SK > :after",
            ExpressionAttributeValues={":pk": {"S": f"JOB#{job_id}"}, ":after": {"S": lower}},
            ConsistentRead=True,
        )
        return [
            JobEvent.model_validate(_from_item(item))
            for item in response.get("Items", [])
            if item["SK"]["S"].startswith("EVENT#")
        ]

    async def stale(
        self, state: JobState, older_than: datetime, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Up to `limit` (None: all) jobs in `state` not updated since `older_than`, oldest
        first (for the reconciler)."""
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while limit is None or len(found) < limit:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": STATE_INDEX,
                "KeyConditionExpression": "GSI2PK = :state AND GSI2SK < :before",
                "ExpressionAttributeValues": {
                    ":state": {"S": f"STATE#{state.value}"},
                    ":before": {"S": _iso(older_than)},
                },
            }
            if limit is not None:
                arguments["Limit"] = limit - len(found)
            if start:
                arguments["ExclusiveStartKey"] = start
            response = await self._db.query(**arguments)
            found += [_from_item(item) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return found

    # -- writes ----------------------------------------------------------------------------

    async def _event(
        self, job_id: str, kind: str, state: JobState, progress: float, message: str | None
    ) -> None:
        event_id = f"{time.time_ns():020d}-{secrets.token_hex(3)}"
        await self._db.put_item(
            TableName=self._table,
            Item=_to_item(
                {
                    "PK": f"JOB#{job_id}",
                    "SK": f"EVENT#{event_id}",
                    "id": event_id,
                    "kind": kind,
                    "state": state.value,
                    "progress": progress,
                    "message": message,
                    "at": _iso(_now()),
                }
            ),
        )

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
        with the same body returns the first job; with another body, `IdempotencyConflict`."""
        now = _now()
        job_id = uuid.uuid4().hex
        fingerprint = body_hash(job_type, payload)
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
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "correlation_id": correlation_id,
            "GSI1PK": f"OWNER#{owner}",
            "GSI1SK": f"{_iso(now)}#{job_id}",
            "GSI2PK": f"STATE#{JobState.QUEUED.value}",
            "GSI2SK": f"{_iso(now)}#{job_id}",
        }
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _to_item(values),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        if idempotency_key is not None:
            writes.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _to_item(
                            {
                                "PK": f"IDEM#{owner}#{idempotency_key}",
                                "SK": "IDEM",
                                "job_id": job_id,
                                "body_hash": fingerprint,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        try:
            await self._db.transact_write_items(TransactItems=writes)
        except self._db.exceptions.TransactionCanceledException:
            if idempotency_key is None:
                raise
            response = await self._db.get_item(
                TableName=self._table,
                Key=_to_item({"PK": f"IDEM#{owner}#{idempotency_key}", "SK": "IDEM"}),
                ConsistentRead=True,
            )
            first = _from_item(response["Item"])
            if first["body_hash"] != fingerprint:
                raise IdempotencyConflict(idempotency_key) from None
            return await self.get(first["job_id"], owner), False
        await self._event(job_id, "state", JobState.QUEUED, 0.0, "submitted")
        return _job(values), True

    async def _update(
        self,
        job_id: str,
        sets: dict[str, Any],
        condition: str,
        condition_values: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        add: dict[str, int] | None = None,
        if_missing: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """One conditional update; the new item, or None when the condition failed."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses = []
        for i, (key, value) in enumerate(sets.items()):
            names[f"#s{i}"] = key
            values[f":s{i}"] = _serialize(_dynamo(value))
            clauses.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(clauses)
        for i, (key, value) in enumerate((if_missing or {}).items()):
            names[f"#m{i}"] = key
            values[f":m{i}"] = _serialize(_dynamo(value))
            expression += f", #m{i} = if_not_exists(#m{i}, :m{i})"
        for i, (key, amount) in enumerate((add or {}).items()):
            names[f"#a{i}"] = key
            values[f":a{i}"] = {"N": str(amount)}
            expression += f", #a{i} = if_not_exists(#a{i}, :zero) + :a{i}"
            values[":zero"] = {"N": "0"}
        if remove:
            for i, key in enumerate(remove):
                names[f"#r{i}"] = key
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        for key, value in condition_values.items():
            values[key] = _serialize(_dynamo(value))
        names.update(
            {
                f"#{name}": name
                for name in (
                    "state",
                    "lease_owner",
                    "lease_expires",
                    "park_token",
                    "message_id",
                    "cancel_requested",
                )
            }
        )
        used = {k: v for k, v in names.items() if k in expression or k in condition}
        try:
            response = await self._db.update_item(
                TableName=self._table,
                Key=_to_item({"PK": f"JOB#{job_id}", "SK": "META"}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return _from_item(response["Attributes"])

    @staticmethod
    def _state_fields(state: JobState, now: datetime, job_id: str) -> dict[str, Any]:
        return {
            "state": state.value,
            "updated_at": _iso(now),
            "GSI2PK": f"STATE#{state.value}",
            "GSI2SK": f"{_iso(now)}#{job_id}",
        }

    async def mark_enqueued(self, job_id: str) -> None:
        """Record that a message for the job is on the queue."""
        await self._update(job_id, {"enqueued_at": _iso(_now())}, "attribute_exists(PK)", {})

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
        now = _now()
        lease_expires = time.time() + lease_s
        lease: dict[str, Any] = {"lease_owner": worker, "lease_expires": lease_expires}
        if message_id is not None:
            lease["message_id"] = message_id
        sets = {**self._state_fields(JobState.RUNNING, now, job_id), **lease}
        if check is not None:  # a parked job's check or a wake: one write in the usual case
            raw = await self._start_parked(job_id, sets, check, message_id)
            if raw is not None:
                return StartResult(_job(raw), True, lease_expires)
        raw = await self._update(
            job_id,
            sets,
            "#state = :queued",
            {":queued": "queued"},
            add={"runs": 1},
            if_missing={"started_at": _iso(now)},
        )
        if raw is not None:
            await self._event(
                job_id, "state", JobState.RUNNING, float(raw.get("progress", 0)), None
            )
            return StartResult(_job(raw), True, lease_expires)
        current = await self._get_raw(job_id)
        if current is None:
            return StartResult(None, False)
        if _parked(current) and check is None and message_id is not None:
            raw = await self._start_parked(job_id, sets, check, message_id)
            if raw is not None:
                return StartResult(_job(raw), True, lease_expires)
            current = await self._get_raw(job_id) or current
        if (
            current["state"] == "running"
            and not _parked(current)
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
                await self._event(
                    job_id, "state", JobState.RUNNING, float(raw.get("progress", 0)), None
                )
                return StartResult(_job(raw), True, lease_expires)
            current = await self._get_raw(job_id) or current  # another taker won: see how
        return StartResult(
            _job(current),
            False,
            float(current.get("lease_expires", 0)),
            current.get("message_id"),
            _parked(current),
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

    async def cancel_requested(self, job_id: str) -> bool:
        """Whether the owner asked for the job to stop."""
        raw = await self._get_raw(job_id)
        return bool(raw and raw.get("cancel_requested"))

    async def progress(
        self, job_id: str, worker: str, fraction: float, message: str | None
    ) -> None:
        """Record progress (lease holder only)."""
        raw = await self._update(
            job_id,
            {"progress": fraction, "message": message, "updated_at": _iso(_now())},
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
            "updated_at": _iso(_now()),
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
        return _job(raw) if raw is not None else None

    async def release(
        self,
        job_id: str,
        worker: str,
        *,
        error: str | None = None,
        failed_attempt: bool = False,
    ) -> Job | None:
        """Give the job back to the queue (shutdown, or a retry)."""
        sets = self._state_fields(JobState.QUEUED, _now(), job_id)
        sets["enqueued_at"] = _iso(_now())  # its message stays on the queue, delayed or not
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
        return _job(raw)

    async def finish(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        failed_attempt: bool = False,
    ) -> Job | None:
        """End the job in a terminal `state` (lease holder only)."""
        assert state in TERMINAL
        now = _now()
        sets = {**self._state_fields(state, now, job_id), "finished_at": _iso(now)}
        if result is not None:
            sets["result"] = result
            sets["progress"] = 1.0
            sets["message"] = None  # the last step's message ("stitching") is over
        if error is not None:
            sets["error"] = error
        return await self._hand_back(job_id, worker, state, sets, error, failed_attempt)

    async def cancel(self, job_id: str, owner: str) -> tuple[Job, bool]:
        """Cancel a queued or parked job at once, or ask a running one to stop. Returns the
        job and whether this call ended it."""
        job = await self.get(job_id, owner)
        while not job.terminal:
            now = _now()
            raw = await self._update(
                job_id,
                {
                    **self._state_fields(JobState.CANCELLED, now, job_id),
                    "finished_at": _iso(now),
                    "cancel_requested": True,
                },
                "#state = :queued OR (#state = :running AND #lease_owner = :parked)",
                {":queued": "queued", ":running": "running", ":parked": PARKED},
                remove=("lease_owner", "lease_expires", "park_token"),
            )
            if raw is not None:
                await self._event(
                    job_id, "state", JobState.CANCELLED, float(raw.get("progress", 0)), "cancelled"
                )
                return _job(raw), True
            # Running under a worker's lease: ask it (a park after this fails, and the worker
            # ends the job cancelled). If the job was queued or parked again in between, loop.
            raw = await self._update(
                job_id,
                {"cancel_requested": True},
                "#state = :running AND #lease_owner <> :parked",
                {":running": "running", ":parked": PARKED},
            )
            if raw is not None:
                return _job(raw), False
            job = await self.get(job_id, owner)
        return job, False

    async def children_ended(self, job_id: str, ended: str | None = None) -> bool:
        """Whether every child job `job_id` spawned is terminal, counting `ended` (the child
        whose end asks) as terminal. The owner index can lag a write by a moment, so a child
        it shows unfinished is read again from the table; of two last children ending
        together, the later one to ask sees both ended."""
        cursor: str | None = None
        while True:
            page = await self.page(child_owner(job_id), limit=100, cursor=cursor)
            for child in page.jobs:
                if child.terminal or child.id == ended:
                    continue
                raw = await self._get_raw(child.id)
                if raw is None or raw["state"] not in {s.value for s in TERMINAL}:
                    return False
            if page.cursor is None:
                return True
            cursor = page.cursor

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
                **self._state_fields(JobState.QUEUED, _now(), job_id),
                "attempts": 0,
                "takeovers": 0,
                "enqueued_at": _iso(_now()),
            },
            "#state = :failed",
            {":failed": "failed"},
            remove=("finished_at", "error"),
        )
        if raw is None:
            return False
        await self._event(
            job_id, "state", JobState.QUEUED, float(raw.get("progress", 0)), "redriven"
        )
        return True

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
                self._state_fields(JobState.QUEUED, _now(), job_id),
                f"#state = :running AND #lease_expires < :now AND {owner}",
                values,
                remove=("lease_owner", "lease_expires", "park_token"),
                add=add,
            )
            if raw is not None:
                return True
        return False


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


class InvalidCursor(ValueError):
    """The cursor was not issued for this caller's listing."""


def _decode_cursor(cursor: str, owner: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error):
        raise InvalidCursor("the cursor is not one this API issued") from None
    if not isinstance(key, dict) or key.get("GSI1PK", {}).get("S") != f"OWNER#{owner}":
        raise InvalidCursor("the cursor is not one this API issued")
    return key


def timedelta_ago(seconds: float) -> datetime:
    """The moment `seconds` ago."""
    return _now() - timedelta(seconds=seconds)
