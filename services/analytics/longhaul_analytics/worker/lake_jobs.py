"""The lake's jobs: compaction of one hour-partition, and the scheduler that submits it.

`compact-lake` (internal) merges an (owner, dt, hour) partition's flush files into its
compacted files, deduplicated by id, in rounds. A round:
1. lists the flush files (at most `lake_compact_max_files`) and the compacted files;
2. reads the ids of the compacted files of full size, and the rows of the flush files and of
   the one small compacted file, if any; keeps one row per id, none already in a full file;
3. writes them as new files named after this run (`part-<run>-<n>.parquet`, never a name
   another run writes), then checkpoints the keys it wrote, the flush keys it merged and the
   small files it replaced;
4. deletes those, and only those (every one was read in step 2).
A worker killed before the checkpoint leaves extra files beside the old ones: the next run
lists them, merges them (a partial small file) or skips their ids (a full file), and deletes
what it read. Killed after it, the next run only finishes the deletes. Every row is in some
file at every moment, and a finished round leaves each id once.

`schedule-compaction` (internal) is one long-lived job that parks between passes: each pass
walks the flush prefixes and submits `compact-lake` for every partition whose hour ended
`lake_compact_after_s` ago, unless one for it is still running. The API submits the first
(`ensure_scheduler`, idempotent); when one ends, however it ended, its end hook submits the
next, so exactly one runs at a time.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from longhaul.jobs import Job, JobContext, JobError, JobNotFound, JobResources, JobState, JobStore
from longhaul.jobs.queue import enqueue
from longhaul_analytics.analytics.lake import (
    Partition,
    dedupe_by_id,
    flush_partitions,
    parquet_bytes,
    read_files,
)
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.worker.jobs import jobs

__all__ = [
    "COMPACT",
    "SCHEDULE",
    "SYSTEM_OWNER",
    "CompactPayload",
    "SchedulePayload",
    "compact_partition",
    "due_partitions",
    "ensure_scheduler",
]

COMPACT = "compact-lake"
SCHEDULE = "schedule-compaction"
SYSTEM_OWNER = "longhaul:lake"  # owns the lake's jobs; no caller's sub looks like this
FIRST_SCHEDULER_KEY = "schedule-compaction"
RESTART_AFTER_FAILURE_S = 300  # a scheduler that failed is followed by one this much later
DELETE_BATCH = 1000  # S3's limit per DeleteObjects


class CompactPayload(BaseModel):
    """One (owner, dt, hour) partition."""

    owner: str
    dt: date
    hour: int = Field(ge=0, le=23)

    @property
    def partition(self) -> Partition:
        """The partition named."""
        return Partition(self.owner, self.dt, self.hour)


class SchedulePayload(BaseModel):
    """A scheduler; one that follows a failed one waits until `not_before`."""

    not_before: datetime | None = None


@dataclass(frozen=True)
class Round:
    """What one compaction round did."""

    flush_merged: int
    rows_written: int
    written: list[str]
    replaced: int
    more: bool  # the flush listing was cut at the per-round bound: another round follows


async def _objects(s3: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """(key, size) of every object under `prefix`, in key order."""
    found: list[tuple[str, int]] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        found.extend((item["Key"], int(item["Size"])) for item in page.get("Contents", []))
    return found


async def _delete(s3: Any, bucket: str, keys: list[str]) -> None:
    """Delete `keys` (absent ones are no error)."""
    for i in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": k} for k in keys[i : i + DELETE_BATCH]]
        await s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def split_files(table: pa.Table, min_file_bytes: int) -> list[bytes]:
    """The table as Parquet files of about `min_file_bytes` or more each: one file unless
    it holds at least twice that, then n = size // min_file_bytes files of equal rows."""
    whole = parquet_bytes(table)
    count = len(whole) // min_file_bytes
    if count <= 1:
        return [whole]
    step = math.ceil(table.num_rows / count)
    return [parquet_bytes(table.slice(i, step)) for i in range(0, table.num_rows, step)]


def _merged_files(
    rows: pa.Table, known: pa.ChunkedArray | None, min_file_bytes: int
) -> tuple[int, list[bytes]]:
    """One row per id, none in `known`, sorted by time: the files' bodies and the count."""
    merged = dedupe_by_id(rows)
    if known is not None and merged.num_rows:
        merged = merged.filter(pc.invert(pc.is_in(merged["id"], value_set=known.combine_chunks())))
    if merged.num_rows == 0:
        return 0, []
    merged = merged.sort_by([("time", "ascending"), ("id", "ascending")])
    return merged.num_rows, split_files(merged, min_file_bytes)


async def _merge_and_write(
    s3: Any,
    bucket: str,
    partition: Partition,
    flush: list[str],
    small: list[str],
    full: list[str],
    run: str,
    min_file_bytes: int,
) -> tuple[list[str], int]:
    """Steps 2 and 3 of a round: the new files' keys and how many rows they hold."""
    rows = await read_files(s3, bucket, [*flush, *small])
    known = (await read_files(s3, bucket, full, columns=["id"]))["id"] if full else None
    # Sorting and encoding a big hour takes seconds of CPU: off the event loop, so the
    # job's heartbeats go on (pyarrow releases the GIL for this work).
    count, bodies = await asyncio.to_thread(_merged_files, rows, known, min_file_bytes)
    written = []
    for n, body in enumerate(bodies):
        key = f"{partition.events_prefix}part-{run}-{n}.parquet"
        await s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet"
        )
        written.append(key)
    return written, count


async def compact_partition(
    s3: Any,
    bucket: str,
    partition: Partition,
    *,
    resume: dict[str, Any] | None,
    checkpoint: Any,
    min_file_bytes: int,
    max_files: int,
) -> Round:
    """One compaction round of `partition` (see the module's docstring). `resume` is the
    round's last checkpoint, if any; `checkpoint(state)` saves one."""
    state = resume or {}
    if state.get("phase") != "written":
        listed = await _objects(s3, bucket, partition.flush_prefix)
        flush = [key for key, _ in listed[:max_files]]
        if not flush:
            return Round(0, 0, [], 0, more=False)
        compacted = await _objects(s3, bucket, partition.events_prefix)
        small = [key for key, size in compacted if size < min_file_bytes]
        full = [key for key, size in compacted if size >= min_file_bytes]
        run = uuid.uuid4().hex[:12]  # a fresh name for every run: no two runs write one key
        written, rows = await _merge_and_write(
            s3, bucket, partition, flush, small, full, run, min_file_bytes
        )
        state = {
            "phase": "written",
            "written": written,
            "rows": rows,
            "flush": flush,
            "replaced": small,
            "more": len(listed) > max_files,
        }
        await checkpoint(state)
    written = list(state["written"])
    await _delete(s3, bucket, [k for k in state["replaced"] if k not in written])
    await _delete(s3, bucket, list(state["flush"]))
    return Round(
        len(state["flush"]), state["rows"], written, len(state["replaced"]), bool(state["more"])
    )


def _settings(ctx: JobContext) -> AnalyticsSettings:
    """The worker's settings (the service's class)."""
    assert ctx.resources is not None
    settings = ctx.resources.settings
    assert isinstance(settings, AnalyticsSettings)
    return settings


@jobs.handler(COMPACT, payload=CompactPayload, internal=True, max_attempts=5, timeout_s=3600)
async def compact_lake(payload: CompactPayload, ctx: JobContext) -> dict[str, Any]:
    """Compact one hour-partition's flush files, round after round, until none is left."""
    settings = _settings(ctx)
    assert ctx.resources is not None
    s3 = await ctx.resources.aws.get("s3")
    bucket = str(settings.bucket_name)
    resume: dict[str, Any] = dict(ctx.resume or {})
    totals = {"rounds": resume.pop("rounds", 0), "flush_merged": resume.pop("flush_merged", 0)}
    totals["rows_written"] = resume.pop("rows_written", 0)
    files: list[str] = []

    async def checkpoint(state: dict[str, Any]) -> None:
        await ctx.checkpoint({**state, **totals})

    while True:
        done = await compact_partition(
            s3,
            bucket,
            payload.partition,
            resume=resume or None,
            checkpoint=checkpoint,
            min_file_bytes=settings.lake_min_file_bytes,
            max_files=settings.lake_compact_max_files,
        )
        totals["rounds"] += 1
        totals["flush_merged"] += done.flush_merged
        totals["rows_written"] += done.rows_written
        files += done.written
        resume = {}
        await ctx.checkpoint(dict(totals))  # the round is over: a resumed run starts afresh
        if not done.more:
            break
    ctx.log.info("compacted %s: %s", payload.partition.label(), totals)
    return {**totals, "files": files[-100:]}


async def due_partitions(s3: Any, bucket: str, now: datetime, after_s: int) -> list[CompactPayload]:
    """Every partition with flush files whose hour ended at least `after_s` ago."""
    due = []
    for segment, dt, hour in await flush_partitions(s3, bucket):
        partition = Partition(unquote(segment), dt, hour)
        if partition.end + timedelta(seconds=after_s) <= now:
            due.append(CompactPayload(owner=partition.owner, dt=dt, hour=hour))
    return due


async def submit_internal(
    store: JobStore, sqs: Any, queue_url: str, job_type: str, payload: BaseModel, key: str
) -> Job:
    """Submit a lake job owned by `SYSTEM_OWNER`, idempotent by `key`; no job facts."""
    job, created = await store.submit(
        owner=SYSTEM_OWNER,
        job_type=job_type,
        payload=payload.model_dump(mode="json"),
        idempotency_key=key,
    )
    if created:
        await enqueue(sqs, queue_url, job.id)
        await store.mark_enqueued(job.id)
    return job


async def ensure_scheduler(store: JobStore, sqs: Any, queue_url: str) -> Job:
    """The first scheduler, submitted once for the table's lifetime (idempotent)."""
    return await submit_internal(
        store, sqs, queue_url, SCHEDULE, SchedulePayload(), FIRST_SCHEDULER_KEY
    )


async def _running(ctx: JobContext, inflight: dict[str, str]) -> dict[str, str]:
    """The in-flight compactions that have not ended."""
    assert ctx.resources is not None
    running = {}
    for label, job_id in inflight.items():
        try:
            job = await ctx.resources.store.get(job_id)
        except JobNotFound:
            continue
        if not job.terminal:
            running[label] = job_id
    return running


async def _next_scheduler(job: Job, resources: JobResources | None) -> None:
    """When a scheduler ends, submit the one that follows it (a failed one's successor
    waits `RESTART_AFTER_FAILURE_S`, so a scheduler that keeps failing cannot spin)."""
    if resources is None:
        return
    wait = 0 if job.state is JobState.SUCCEEDED else RESTART_AFTER_FAILURE_S
    ended = job.finished_at or job.updated_at  # the same on every run of the hook
    payload = SchedulePayload(not_before=ended + timedelta(seconds=wait))
    await submit_internal(
        resources.store,
        resources.sqs,
        resources.queue_url,
        SCHEDULE,
        payload,
        f"schedule-compaction:after:{job.id}",
    )


@jobs.handler(
    SCHEDULE,
    payload=SchedulePayload,
    internal=True,
    max_attempts=5,
    timeout_s=900,
    on_end=_next_scheduler,
)
async def schedule_compaction(payload: SchedulePayload, ctx: JobContext) -> dict[str, Any]:
    """A pass over the flush prefixes, then a park until the next: forever."""
    settings = _settings(ctx)
    now = datetime.now(UTC)
    if payload.not_before is not None and now < payload.not_before:
        ctx.park(max(1, min(900, math.ceil((payload.not_before - now).total_seconds()))))
    assert ctx.resources is not None
    resources = ctx.resources
    state: dict[str, Any] = dict(ctx.resume or {"pass": 0, "inflight": {}})
    state["pass"] += 1
    await ctx.checkpoint(state)  # before submitting: a resumed pass reuses the pass's keys
    try:
        s3 = await resources.aws.get("s3")
        inflight = await _running(ctx, dict(state["inflight"]))
        due = await due_partitions(
            s3, str(settings.bucket_name), now, settings.lake_compact_after_s
        )
        for item in due:
            label = item.partition.label()
            if label in inflight:
                continue
            job = await submit_internal(
                resources.store,
                resources.sqs,
                resources.queue_url,
                COMPACT,
                item,
                f"compact:{ctx.job_id}:{state['pass']}:{label}",
            )
            inflight[label] = job.id
        state["inflight"] = inflight
        await ctx.checkpoint(state)
    except JobError:
        raise
    except Exception as exc:  # one failed pass is retried by the next one
        ctx.log.warning("compaction pass %s failed: %r", state["pass"], exc)
    ctx.park(
        settings.lake_schedule_every_s,
        f"pass {state['pass']}: {len(state['inflight'])} compactions running",
    )
