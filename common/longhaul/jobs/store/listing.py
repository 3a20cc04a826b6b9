"""Every owner's jobs, for an administrator: the state index (GSI2) read across its
partitions, the most recent state change first.

No new index and no Scan. The state index already holds every job, once, under
`STATE#<state>#<shard>` sorted by `<updated>#<id>`: five states of STATE_SHARDS partitions
each. A page queries each live partition (only the state's when a state is asked for) for
its newest entries below that partition's position, merges them, keeps the newest `limit`
and reads their rows (consistent reads). A Scan would read every item of the table, the
jobs' histories included, to find a page; a new "all jobs" index would put every job on
one partition key (a hot partition the state index is sharded to avoid) and one more
index write on every submit and state change, for a view only administrators open.

The cursor holds each partition's position (the sort key it stopped at). A job that changes
state between two pages moves to another partition: a later page may show it again or,
having moved above another partition's position, not at all; a listing is a look, not a
snapshot. The index lags a write by a moment, so a row read after its entry may be in
another state already: with a state filter such a row is left out (it is listed with its
new state).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from botocore.exceptions import ClientError

from longhaul.jobs.store.items import (
    STATE_INDEX,
    STATE_SHARDS,
    InvalidCursor,
    Page,
    job_of,
)
from longhaul.jobs.store.table import JobTable
from longhaul.jobs.types import Job, JobState

__all__ = ["ALL_READ_BUDGET", "JobListing", "partitions"]

# The most state-index entries one listing call reads, all partitions together.
ALL_READ_BUDGET = 500
_POSITION_MAX = 256  # a position is `<iso time>#<job id>`: far below this


def partitions(state: JobState | None) -> list[str]:
    """The state index's partition keys a listing of `state` (None: every state) reads."""
    states = [state] if state is not None else list(JobState)
    return [f"STATE#{s.value}#{shard}" for s in states for shard in range(STATE_SHARDS)]


def _encode(state: JobState | None, positions: dict[str, str | None]) -> str:
    document = {"all": state.value if state else "", "p": positions}
    return base64.urlsafe_b64encode(json.dumps(document, sort_keys=True).encode()).decode()


def _decode(cursor: str, state: JobState | None) -> dict[str, str | None]:
    """The partitions' positions of a cursor this API issued for a listing of `state`, or
    `InvalidCursor`."""
    try:
        document = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidCursor("the cursor is not one this API issued") from None
    allowed = set(partitions(state))
    if not (
        isinstance(document, dict)
        and set(document) == {"all", "p"}
        and document["all"] == (state.value if state else "")
        and isinstance(document["p"], dict)
        and set(document["p"]) <= allowed
        and all(
            value is None or (isinstance(value, str) and 0 < len(value) <= _POSITION_MAX)
            for value in document["p"].values()
        )
    ):
        raise InvalidCursor("the cursor is not one this API issued for this listing")
    positions: dict[str, str | None] = document["p"]
    return positions


class JobListing(JobTable):
    """The listing across owners (the admin routes)."""

    async def page_all(
        self,
        *,
        state: JobState | None = None,
        job_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Every owner's jobs, the most recent state change first, `limit` at a time.

        One call reads at most `ALL_READ_BUDGET` index entries (plus one a partition, when
        fewer than one each is left): with a `job_type` filter (the index does not hold the
        type: it is matched on the rows) a page may hold fewer than `limit` jobs, none even,
        and still have a cursor. The order is exact: an entry is taken only when no
        partition still to be read can hold a later one."""
        live: dict[str, str | None] = (
            _decode(cursor, state) if cursor else dict.fromkeys(partitions(state))
        )
        jobs: list[Job] = []
        read = 0
        while live and len(jobs) < limit and read < ALL_READ_BUDGET:
            want = limit - len(jobs)
            each = max(1, min(want, (ALL_READ_BUDGET - read) // len(live)))
            heads = await asyncio.gather(
                *(self._head(key, before, each, bool(cursor)) for key, before in live.items())
            )
            read += sum(len(items) for items, _ in heads)
            # A partition that has more may hold entries later than anything past the last
            # one it gave: nothing older than the latest such last entry is taken yet.
            floor = max(
                (items[-1]["GSI2SK"]["S"] for items, more in heads if more and items), default=""
            )
            merged = [
                entry
                for entry in sorted(
                    (
                        (item["GSI2SK"]["S"], key, item)
                        for key, (items, _) in zip(live, heads, strict=True)
                        for item in items
                    ),
                    key=lambda entry: entry[0],
                    reverse=True,
                )[:want]
                if entry[0] >= floor
            ]
            taken: dict[str, int] = {}
            for position, key, _ in merged:
                live[key] = position  # in descending order: the last one taken stays
                taken[key] = taken.get(key, 0) + 1
            for key, (items, more) in list(zip(list(live), heads, strict=True)):
                if not more and taken.get(key, 0) == len(items):
                    del live[key]  # read to its end, and all of it is on a page
            ids = [item["PK"]["S"].removeprefix("JOB#") for _, _, item in merged]
            rows = await self._get_many(ids, consistent=True)
            for job_id in ids:
                row = rows.get(job_id)
                if row is None:
                    continue  # deleted (expired) since its entry was read
                if state is not None and row["state"] != state.value:
                    continue  # moved on: listed under its new state
                if job_type is not None and row["type"] != job_type:
                    continue
                jobs.append(job_of(row))
        return Page(jobs, _encode(state, live) if live else None)

    async def _head(
        self, key: str, before: str | None, limit: int, resumed: bool
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` entries of partition `key` below `before`, newest first, and
        whether the partition may hold more."""
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": STATE_INDEX,
            "KeyConditionExpression": "GSI2PK = :key",
            "ExpressionAttributeValues": {":key": {"S": key}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if before is not None:
            arguments["KeyConditionExpression"] += " AND GSI2SK < :before"
            arguments["ExpressionAttributeValues"][":before"] = {"S": before}
        try:
            response = await self._db.query(**arguments)
        except ClientError as exc:
            if resumed and exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise InvalidCursor("the cursor is not one this API issued") from None
            raise
        items: list[dict[str, Any]] = response.get("Items", [])
        return items, "LastEvaluatedKey" in response
