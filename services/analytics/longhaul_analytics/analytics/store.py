"""The engine's items in the service's table (string keys PK, SK), and the reads and writes
the ingest, the closer and the routes make.

| item              | PK                                   | SK                        |
|-------------------|--------------------------------------|---------------------------|
| event marker      | `AN#E#<owner>#<id>`                  | `E`                       |
| value pack        | `AN#V#<owner>#<metric>#<hour>`       | `<pane>#<group hash>#<pack digest>` |
| hour (has values) | `AN#H#<owner>#<metric>`              | `<hour>`                  |
| window result     | `AN#R#<owner>#<metric>#<window>`     | `<start>#<group hash>`    |
| open window       | `AN#O`                               | `<owner>|<metric>|<window>|<start>` |
| source watermark  | `AN#S#<owner>`                       | `<source>`                |
| late event        | `AN#L#<owner>`                       | `<event time>#<id>`       |
| metric            | `AN#M#<owner>`                       | `<name>`                  |
| group (cardinality)| `AN#G#<owner>#<metric>`             | `<group hash>` / `#count` |

Times in keys are milliseconds, zero-padded to 14 digits so they sort.

A value pack holds one ingest's values in one (metric, pane, group), keyed by its digest;
`values` keeps each event id once, none the late table holds (docs/analytics.md
"Exactness"). A window reads one query per hour it spans that holds values.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from longhaul_analytics.analytics.aggregates import Summary, Value
from longhaul_analytics.analytics.model import BUILTIN, Metric, MetricSpec
from longhaul_analytics.analytics.windows import HOUR_MS

__all__ = ["AnalyticsStore", "OpenWindow", "StoredResult", "ms_key"]

OPEN_PK = "AN#O"
SEP = "|"
PACK_BYTES = 200_000  # a pack's values at most (DynamoDB's item limit is 400 KB)


def ms_key(ms: int) -> str:
    """A time in ms as a sortable key part."""
    return f"{ms:014d}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


@dataclass(frozen=True, slots=True)
class OpenWindow:
    """A window that has counted events and is not yet closed at its latest content."""

    owner: str
    metric: str
    window: str
    start: int
    token: str


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A closed window's aggregates for one group, at its latest revision."""

    start: int
    group: str
    summary: Summary
    revision: int
    at: int  # when it was written, ms


class AnalyticsStore:
    """The engine's view of the service's table."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    # Metrics ------------------------------------------------------------------------------

    async def metrics(self, owner: str) -> list[Metric]:
        """The owner's declared metrics, after the built-in one."""
        items = await self._query(f"AN#M#{owner}")
        declared = [
            Metric.of(i["SK"]["S"], MetricSpec.model_validate_json(i["spec"]["S"])) for i in items
        ]
        return [BUILTIN, *declared]

    async def put_metric(self, owner: str, name: str, spec: MetricSpec, limit: int) -> bool:
        """Declare (or redeclare) a metric; False when the owner already has `limit` others."""
        existing = await self._query(f"AN#M#{owner}")
        if len(existing) >= limit and name not in {i["SK"]["S"] for i in existing}:
            return False
        await self.client.put_item(
            TableName=self.table,
            Item={"PK": _s(f"AN#M#{owner}"), "SK": _s(name), "spec": _s(spec.model_dump_json())},
        )
        return True

    # Markers ------------------------------------------------------------------------------

    async def markers(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The digest recorded for each (owner, id) already counted."""
        found: dict[tuple[str, str], str] = {}
        by_pk = {f"AN#E#{owner}#{id_}": (owner, id_) for owner, id_ in keys}
        unique = list(by_pk)
        for i in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"PK": _s(pk), "SK": _s("E")} for pk in unique[i : i + 100]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(20):
                response = await self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found[by_pk[item["PK"]["S"]]] = item["h"]["S"]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                await asyncio.sleep(min(1.0, 0.02 * 2**attempt))
        return found

    @staticmethod
    def marker(owner: str, id_: str, digest: str) -> dict[str, Any]:
        """The item that records (owner, id) as taken, with its body's digest."""
        return {"PK": _s(f"AN#E#{owner}#{id_}"), "SK": _s("E"), "h": _s(digest)}

    @staticmethod
    def pack_items(
        owner: str, metric: str, pane: int, ghash: str, group: str, values: Sequence[Value]
    ) -> list[dict[str, Any]]:
        """The items of one ingest's values in one (metric, pane, group): as few packs as
        fit DynamoDB's item size, each keyed by the digest of what it holds."""
        entries = sorted(
            json.dumps([v.id, v.time_ms, v.value, v.distinct], separators=(",", ":"))
            for v in values
        )
        chunks: list[list[str]] = [[]]
        size = 0
        for entry in entries:
            if size + len(entry) > PACK_BYTES and chunks[-1]:
                chunks.append([])
                size = 0
            chunks[-1].append(entry)
            size += len(entry) + 1
        pk = f"AN#V#{owner}#{metric}#{ms_key(pane - pane % HOUR_MS)}"
        items = []
        for chunk in chunks:
            body = "[" + ",".join(chunk) + "]"
            digest = hashlib.sha256(body.encode()).hexdigest()[:32]
            items.append(
                {
                    "PK": _s(pk),
                    "SK": _s(f"{ms_key(pane)}#{ghash}#{digest}"),
                    "g": _s(group),
                    "e": _s(body),
                }
            )
        return items

    @staticmethod
    def hour_item(owner: str, metric: str, time_ms: int) -> dict[str, Any]:
        """The item that says a metric's hour holds values."""
        return {
            "PK": _s(f"AN#H#{owner}#{metric}"),
            "SK": _s(ms_key(time_ms - time_ms % HOUR_MS)),
        }

    @staticmethod
    def late_item(owner: str, time_ms: int, id_: str, body: dict[str, Any]) -> dict[str, Any]:
        """The late-events table's item of an event no window counts."""
        return {
            "PK": _s(f"AN#L#{owner}"),
            "SK": _s(f"{ms_key(time_ms)}#{id_}"),
            "body": _s(json.dumps(body, separators=(",", ":"))),
        }

    async def write(
        self, puts: Sequence[dict[str, Any]], deletes: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Put `puts` and delete the keys `deletes` (BatchWriteItem, 25 a call, unprocessed
        items retried); each is idempotent, so a retry or a redelivery writes the same."""
        requests = [{"PutRequest": {"Item": item}} for item in puts]
        requests += [{"DeleteRequest": {"Key": key}} for key in deletes]
        calls = []
        for i in range(0, len(requests), 25):
            calls.append(self._batch_write(requests[i : i + 25]))
        for i in range(0, len(calls), 8):  # a few calls in flight at once
            await asyncio.gather(*calls[i : i + 8])

    async def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.table: requests}
        for attempt in range(30):
            response = await self.client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            await asyncio.sleep(min(1.0, 0.02 * 2**attempt))
        raise RuntimeError("DynamoDB kept items of a batch write unprocessed")

    async def transact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Write `items` in one transaction; None when written, else the cancellation
        reasons (one per item, in order)."""
        for item in items:
            next(iter(item.values()))["TableName"] = self.table
        try:
            await self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
            return reasons or [{"Code": "Unknown"}] * len(items)
        return None

    # Groups (cardinality) -----------------------------------------------------------------

    async def known_groups(self, owner: str, metric: str) -> set[str]:
        """The group hashes the metric has registered."""
        items = await self._query(f"AN#G#{owner}#{metric}")
        return {i["SK"]["S"] for i in items if i["SK"]["S"] != "#count"}

    async def register_group(self, owner: str, metric: str, ghash: str, limit: int) -> bool:
        """Register a new group of the metric, unless it has `limit` already: False then."""
        pk = f"AN#G#{owner}#{metric}"
        reasons = await self.transact(
            [
                {
                    "Put": {
                        "Item": {"PK": _s(pk), "SK": _s(ghash)},
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {
                    "Update": {
                        "Key": {"PK": _s(pk), "SK": _s("#count")},
                        "UpdateExpression": "ADD n :one",
                        "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                        "ExpressionAttributeValues": {":one": _n(1), ":limit": _n(limit)},
                    }
                },
            ]
        )
        if reasons is None:
            return True
        if reasons[0].get("Code") == "ConditionalCheckFailed":
            return True  # registered by another writer meanwhile
        if reasons[1].get("Code") == "ConditionalCheckFailed":
            return False
        raise RuntimeError(f"registering a group was cancelled: {reasons}")

    # Watermarks ---------------------------------------------------------------------------

    async def sources(self, owner: str) -> dict[str, tuple[int, int]]:
        """The owner's sources: source -> (newest event time, last received), ms."""
        items = await self._query(f"AN#S#{owner}")
        return {i["SK"]["S"]: (int(i["mx"]["N"]), int(i["seen"]["N"])) for i in items}

    async def advance(self, owner: str, source: str, newest_ms: int, now_ms: int) -> None:
        """Record that `source` sent events up to `newest_ms` at `now_ms` (never backwards)."""
        key = {"PK": _s(f"AN#S#{owner}"), "SK": _s(source)}
        await self.client.update_item(
            TableName=self.table,
            Key=key,
            UpdateExpression="SET seen = :now, mx = if_not_exists(mx, :t)",
            ExpressionAttributeValues={":now": _n(now_ms), ":t": _n(newest_ms)},
        )
        try:
            await self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET mx = :t",
                ConditionExpression="mx < :t",
                ExpressionAttributeValues={":t": _n(newest_ms)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    # Open windows -------------------------------------------------------------------------

    async def mark_open(self, windows: Sequence[tuple[str, str, str, int]]) -> None:
        """Mark windows (owner, metric, window, start) as needing a close, each with a fresh
        token, so a closer that read the earlier token does not delete the mark."""
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "PK": _s(OPEN_PK),
                        "SK": _s(SEP.join((owner, metric, window, ms_key(start)))),
                        "tok": _s(secrets.token_hex(8)),
                    }
                }
            }
            for owner, metric, window, start in dict.fromkeys(windows)
        ]
        for i in range(0, len(requests), 25):
            await self._batch_write(requests[i : i + 25])

    async def open_windows(self, owner: str | None = None) -> list[OpenWindow]:
        """Every window waiting to be closed (the owner's only, when given)."""
        prefix = f"{owner}{SEP}" if owner is not None else None
        items = await self._query(OPEN_PK, prefix=prefix)
        found = []
        for item in items:
            owner_, metric, window, start = item["SK"]["S"].split(SEP)
            found.append(OpenWindow(owner_, metric, window, int(start), item["tok"]["S"]))
        return found

    async def settle(self, open_: OpenWindow) -> bool:
        """Remove the mark if nobody marked the window again since it was read."""
        try:
            await self.client.delete_item(
                TableName=self.table,
                Key={
                    "PK": _s(OPEN_PK),
                    "SK": _s(
                        SEP.join((open_.owner, open_.metric, open_.window, ms_key(open_.start)))
                    ),
                },
                ConditionExpression="tok = :tok",
                ExpressionAttributeValues={":tok": _s(open_.token)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    async def lease(self, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or keep the closer's lease (one closer runs passes at a time); False when
        another holder's lease has not expired."""
        try:
            await self.client.put_item(
                TableName=self.table,
                Item={
                    "PK": _s("AN#CLOSER"),
                    "SK": _s("lease"),
                    "holder": _s(holder),
                    "until": _n(now_ms + ttl_ms),
                },
                ConditionExpression="attribute_not_exists(PK) OR holder = :me OR #u < :now",
                ExpressionAttributeNames={"#u": "until"},
                ExpressionAttributeValues={":me": _s(holder), ":now": _n(now_ms)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # Values and panes ---------------------------------------------------------------------

    async def hours(self, owner: str, metric: str, first: int, last: int) -> list[int]:
        """The starts of the metric's hours that hold values, first <= hour <= last."""
        items = await self._query(f"AN#H#{owner}#{metric}", between=(ms_key(first), ms_key(last)))
        return [int(i["SK"]["S"]) for i in items]

    async def values(self, owner: str, metric: str, hour: int) -> list[Value]:
        """Every value stored in one hour of a metric: each event once, none of the events
        the late-events table holds."""
        items, late = await asyncio.gather(
            self._query(f"AN#V#{owner}#{metric}#{ms_key(hour)}"),
            self._query(f"AN#L#{owner}", between=(ms_key(hour), ms_key(hour + HOUR_MS - 1) + "#~")),
        )
        seen = {i["SK"]["S"].split("#", 1)[1] for i in late}
        values = []
        for item in items:
            group = item["g"]["S"]
            for id_, time_ms, value, distinct in json.loads(item["e"]["S"]):
                if id_ in seen:
                    continue
                seen.add(id_)
                number = None if value is None else float(value)
                values.append(Value(group, id_, time_ms, number, distinct))
        return values

    # Results ------------------------------------------------------------------------------

    async def results(
        self, owner: str, metric: str, window: str, first: int, last: int, *, after_at: int = 0
    ) -> list[StoredResult]:
        """Closed windows' results with first <= start <= last (written after `after_at`)."""
        items = await self._query(
            f"AN#R#{owner}#{metric}#{window}", between=(ms_key(first), ms_key(last) + "#~")
        )
        found = []
        for i in items:
            at = int(i["at"]["N"])
            if at <= after_at:
                continue
            found.append(
                StoredResult(
                    start=int(i["SK"]["S"].split("#")[0]),
                    group=i["g"]["S"],
                    summary=Summary.from_dict(json.loads(i["r"]["S"])),
                    revision=int(i["rev"]["N"]),
                    at=at,
                )
            )
        return found

    async def write_result(
        self,
        owner: str,
        metric: str,
        window: str,
        start: int,
        ghash: str,
        group: str,
        summary: Summary,
        *,
        revision: int,
        at: int,
    ) -> bool:
        """Write revision `revision` of a window's result; False when another closer wrote
        that revision first."""
        condition = "attribute_not_exists(PK)" if revision == 1 else "rev = :prev"
        values: dict[str, Any] = {}
        if revision > 1:
            values[":prev"] = _n(revision - 1)
        try:
            await self.client.put_item(
                TableName=self.table,
                Item={
                    "PK": _s(f"AN#R#{owner}#{metric}#{window}"),
                    "SK": _s(f"{ms_key(start)}#{ghash}"),
                    "g": _s(group),
                    "r": _s(json.dumps(summary.as_dict(), separators=(",", ":"))),
                    "rev": _n(revision),
                    "at": _n(at),
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # Late events --------------------------------------------------------------------------

    async def late_events(
        self, owner: str, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The owner's events that were not counted, oldest first, a page at a time."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": _s(f"AN#L#{owner}")},
            "Limit": limit,
        }
        if cursor:
            request["ExclusiveStartKey"] = {"PK": _s(f"AN#L#{owner}"), "SK": _s(cursor)}
        response = await self.client.query(**request)
        events = [json.loads(i["body"]["S"]) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return events, (last["SK"]["S"] if last else None)

    # Helpers ------------------------------------------------------------------------------

    async def _query(
        self, pk: str, *, prefix: str | None = None, between: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        condition = "PK = :pk"
        values: dict[str, Any] = {":pk": _s(pk)}
        if prefix is not None:
            condition += " AND begins_with(SK, :prefix)"
            values[":prefix"] = _s(prefix)
        if between is not None:
            condition += " AND SK BETWEEN :lo AND :hi"
            values[":lo"], values[":hi"] = _s(between[0]), _s(between[1])
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ConsistentRead": True,
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = await self.client.query(**request)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                return items
