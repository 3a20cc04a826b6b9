"""The job table's primitives every part of the store builds on: a consistent read of a
job's row, one conditional update, and a history entry."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import datetime
from typing import Any

from longhaul.jobs.store.items import (
    dynamo,
    from_item,
    iso,
    serialize,
    state_key,
    to_item,
    utcnow,
)
from longhaul.jobs.types import JobState

__all__ = ["JobTable"]


class JobTable:
    """One service's job table: the primitives the store's reads and writes share."""

    def __init__(
        self, dynamodb: Any, table: str, *, s3: Any = None, bucket: str | None = None
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._s3 = s3
        self._bucket = bucket

    async def _get_many(self, job_ids: list[str], *, consistent: bool) -> dict[str, dict[str, Any]]:
        """The rows of `job_ids` that exist, by id (BatchGetItem, 100 keys a call, retrying
        what DynamoDB leaves unprocessed)."""
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(job_ids), 100):
            keys = [
                to_item({"PK": f"JOB#{job_id}", "SK": "META"})
                for job_id in dict.fromkeys(job_ids[start : start + 100])
            ]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": consistent}}
            delay = 0.05
            while request:
                response = await self._db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    row = from_item(item)
                    rows[row["id"]] = row
                request = response.get("UnprocessedKeys") or {}
                if request:
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 2)
        return rows

    async def _get_raw(self, job_id: str) -> dict[str, Any] | None:
        response = await self._db.get_item(
            TableName=self._table,
            Key=to_item({"PK": f"JOB#{job_id}", "SK": "META"}),
            ConsistentRead=True,
        )
        return from_item(response["Item"]) if "Item" in response else None

    async def _event(
        self, job_id: str, kind: str, state: JobState, progress: float, message: str | None
    ) -> None:
        event_id = f"{time.time_ns():020d}-{secrets.token_hex(3)}"
        await self._db.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "PK": f"JOB#{job_id}",
                    "SK": f"EVENT#{event_id}",
                    "id": event_id,
                    "kind": kind,
                    "state": state.value,
                    "progress": progress,
                    "message": message,
                    "at": iso(utcnow()),
                }
            ),
        )

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
            values[f":s{i}"] = serialize(dynamo(value))
            clauses.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(clauses)
        for i, (key, value) in enumerate((if_missing or {}).items()):
            names[f"#m{i}"] = key
            values[f":m{i}"] = serialize(dynamo(value))
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
            values[key] = serialize(dynamo(value))
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
                Key=to_item({"PK": f"JOB#{job_id}", "SK": "META"}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(response["Attributes"])

    @staticmethod
    def _state_fields(state: JobState, now: datetime, job_id: str) -> dict[str, Any]:
        return {
            "state": state.value,
            "updated_at": iso(now),
            "GSI2PK": state_key(state.value, job_id),
            "GSI2SK": f"{iso(now)}#{job_id}",
        }
