"""Reads of jobs: one job, a caller's listing, a job's history, jobs by state, and a
parent's children."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from longhaul.jobs.exceptions import JobNotFound
from longhaul.jobs.store.items import (
    OWNER_INDEX,
    STATE_INDEX,
    STATE_SHARDS,
    InvalidCursor,
    Page,
    child_owner,
    decode_cursor,
    encode_cursor,
    from_item,
    index_key,
    iso,
    job_of,
)
from longhaul.jobs.store.table import JobTable
from longhaul.jobs.types import TERMINAL, Job, JobEvent, JobState

__all__ = ["LIST_READ_BUDGET", "JobQueries"]

# The most owner-index entries one listing call reads (entries are small: keys and state).
LIST_READ_BUDGET = 500


class JobQueries(JobTable):
    """What the API, the worker and the reconciler read."""

    async def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job, if it exists and (when `owner` is given) belongs to `owner`."""
        raw = await self._get_raw(job_id)
        if raw is None or (owner is not None and raw["owner"] != owner):
            raise JobNotFound(job_id)  # another caller's job looks exactly like a missing one
        return job_of(raw)

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
        """The owner's jobs, newest first, `limit` at a time. The owner index holds keys and
        the state only; the rows come from the table (consistent reads).

        One call reads at most `LIST_READ_BUDGET` index entries: with a `state` filter a page
        may hold fewer than `limit` jobs (none, even) and still have a cursor, so a listing
        of a rare state never walks all of an owner's jobs in one request."""
        start = decode_cursor(cursor, owner) if cursor else None
        entries: list[dict[str, Any]] = []
        read = 0
        while len(entries) < limit and read < LIST_READ_BUDGET:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "GSI1PK = :owner",
                "ExpressionAttributeValues": {":owner": {"S": f"OWNER#{owner}"}},
                "ScanIndexForward": False,
                # Unfiltered, every entry read is one to return; filtered, read what the
                # budget allows in one query and keep the first that match.
                "Limit": limit - len(entries) if state is None else LIST_READ_BUDGET - read,
            }
            if state is not None:
                arguments["FilterExpression"] = "#state = :state"
                arguments["ExpressionAttributeNames"] = {"#state": "state"}
                arguments["ExpressionAttributeValues"][":state"] = {"S": state.value}
            if start:
                arguments["ExclusiveStartKey"] = start
            try:
                response = await self._db.query(**arguments)
            except ClientError as exc:
                if cursor and exc.response.get("Error", {}).get("Code") == "ValidationException":
                    raise InvalidCursor("the cursor is not one this API issued") from None
                raise
            items = response.get("Items", [])
            read += int(response.get("ScannedCount", len(items)))
            room = limit - len(entries)
            if len(items) > room:  # more matched than the page holds: go on after the last
                entries += items[:room]
                start = index_key(items[room - 1])
                break
            entries += items
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        ids = [item["PK"]["S"].removeprefix("JOB#") for item in entries]
        rows = await self._get_many(ids, consistent=True)
        jobs = [job_of(rows[job_id]) for job_id in ids if job_id in rows]
        return Page(jobs, encode_cursor(start) if start else None)

    async def events(self, job_id: str, after: str | None = None) -> list[JobEvent]:
        """The job's history after event id `after`, oldest first."""
        found, _ = await self.poll(job_id, after)
        return found

    async def poll(
        self, job_id: str, after: str | None = None
    ) -> tuple[list[JobEvent], Job | None]:
        """The job's history after event id `after`, oldest first, and the job, in one
        query: its history items sort before its row (`EVENT#` < `META`)."""
        lower = f"EVENT#{after}" if after else "EVENT#"
        found: list[JobEvent] = []
        job: Job | None = None
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK > :after",
            "ExpressionAttributeValues": {":pk": {"S": f"JOB#{job_id}"}, ":after": {"S": lower}},
            "ConsistentRead": True,
        }
        while True:
            response = await self._db.query(**arguments)
            for item in response.get("Items", []):
                sort_key = item["SK"]["S"]
                if sort_key.startswith("EVENT#"):
                    found.append(JobEvent.model_validate(from_item(item)))
                elif sort_key == "META":
                    job = job_of(from_item(item))
            if "LastEvaluatedKey" not in response:
                return found, job
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def stale(
        self, state: JobState, older_than: datetime, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Up to `limit` (None: all) jobs in `state` since before `older_than`, oldest first
        (for the reconciler and redrive): their index entries (`id`, `enqueued_at`), read
        from every shard of the state's partition."""
        shards = await asyncio.gather(
            *(
                self._stale_shard(f"STATE#{state.value}#{shard}", older_than, limit)
                for shard in range(STATE_SHARDS)
            )
        )
        found = sorted((item for shard in shards for item in shard), key=lambda i: i["GSI2SK"])
        return found if limit is None else found[:limit]

    async def _stale_shard(
        self, key: str, older_than: datetime, limit: int | None
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while limit is None or len(found) < limit:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": STATE_INDEX,
                "KeyConditionExpression": "GSI2PK = :state AND GSI2SK < :before",
                "ExpressionAttributeValues": {
                    ":state": {"S": key},
                    ":before": {"S": iso(older_than)},
                },
            }
            if limit is not None:
                arguments["Limit"] = limit - len(found)
            if start:
                arguments["ExclusiveStartKey"] = start
            response = await self._db.query(**arguments)
            found += [from_item(item) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return found

    async def rows(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The current rows of `job_ids` (eventually consistent: for the reconciler, which
        acts only through conditional writes)."""
        return await self._get_many(job_ids, consistent=False)

    async def cancel_requested(self, job_id: str) -> bool:
        """Whether the owner asked for the job to stop."""
        raw = await self._get_raw(job_id)
        return bool(raw and raw.get("cancel_requested"))

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
