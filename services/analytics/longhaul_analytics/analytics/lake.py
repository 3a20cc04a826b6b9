"""The lake: every accepted event as a Parquet row in the service's bucket, in Hive partitions.

- lake/flush/owner=<owner>/dt=YYYY-MM-DD/hour=HH/<sha256 of the rows>.parquet: what ingest
  writes, one file per batch and partition; a redelivered identical batch rewrites the same
  object. Expired by a lifecycle rule as a safety net; compaction deletes them.
- lake/events/owner=<owner>/dt=YYYY-MM-DD/hour=HH/part-<run>-<n>.parquet: compacted files,
  deduplicated by id, each at least `min_file_bytes` or the one file of its hour. Athena's
  table (Glue, partition projection) reads only these.

Files hold the columns of `SCHEMA`; owner, dt and hour are in the path only (a Hive
partition column must not also be a file column). `read_rows` adds `owner` back.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "LakeRow",
    "Partition",
    "dedupe_by_id",
    "flush_partitions",
    "list_keys",
    "owner_segment",
    "parquet_bytes",
    "partition_of",
    "read_files",
    "read_rows",
    "write_flush",
]

FLUSH = "lake/flush/"
EVENTS = "lake/events/"
CONTENT_TYPE = "application/vnd.apache.parquet"
READ_CONCURRENCY = 16
READ_ATTEMPTS = 5  # a file compaction deleted between the listing and the read: list again

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("properties", pa.string(), nullable=False),
    ]
)
COLUMNS = ("owner", *SCHEMA.names)
_KEY = re.compile(
    r"^lake/(?P<kind>flush|events)/owner=(?P<owner>[^/]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/"
    r"hour=(?P<hour>\d{2})/(?P<name>[^/]+\.parquet)$"
)


class LakeRow(BaseModel):
    """One accepted event as the lake stores it."""

    model_config = ConfigDict(frozen=True)

    owner: str
    id: str
    name: str
    time: datetime  # event time, UTC
    received_at: datetime  # when the platform accepted it, UTC
    source: str  # "client", or the platform event's source ("longhaul.media")
    properties: str  # a JSON object's text

    @field_validator("time", "received_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """Aware and in UTC (a naive time is taken as UTC)."""
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def owner_segment(owner: str) -> str:
    """The owner as a path segment: URL-safe owners (Cognito subs) as they are, anything else
    percent-quoted, so no owner can name another's prefix."""
    return quote(owner, safe="-_.~")


@dataclass(frozen=True, order=True)
class Partition:
    """One owner's hour: the unit of flush files, compaction and Athena's projection."""

    owner: str
    dt: date
    hour: int

    @classmethod
    def of(cls, owner: str, at: datetime) -> Partition:
        """The partition holding event time `at`."""
        at = at.astimezone(UTC)
        return cls(owner, at.date(), at.hour)

    @property
    def start(self) -> datetime:
        """The first instant of the hour."""
        return datetime(self.dt.year, self.dt.month, self.dt.day, self.hour, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the hour."""
        return self.start + timedelta(hours=1)

    def path(self) -> str:
        """`owner=<owner>/dt=YYYY-MM-DD/hour=HH/`."""
        return f"owner={owner_segment(self.owner)}/dt={self.dt.isoformat()}/hour={self.hour:02d}/"

    @property
    def flush_prefix(self) -> str:
        """Where this hour's flush files are."""
        return FLUSH + self.path()

    @property
    def events_prefix(self) -> str:
        """Where this hour's compacted files are."""
        return EVENTS + self.path()

    def label(self) -> str:
        """`<owner>/<dt>/<hour>`, for logs and job keys."""
        return f"{owner_segment(self.owner)}/{self.dt.isoformat()}/{self.hour:02d}"


def partition_of(row: LakeRow) -> Partition:
    """The partition a row belongs to, by its event time."""
    return Partition.of(row.owner, row.time)


def _partition_in(key: str, owner: str) -> Partition | None:
    """The partition of a lake key if it is one of `owner`'s, else None."""
    match = _KEY.match(key)
    if match is None or match["owner"] != owner_segment(owner):
        return None
    return Partition(owner, date.fromisoformat(match["dt"]), int(match["hour"]))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
Canonical = tuple[str, str, int, int, str, str]  # a row in SCHEMA's order, times in µs


def _canonical(row: LakeRow) -> Canonical:
    """A row as plain values in `SCHEMA`'s order (times as microseconds since the epoch)."""
    return (
        row.id,
        row.name,
        (row.time - EPOCH) // MICROSECOND,
        (row.received_at - EPOCH) // MICROSECOND,
        row.source,
        row.properties,
    )


def _table_of(rows: Sequence[Canonical]) -> pa.Table:
    """Canonical rows as an Arrow table of `SCHEMA` (owner left out)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SCHEMA)
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as one zstd Parquet file."""
    sink = io.BytesIO()
    pq.write_table(
        table.cast(SCHEMA), sink, compression="zstd", row_group_size=1_000_000, use_dictionary=True
    )
    return sink.getvalue()


async def write_flush(s3: Any, bucket: str, rows: Sequence[LakeRow]) -> list[str]:
    """Write `rows` as one zstd Parquet file per (owner, dt, hour) of their event time, named
    by the hash of its rows; return the keys. Writing the same batch again writes the same
    objects with the same bytes."""
    groups: dict[Partition, list[LakeRow]] = {}
    for row in rows:
        groups.setdefault(partition_of(row), []).append(row)

    async def put(partition: Partition, group: list[LakeRow]) -> str:
        # Sorted, the same rows make the same name and the same bytes in any order. The
        # owner, day and hour are in the key; the hash covers every column of the file.
        rows = sorted(_canonical(r) for r in group)
        digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
        key = f"{partition.flush_prefix}{digest}.parquet"
        body = parquet_bytes(_table_of(rows))
        await s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPE)
        return key

    return list(await asyncio.gather(*(put(p, g) for p, g in sorted(groups.items()))))


async def list_keys(s3: Any, bucket: str, prefix: str, *, start_after: str = "") -> list[str]:
    """Every key under `prefix` (after `start_after`), in key order."""
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    args = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        args["StartAfter"] = start_after
    async for page in paginator.paginate(**args):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


async def _prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The common prefixes one level under `prefix`."""
    found: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    return found


async def flush_partitions(s3: Any, bucket: str) -> list[tuple[str, date, int]]:
    """Every (owner segment, dt, hour) that has flush files, found by walking the prefixes
    (one listing per owner and day, not per file)."""
    found: list[tuple[str, date, int]] = []
    for owner in await _prefixes(s3, bucket, FLUSH):
        segment = owner[len(FLUSH) :].removeprefix("owner=").rstrip("/")
        for day in await _prefixes(s3, bucket, owner):
            dt = date.fromisoformat(day.rstrip("/").rsplit("=", 1)[1])
            for hour in await _prefixes(s3, bucket, day):
                found.append((segment, dt, int(hour.rstrip("/").rsplit("=", 1)[1])))
    return found


class _Gone(Exception):
    """A listed file was deleted before it was read (compaction moved its rows)."""


async def _get(s3: Any, bucket: str, key: str, columns: Sequence[str] | None) -> pa.Table:
    """One Parquet object as a table of `SCHEMA` (or of `columns`)."""
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as stream:
            body = await stream.read()
    except s3.exceptions.NoSuchKey:
        raise _Gone(key) from None
    table = await asyncio.to_thread(pq.read_table, io.BytesIO(body), columns=columns)
    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
    return table.cast(schema)


async def read_files(
    s3: Any, bucket: str, keys: Iterable[str], *, columns: Sequence[str] | None = None
) -> pa.Table:
    """The rows of every file in `keys` as one table (`_Gone` if one was deleted)."""
    keys = list(keys)
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def one(key: str) -> pa.Table:
        async with gate:
            return await _get(s3, bucket, key, columns)

    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
    tables = await asyncio.gather(*(one(k) for k in keys))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def dedupe_by_id(table: pa.Table) -> pa.Table:
    """One row per id: the first received (ties broken by the other columns), so every
    reader and every compaction keeps the same row."""
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(
        table,
        sort_keys=[("id", "ascending"), ("received_at", "ascending")]
        + [(c, "ascending") for c in ("time", "source", "name", "properties")],
    )
    ordered = table.take(order)
    ids = ordered["id"].combine_chunks()
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).fill_null(True)
    keep = pa.concat_arrays([pa.array([True]), first])
    return ordered.filter(keep)


def _day_keys(keys: list[str], owner: str, first: datetime, end: datetime) -> list[str]:
    """The keys of `owner`'s partitions that overlap [first, end)."""
    chosen = []
    for key in keys:
        partition = _partition_in(key, owner)
        if partition is not None and partition.end > first and partition.start < end:
            chosen.append(key)
    return chosen


async def _owner_keys(
    s3: Any, bucket: str, root: str, owner: str, start: datetime, end: datetime
) -> list[str]:
    """`owner`'s files under `root` whose hour overlaps [start, end): one listing from the
    first day on, stopped at the last (keys sort by dt then hour)."""
    prefix = f"{root}owner={owner_segment(owner)}/"
    keys: list[str] = []
    last = f"{prefix}dt={end.date().isoformat()}/~"
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, StartAfter=f"{prefix}dt={start.date().isoformat()}"
    ):
        page_keys = [item["Key"] for item in page.get("Contents", [])]
        keys.extend(k for k in page_keys if k <= last)
        if page_keys and page_keys[-1] > last:
            break
    return _day_keys(keys, owner, start, end)


async def read_rows(
    s3: Any,
    bucket: str,
    owner: str,
    start: datetime,
    end: datetime,
    *,
    dedupe: bool = True,
) -> pa.Table:
    """`owner`'s rows with start <= time < end, from flush and compacted files, with an
    `owner` column first; one row per id unless `dedupe` is False. Only keys under
    `lake/*/owner=<owner>/` are listed or read."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for attempt in range(1, READ_ATTEMPTS + 1):
        # Flush files first: compaction writes a file before it deletes what it merged, so
        # a row missing from this flush listing is in a compacted file listed after it (or
        # a file read below is gone, and the whole read is listed again).
        keys = await _owner_keys(s3, bucket, FLUSH, owner, start, end)
        keys += await _owner_keys(s3, bucket, EVENTS, owner, start, end)
        try:
            table = await read_files(s3, bucket, keys)
            break
        except _Gone:
            if attempt == READ_ATTEMPTS:
                raise
    # Seconds of CPU for millions of rows: off the event loop.
    return await asyncio.to_thread(_in_range, table, owner, start, end, dedupe)


def _in_range(
    table: pa.Table, owner: str, start: datetime, end: datetime, dedupe: bool
) -> pa.Table:
    """The rows with start <= time < end (one per id if `dedupe`), `owner` column first."""
    times = table["time"]
    lo = pa.scalar(start, type=SCHEMA.field("time").type)
    hi = pa.scalar(end, type=SCHEMA.field("time").type)
    table = table.filter(pc.and_(pc.greater_equal(times, lo), pc.less(times, hi)))
    if dedupe:
        table = dedupe_by_id(table)
    return table.add_column(0, "owner", pa.array([owner] * table.num_rows, pa.string()))
