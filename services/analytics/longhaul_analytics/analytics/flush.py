"""The engine's one call into the lake: every new event's row, written before it counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from longhaul_analytics.analytics import lake
from longhaul_analytics.analytics.model import Record

__all__ = ["flush_records", "lake_row"]


def lake_row(record: Record) -> lake.LakeRow:
    """The lake's row of a record."""
    return lake.LakeRow(
        owner=record.owner,
        id=record.id,
        name=record.name,
        time=datetime.fromtimestamp(record.time_ms / 1000, UTC),
        received_at=datetime.fromtimestamp(record.received_ms / 1000, UTC),
        source=record.source,
        properties=json.dumps(record.properties, sort_keys=True, separators=(",", ":")),
    )


async def flush_records(s3: Any, bucket: str, records: Sequence[Record]) -> list[str]:
    """Write the records' rows as flush files (`lake.write_flush`); the keys written."""
    if not records:
        return []
    return await lake.write_flush(s3, bucket, [lake_row(r) for r in records])
