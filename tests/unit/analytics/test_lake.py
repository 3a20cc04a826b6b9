"""The lake's pure parts: partition paths, flush names, and which row dedupe keeps."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow.parquet as pq

from longhaul_analytics.analytics.lake import (
    LakeRow,
    Partition,
    dedupe_by_id,
    owner_segment,
    read_files,
    write_flush,
)

T0 = datetime(2026, 3, 1, 23, 59, 59, 999_000, tzinfo=UTC)


class MemoryS3:
    """put_object and get_object over a dict."""

    class exceptions:
        NoSuchKey = KeyError

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.objects[Key] = Body

    async def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        body = self.objects[Key]

        class Stream:
            async def __aenter__(self) -> Stream:
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

            async def read(self) -> bytes:
                return body

        return {"Body": Stream()}


def row(n: int, *, received_s: int = 0, owner: str = "alice") -> LakeRow:
    return LakeRow(
        owner=owner,
        id=f"e{n}",
        name="n",
        time=T0 + timedelta(microseconds=n),
        received_at=T0 + timedelta(seconds=received_s),
        source="client",
        properties="{}",
    )


def test_owners_become_path_segments_no_other_owner_can_spell() -> None:
    assert owner_segment("9f1c-4a2b_x.y~z") == "9f1c-4a2b_x.y~z"  # a Cognito sub as it is
    assert owner_segment("bob/owner=alice") == "bob%2Fowner%3Dalice"
    assert owner_segment("a%2Fb") == "a%252Fb"  # a quoted-looking owner is quoted again
    partition = Partition.of(
        "bob/x", datetime(2026, 3, 1, 5, 30, tzinfo=timezone(timedelta(hours=2)))
    )
    assert partition.flush_prefix == "lake/flush/owner=bob%2Fx/dt=2026-03-01/hour=03/"
    assert partition.events_prefix == "lake/events/owner=bob%2Fx/dt=2026-03-01/hour=03/"


def test_times_are_utc_whatever_zone_or_none_they_came_in() -> None:
    naive = LakeRow.model_validate({**row(0).model_dump(), "time": datetime(2026, 3, 1, 1)})
    assert naive.time == datetime(2026, 3, 1, 1, tzinfo=UTC)


async def test_a_batch_in_any_order_is_one_name_and_one_body_per_hour() -> None:
    s3 = MemoryS3()
    batch = [row(n) for n in range(5)] + [row(0)]  # an exact duplicate inside the batch
    batch.append(row(7).model_copy(update={"time": T0 + timedelta(microseconds=1)}))
    keys = await write_flush(s3, "b", batch)
    again = MemoryS3()
    assert await write_flush(again, "b", list(reversed(batch))) == keys
    assert again.objects == s3.objects
    late = LakeRow.model_validate({**row(9).model_dump(), "time": T0 + timedelta(seconds=1)})
    split = await write_flush(MemoryS3(), "b", [row(1), late])
    assert [k.split("/")[3:5] for k in split] == [
        ["dt=2026-03-01", "hour=23"],
        ["dt=2026-03-02", "hour=00"],
    ]
    table = pq.read_table(io.BytesIO(s3.objects[keys[0]]))
    assert table["time"].to_pylist()[0] == T0  # microseconds kept
    assert table.num_rows == len(batch)


async def test_dedupe_keeps_the_first_received_row_of_each_id() -> None:
    s3 = MemoryS3()
    first = await write_flush(s3, "b", [row(1, received_s=5), row(2, received_s=9)])
    second = await write_flush(s3, "b", [row(1, received_s=3), row(3, received_s=1)])
    table = dedupe_by_id(await read_files(s3, "b", [*first, *second]))
    kept = {r["id"]: r["received_at"] for r in table.to_pylist()}
    assert kept == {
        "e1": T0 + timedelta(seconds=3),
        "e2": T0 + timedelta(seconds=9),
        "e3": T0 + timedelta(seconds=1),
    }
