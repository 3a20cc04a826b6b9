"""The lake against a real moto server: flush files named by their rows, one owner's reads,
and compaction that leaves every distinct event exactly once, killed at any step or not."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from longhaul.aws.clients import AwsClients
from longhaul_analytics.analytics.lake import (
    LakeRow,
    Partition,
    list_keys,
    read_files,
    read_rows,
    write_flush,
)
from longhaul_analytics.worker import lake_jobs
from longhaul_analytics.worker.lake_jobs import compact_partition, due_partitions
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Crash(Exception):
    """A worker dying at this point."""


@pytest.fixture
async def lake(aws: AwsClients, moto: MotoServer) -> tuple[Any, str]:
    """An S3 client and a bucket of the test's own."""
    s3 = await aws.get("s3")
    bucket = "lake-" + uuid.uuid4().hex[:12]
    await s3.create_bucket(Bucket=bucket)
    return s3, bucket


def row(owner: str, number: int, at: datetime, received: datetime | None = None) -> LakeRow:
    return LakeRow(
        owner=owner,
        id=f"ev-{number}",
        name="click" if number % 3 else "view",
        time=at,
        received_at=received or at + timedelta(seconds=2),
        source="client",
        properties=json.dumps({"n": number, "pad": "x" * (number % 17)}),
    )


def generated(owner: str, count: int, seed: int) -> tuple[list[list[LakeRow]], set[str]]:
    """Batches of `count` distinct events over two hours, shuffled, with 20% sent again in
    later batches (received later) and every fourth batch delivered twice."""
    rng = random.Random(seed)
    events = [row(owner, n, T0 + timedelta(seconds=rng.randrange(7200))) for n in range(count)]
    again = [
        row(owner, int(e.id.removeprefix("ev-")), e.time, e.received_at + timedelta(minutes=5))
        for e in rng.sample(events, count // 5)
    ]
    stream = events + again
    rng.shuffle(stream)
    batches = [stream[i : i + 25] for i in range(0, len(stream), 25)]
    redelivered = [b for i, b in enumerate(batches) for _ in range(2 if i % 4 == 0 else 1)]
    return redelivered, {e.id for e in events}


async def ingest(s3: Any, bucket: str, batches: list[list[LakeRow]]) -> None:
    for batch in batches:
        await write_flush(s3, bucket, batch)


class Checkpoints:
    """A job's checkpoint store, which can die just before or just after saving."""

    def __init__(self, crash: str | None = None) -> None:
        self.state: dict[str, Any] | None = None
        self.crash = crash

    async def __call__(self, state: dict[str, Any]) -> None:
        if self.crash == "before-checkpoint":
            raise Crash
        self.state = json.loads(json.dumps(state))
        if self.crash == "after-checkpoint":
            raise Crash


async def compact_all(
    s3: Any, bucket: str, owner: str, *, min_file_bytes: int = 128 * 1024 * 1024
) -> None:
    """Compact each of the owner's two hours, round after round, as the job does."""
    for hour in (T0, T0 + HOUR):
        partition = Partition.of(owner, hour)
        while True:
            done = await compact_partition(
                s3,
                bucket,
                partition,
                resume=None,
                checkpoint=Checkpoints(),
                min_file_bytes=min_file_bytes,
                max_files=10_000,
            )
            if not done.more:
                break


async def compacted_ids(s3: Any, bucket: str, owner: str) -> Counter[str]:
    """Every id in the owner's compacted files, counted (no dedupe)."""
    keys = await list_keys(s3, bucket, f"lake/events/owner={owner}/")
    table = await read_files(s3, bucket, keys)
    return Counter(table["id"].to_pylist())


async def test_a_redelivered_batch_rewrites_the_same_objects_with_the_same_bytes(
    lake: tuple[Any, str],
) -> None:
    s3, bucket = lake
    batch = [row("alice", n, T0 + timedelta(minutes=50 + n)) for n in range(20)]  # two hours
    first = await write_flush(s3, bucket, batch)
    again = await write_flush(s3, bucket, list(reversed(batch)))
    assert first == again
    assert len(first) == 2
    assert first[0].startswith("lake/flush/owner=alice/dt=2026-03-01/hour=10/")
    assert first[1].startswith("lake/flush/owner=alice/dt=2026-03-01/hour=11/")
    assert await list_keys(s3, bucket, "lake/flush/") == sorted(first)
    body = await (await s3.get_object(Bucket=bucket, Key=first[0]))["Body"].read()
    assert body[:4] == b"PAR1"
    meta = pq.ParquetFile(io.BytesIO(body)).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.schema.names == ["id", "name", "time", "received_at", "source", "properties"]


async def test_read_rows_gives_one_owners_rows_in_the_range_and_nobody_elses(
    lake: tuple[Any, str],
) -> None:
    s3, bucket = lake
    owners = ["alice", "ali", "bob/owner=alice", "ev il"]  # a prefix of another, odd ones
    for owner in owners:
        await write_flush(s3, bucket, [row(owner, n, T0 + n * HOUR / 4) for n in range(12)])
    keys = await list_keys(s3, bucket, "lake/flush/")
    assert any("owner=bob%2Fowner%3Dalice/" in k for k in keys)
    assert any("owner=ev%20il/" in k for k in keys)
    table = await read_rows(s3, bucket, "alice", T0 + HOUR / 4, T0 + 2 * HOUR)
    assert set(table["owner"].to_pylist()) == {"alice"}
    assert sorted(table["id"].to_pylist()) == [f"ev-{n}" for n in range(1, 8)]  # end excluded
    odd = await read_rows(s3, bucket, "bob/owner=alice", T0, T0 + 4 * HOUR)
    assert set(odd["owner"].to_pylist()) == {"bob/owner=alice"}
    assert odd.num_rows == 12


async def test_compaction_leaves_each_distinct_event_exactly_once(
    lake: tuple[Any, str],
) -> None:
    s3, bucket = lake
    batches, distinct = generated("alice", 400, seed=1)
    await ingest(s3, bucket, batches)
    await write_flush(s3, bucket, [row("bob", n, T0) for n in range(5)])  # not alice's
    before = await read_rows(s3, bucket, "alice", T0, T0 + 2 * HOUR, dedupe=False)
    assert before.num_rows > len(distinct)  # the duplicates are there before compaction

    await compact_all(s3, bucket, "alice")

    assert await list_keys(s3, bucket, "lake/flush/owner=alice/") == []
    assert len(await list_keys(s3, bucket, "lake/flush/owner=bob/")) == 1
    files = await list_keys(s3, bucket, "lake/events/owner=alice/")
    assert len(files) == 2  # one per hour-partition
    counts = await compacted_ids(s3, bucket, "alice")
    assert set(counts) == distinct
    assert set(counts.values()) == {1}
    kept = await read_rows(s3, bucket, "alice", T0, T0 + 2 * HOUR, dedupe=False)
    first: dict[str, datetime] = {}
    for event_id, at in zip(
        before["id"].to_pylist(), before["received_at"].to_pylist(), strict=True
    ):
        first[event_id] = min(at, first.get(event_id, at))
    assert dict(zip(kept["id"].to_pylist(), kept["received_at"].to_pylist(), strict=True)) == first

    # A batch redelivered after compaction lands as a flush file again; readers dedupe it,
    # and the next compaction merges it into the hour's one file without a second copy.
    await ingest(s3, bucket, batches[:3])
    assert (await read_rows(s3, bucket, "alice", T0, T0 + 2 * HOUR)).num_rows == len(distinct)
    await compact_all(s3, bucket, "alice")
    assert len(await list_keys(s3, bucket, "lake/events/owner=alice/")) == 2
    counts = await compacted_ids(s3, bucket, "alice")
    assert set(counts) == distinct
    assert set(counts.values()) == {1}


@pytest.mark.parametrize("crash", ["before-checkpoint", "after-checkpoint", "mid-delete"])
async def test_a_compaction_killed_at_any_step_and_resumed_loses_and_doubles_nothing(
    lake: tuple[Any, str], crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, bucket = lake
    batches, distinct = generated("alice", 300, seed=2)
    await ingest(s3, bucket, batches)
    partition = Partition.of("alice", T0)
    in_hour = set((await read_rows(s3, bucket, "alice", T0, T0 + HOUR))["id"].to_pylist())
    assert in_hour < distinct
    checkpoints = Checkpoints(crash if crash != "mid-delete" else None)

    class DiesMidDelete:
        """S3, but the worker dies after the first DeleteObjects batch."""

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        calls = 0

        async def delete_objects(self, **kwargs: Any) -> Any:
            DiesMidDelete.calls += 1
            if DiesMidDelete.calls > 1:
                raise Crash
            return await s3.delete_objects(**kwargs)

    client: Any = s3
    if crash == "mid-delete":
        monkeypatch.setattr(lake_jobs, "DELETE_BATCH", 5)
        client = DiesMidDelete()
    with pytest.raises(Crash):
        await compact_partition(
            client,
            bucket,
            partition,
            resume=None,
            checkpoint=checkpoints,
            min_file_bytes=128 * 1024 * 1024,
            max_files=10_000,
        )
    # Dead here: nothing is lost, and readers see each event once.
    hour = await read_rows(s3, bucket, "alice", T0, T0 + HOUR)
    assert sorted(hour["id"].to_pylist()) == sorted(in_hour)
    every = await read_rows(s3, bucket, "alice", T0, T0 + HOUR, dedupe=False)
    assert set(every["id"].to_pylist()) == in_hour

    # The next run resumes from whatever checkpoint was saved.
    await compact_partition(
        s3,
        bucket,
        partition,
        resume=checkpoints.state,
        checkpoint=Checkpoints(),
        min_file_bytes=128 * 1024 * 1024,
        max_files=10_000,
    )
    await compact_partition(  # and a later pass finds nothing left to do
        s3,
        bucket,
        partition,
        resume=None,
        checkpoint=Checkpoints(),
        min_file_bytes=128 * 1024 * 1024,
        max_files=10_000,
    )
    assert await list_keys(s3, bucket, partition.flush_prefix) == []
    assert len(await list_keys(s3, bucket, partition.events_prefix)) == 1
    counts = await compacted_ids(s3, bucket, "alice")
    assert set(counts) == in_hour
    assert set(counts.values()) == {1}


async def test_a_big_hour_is_split_into_files_of_at_least_the_minimum_size(
    lake: tuple[Any, str],
) -> None:
    s3, bucket = lake
    rng = random.Random(3)
    rows = [
        LakeRow(
            owner="alice",
            id=f"big-{n}",
            name="blob",
            time=T0 + timedelta(seconds=n % 3600),
            received_at=T0,
            source="client",
            properties=json.dumps({"noise": rng.randbytes(300).hex()}),  # incompressible
        )
        for n in range(2000)
    ]
    await ingest(s3, bucket, [rows[i : i + 100] for i in range(0, len(rows), 100)])
    minimum = 250_000  # ~640 KB of rows (hex compresses to half): two files or more
    await compact_all(s3, bucket, "alice", min_file_bytes=minimum)
    partition = Partition.of("alice", T0)
    sizes = {
        o["Key"]: o["Size"]
        for o in (await s3.list_objects_v2(Bucket=bucket, Prefix=partition.events_prefix))[
            "Contents"
        ]
    }
    assert len(sizes) >= 2
    assert min(sizes.values()) >= minimum * 0.9  # equal rows per file: about the minimum
    counts = await compacted_ids(s3, bucket, "alice")
    assert len(counts) == 2000
    assert set(counts.values()) == {1}

    # New rows (and a duplicate of one in a full file) later: the full files stay as they
    # are, the new rows get a file of their own, the duplicate is dropped.
    await write_flush(s3, bucket, [*rows[:1], row("alice", 9999, T0 + timedelta(minutes=1))])
    await compact_all(s3, bucket, "alice", min_file_bytes=minimum)
    after = await list_keys(s3, bucket, partition.events_prefix)
    assert set(sizes) <= set(after)
    assert len(after) == len(sizes) + 1
    counts = await compacted_ids(s3, bucket, "alice")
    assert len(counts) == 2001
    assert set(counts.values()) == {1}


async def test_only_hours_past_the_wait_are_due_with_their_owner_as_written(
    lake: tuple[Any, str],
) -> None:
    s3, bucket = lake
    await write_flush(s3, bucket, [row("ev il", 1, T0), row("bob", 2, T0 + 2 * HOUR)])
    now = T0 + 2 * HOUR + timedelta(minutes=30)
    due = await due_partitions(s3, bucket, now, after_s=3600)
    assert [(d.owner, d.dt, d.hour) for d in due] == [("ev il", T0.date(), 10)]
    assert await due_partitions(s3, bucket, now, after_s=6 * 3600) == []
