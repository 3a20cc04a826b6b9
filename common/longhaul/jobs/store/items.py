"""How a job is an item: serialization, keys, cursors, and the small values the store
returns. Shared by the store's modules; nothing here talks to DynamoDB."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from longhaul.jobs.types import Job

__all__ = [
    "CHECKPOINT_INLINE_BYTES",
    "CHILD_OWNER_PREFIX",
    "InvalidCursor",
    "Page",
    "StartResult",
    "UnstorableNumber",
    "body_hash",
    "child_owner",
    "parent_of",
    "timedelta_ago",
    "unstorable_numbers",
]

CHECKPOINT_INLINE_BYTES = 32 * 1024  # larger checkpoints go to S3
CHILD_OWNER_PREFIX = "job:"  # child jobs are owned by their parent, never listed to a caller
PARKED = "parked"  # the lease owner of a running job that waits, parked, for its next check
OWNER_INDEX = "GSI1"
STATE_INDEX = "GSI2"
# The state index's partitions per state. The index is written only when a job changes
# state (heartbeats, progress and checkpoints touch nothing it holds), but every start,
# park and end of a running job would still land on the one key `STATE#running`; an index
# partition takes about 1,000 writes a second, and a throttled index throttles the table.
# Four keys take four times that; each reconciler pass queries each of them.
STATE_SHARDS = 4

serialize = TypeSerializer().serialize
deserialize = TypeDeserializer().deserialize


def utcnow() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """`moment` as the store writes times (sortable ISO 8601, microseconds)."""
    return moment.isoformat(timespec="microseconds")


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give JSON-friendly values back."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [plain(v) for v in value]
    return value


# DynamoDB's numbers: at most 38 significant digits, magnitudes from 1e-130 to under 1e126.
# AWS refuses any other with a ValidationException (the local emulator does not check).
NUMBER_DIGITS = 38
NUMBER_MIN = 1e-130
NUMBER_MAX = 1e126
UNSTORABLE = (
    "a number a job stores is finite, 0 or from 1e-130 to under 1e126 in magnitude, "
    "with at most 38 digits"
)


class UnstorableNumber(ValueError):
    """A value holds a number a DynamoDB item cannot: `path` names where."""

    def __init__(self, path: tuple[str | int, ...], value: Any) -> None:
        self.path, self.value = path, value
        where = ".".join(str(part) for part in path) or "the value"
        super().__init__(f"{where} is {value!r}: {UNSTORABLE}")


def unstorable_numbers(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(path, number) for each number in the JSON value `value` that a DynamoDB item
    cannot hold, so that a caller refuses it with a reason before any write."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from unstorable_numbers(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from unstorable_numbers(item, (*path, index))
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return
    elif isinstance(value, int):
        if len(str(abs(value))) > NUMBER_DIGITS:
            yield path, value
    elif not math.isfinite(value) or (value != 0 and not NUMBER_MIN <= abs(value) < NUMBER_MAX):
        yield path, value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as a DynamoDB item (None values left out)."""
    return {k: serialize(dynamo(v)) for k, v in values.items() if v is not None}


def dynamo(value: Any) -> Any:
    """JSON values as DynamoDB accepts them (no floats: Decimals). UnstorableNumber for a
    number DynamoDB would refuse, named by its path, before anything is sent."""
    for path, number in unstorable_numbers(value):
        raise UnstorableNumber(path, number)
    return json.loads(json.dumps(value), parse_float=Decimal)


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON-friendly values."""
    return {k: plain(deserialize(v)) for k, v in item.items()}


def job_of(values: dict[str, Any]) -> Job:
    """The job a row holds."""
    return Job.model_validate(values)


def is_parked(raw: dict[str, Any]) -> bool:
    """Whether the row is a parked job (running, its lease held by nobody)."""
    return raw.get("state") == "running" and raw.get("lease_owner") == PARKED


def state_key(state: str, job_id: str) -> str:
    """The state index's partition key of `job_id` in `state` (one of STATE_SHARDS)."""
    shard = int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) % STATE_SHARDS
    return f"STATE#{state}#{shard}"


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
        *,
        took_over: bool = False,
        effects_pending: bool = False,
        dead_letter: bool = False,
    ) -> None:
        self.job = job
        self.started = started
        self.lease_expires = lease_expires
        self.message_id = message_id  # the SQS message the job's current run started from
        self.parked = parked  # the job waits, parked, for its next check
        self.took_over = took_over  # started over an expired lease whose worker died
        self.effects_pending = effects_pending  # terminal, its after-end effects not yet done
        self.dead_letter = dead_letter  # failed for good: its message belongs in the DLQ


def encode_cursor(key: dict[str, Any]) -> str:
    """A listing's last key as an opaque cursor."""
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


class InvalidCursor(ValueError):
    """The cursor was not issued for this caller's listing."""


_CURSOR_KEYS = frozenset({"PK", "SK", "GSI1PK", "GSI1SK"})


def decode_cursor(cursor: str, owner: str) -> dict[str, Any]:
    """The last key of a cursor this API issued for `owner`'s listing: exactly the owner
    index's key of one of `owner`'s jobs, or `InvalidCursor`."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError):  # not base64, not UTF-8, not JSON
        raise InvalidCursor("the cursor is not one this API issued") from None
    if not (
        isinstance(key, dict)
        and set(key) == _CURSOR_KEYS
        and all(
            isinstance(value, dict)
            and set(value) == {"S"}
            and isinstance(value["S"], str)
            and 0 < len(value["S"]) <= 1024
            for value in key.values()
        )
        and key["GSI1PK"]["S"] == f"OWNER#{owner}"
        and key["PK"]["S"].startswith("JOB#")
        and key["SK"]["S"] == "META"
    ):
        raise InvalidCursor("the cursor is not one this API issued")
    return key


def index_key(item: dict[str, Any]) -> dict[str, Any]:
    """The owner index's key of an item it returned (to continue a listing after it)."""
    return {name: item[name] for name in sorted(_CURSOR_KEYS)}


def timedelta_ago(seconds: float) -> datetime:
    """The moment `seconds` ago."""
    return utcnow() - timedelta(seconds=seconds)
