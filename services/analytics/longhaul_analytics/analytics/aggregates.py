"""Aggregates: what a window says about one group, computed from the values stored for it.

count is every event of the group; sum, min, max and the percentiles are over the events
whose value property is a number; distinct counts the distinct values of the distinct
property (absent values not counted). Percentiles are nearest-rank (the value at rank
ceil(q * n)), which is DuckDB's `quantile_disc`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["PERCENTILES", "Summary", "Value", "percentile", "summarize"]

PERCENTILES = {"p50": 50, "p95": 95, "p99": 99}


@dataclass(frozen=True, slots=True)
class Value:
    """What one event left in one metric's pane: its group, id, time, value, distinct key."""

    group: str
    id: str
    time_ms: int
    value: float | None
    distinct: str | None


@dataclass(frozen=True, slots=True)
class Summary:
    """One group's aggregates over one window."""

    count: int
    sum: float | None
    min: float | None
    max: float | None
    distinct: int | None
    p50: float | None
    p95: float | None
    p99: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "distinct": self.distinct,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        return cls(
            count=int(data["count"]),
            sum=data.get("sum"),
            min=data.get("min"),
            max=data.get("max"),
            distinct=data.get("distinct"),
            p50=data.get("p50"),
            p95=data.get("p95"),
            p99=data.get("p99"),
        )


def percentile(ordered: list[float], percent: int) -> float | None:
    """The nearest-rank `percent`th percentile of `ordered` (sorted ascending)."""
    if not ordered:
        return None
    rank = -(-len(ordered) * percent // 100)  # ceil, in integers
    return ordered[max(rank, 1) - 1]


def summarize(values: Iterable[Value], *, with_distinct: bool) -> Summary:
    """The exact aggregates of `values` (each event once: the caller passes one per id)."""
    count = 0
    numbers: list[float] = []
    keys: set[str] = set()
    for item in values:
        count += 1
        if item.value is not None:
            numbers.append(item.value)
        if item.distinct is not None:
            keys.add(item.distinct)
    numbers.sort()
    return Summary(
        count=count,
        sum=math.fsum(numbers) if numbers else None,
        min=numbers[0] if numbers else None,
        max=numbers[-1] if numbers else None,
        distinct=len(keys) if with_distinct else None,
        p50=percentile(numbers, 50),
        p95=percentile(numbers, 95),
        p99=percentile(numbers, 99),
    )
