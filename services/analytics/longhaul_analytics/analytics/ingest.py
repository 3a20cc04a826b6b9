"""Ingest: a batch of records (client or platform events) becomes lake rows, then counted
exactly once per (owner, event id).

For a batch, in order:
1. each id once per batch: a repeat with the same body is a duplicate, another body refused;
2. time bounds: later than now + max_future or older than now - max_age is refused;
3. the markers already written (one BatchGetItem per 100): a counted id is a duplicate, or
   refused when its body differs;
4. the source's watermark: an event older than watermark - retention is late: recorded in
   the late-events table (and the lake), not counted;
5. cardinality: an event that would give a metric more groups than max_groups is refused
   (a group's registration is a conditional transaction on the metric's group count);
6. the lake: every new event's row is flushed (`lake.write_flush`) before anything counts;
7. the count: the batch's values in each (metric, pane, group) are put as one pack item
   keyed by the digest of its contents, with the hour's index item; then the markers. A
   late event's late-table item is put, then its marker (a value an earlier delivery
   packed while the event was on time is left out by every read, which skips the ids the
   late-events table holds);
8. after the markers, each counted (or duplicate) event's windows are marked open for the
   closer, and each source's watermark advances.

Exactness rests on the event ids: every stored value carries its event's id and every
read keeps one value per id (`AnalyticsStore.values`), whatever the number of deliveries,
retries or workers, so no window can count an event twice; nothing reads and modifies a
counter. A crash anywhere redelivers the batch (or the client retries): steps 1-5 decide
the same, the flush rewrites the same rows, the packs are rewritten (the same items, or
new ones whose ids the reads already know), counted events are found as duplicates, and
step 8 runs again for them, so no event is counted twice or left out of a window's close.
The marker's role is to tell a duplicate from an id reused with another body (checked
before anything is written; two different bodies of one id racing in flight at once leave
one body's values, once per hour) and to answer which events a batch took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from longhaul_analytics.analytics.aggregates import Value
from longhaul_analytics.analytics.model import (
    Metric,
    Record,
    dimension_values,
    group_hash,
    group_key,
    numeric,
)
from longhaul_analytics.analytics.store import AnalyticsStore
from longhaul_analytics.analytics.windows import PANE_MS, WINDOWS
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["Engine", "IngestResult", "Rejection"]

log = logging.getLogger(__name__)

SOURCES_CACHE_S = 1.0

Flush = Callable[[Sequence[Record]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event refused, and why."""

    id: str
    reason: str


@dataclass
class IngestResult:
    """What became of each event of a batch."""

    accepted: list[str] = field(default_factory=list)  # counted now
    duplicates: list[str] = field(default_factory=list)  # counted before: not again
    late: list[str] = field(default_factory=list)  # past retention: in the late-events table
    rejected: list[Rejection] = field(default_factory=list)


class Engine:
    """Counts batches of records into the service's table."""

    def __init__(
        self,
        store: AnalyticsStore,
        settings: AnalyticsSettings,
        flush: Flush,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.flush = flush
        self.clock = clock
        self._metrics: dict[str, tuple[float, list[Metric]]] = {}
        self._sources: dict[str, tuple[float, dict[str, tuple[int, int]]]] = {}
        self._groups: set[tuple[str, str, str]] = set()

    async def metrics(self, owner: str) -> list[Metric]:
        """The owner's metrics, reused for `metrics_cache_s`."""
        now = time.monotonic()
        cached = self._metrics.get(owner)
        if cached is not None and cached[0] > now:
            return cached[1]
        metrics = await self.store.metrics(owner)
        self._metrics[owner] = (now + self.settings.metrics_cache_s, metrics)
        return metrics

    def forget_metrics(self, owner: str) -> None:
        """Read the owner's metrics again next time (after a declaration in this process)."""
        self._metrics.pop(owner, None)

    async def ingest(self, records: Sequence[Record]) -> IngestResult:
        """Count `records` exactly once each; see the module's docstring for the steps."""
        result = IngestResult()
        now_ms = int(self.clock() * 1000)
        fresh = self._first_of_each(records, result)
        fresh = self._within_bounds(fresh, now_ms, result)
        known = await self.store.markers([(r.owner, r.id) for r in fresh])
        new: list[Record] = []
        settled: list[Record] = []  # counted before: their windows are marked again
        for record in fresh:
            digest = known.get((record.owner, record.id))
            if digest is None:
                new.append(record)
            elif digest == record.digest:
                result.duplicates.append(record.id)
                settled.append(record)
            else:
                result.rejected.append(Rejection(record.id, REUSED))
        late_ids = await self._late(new)
        late = [r for r in new if (r.owner, r.id) in late_ids]
        on_time = [r for r in new if (r.owner, r.id) not in late_ids]
        metrics = {owner: await self.metrics(owner) for owner in {r.owner for r in records}}
        on_time = await self._within_cardinality(on_time, metrics, result)
        if on_time or late:
            await self.flush([*on_time, *late])
        await self._count(on_time, late, metrics)
        result.accepted.extend(r.id for r in on_time)
        result.late.extend(r.id for r in late)
        settled += on_time
        await self._mark(settled + late, metrics)
        await self._advance([*settled, *late], now_ms)
        return result

    # Steps --------------------------------------------------------------------------------

    @staticmethod
    def _first_of_each(records: Sequence[Record], result: IngestResult) -> list[Record]:
        seen: dict[tuple[str, str], str] = {}
        kept: list[Record] = []
        for record in records:
            key = (record.owner, record.id)
            digest = seen.get(key)
            if digest is None:
                seen[key] = record.digest
                kept.append(record)
            elif digest == record.digest:
                result.duplicates.append(record.id)
            else:
                result.rejected.append(Rejection(record.id, REUSED))
        return kept

    def _within_bounds(
        self, records: list[Record], now_ms: int, result: IngestResult
    ) -> list[Record]:
        kept = []
        future = now_ms + int(self.settings.max_future_s * 1000)
        past = now_ms - int(self.settings.max_age_s * 1000)
        for record in records:
            if record.time_ms > future:
                result.rejected.append(
                    Rejection(
                        record.id,
                        f"time is more than {self.settings.max_future_s:g} s in the future",
                    )
                )
            elif record.time_ms < past:
                result.rejected.append(
                    Rejection(
                        record.id, f"time is more than {self.settings.max_age_s:g} s in the past"
                    )
                )
            else:
                kept.append(record)
        return kept

    async def _late(self, records: list[Record]) -> set[tuple[str, str]]:
        """The events older than their source's watermark minus the retention."""
        late: set[tuple[str, str]] = set()
        lateness = int(self.settings.allowed_lateness_s * 1000)
        retention = int(self.settings.retention_s * 1000)
        for owner in {r.owner for r in records}:
            sources = await self._sources_of(owner)
            for record in records:
                if record.owner != owner or record.source not in sources:
                    continue
                watermark = sources[record.source][0] - lateness
                if record.time_ms < watermark - retention:
                    late.add((owner, record.id))
        return late

    async def _sources_of(self, owner: str) -> dict[str, tuple[int, int]]:
        """The owner's sources, reused for a second: a watermark read a second old is at
        most a second behind, which only lets an event count (and revise) that a fresher
        one would have set aside as late; it never loses or doubles one."""
        now = time.monotonic()
        cached = self._sources.get(owner)
        if cached is not None and cached[0] > now:
            return cached[1]
        sources = await self.store.sources(owner)
        self._sources[owner] = (now + SOURCES_CACHE_S, sources)
        return sources

    async def _within_cardinality(
        self, records: list[Record], metrics: dict[str, list[Metric]], result: IngestResult
    ) -> list[Record]:
        kept = []
        for record in records:
            refused = None
            for metric in metrics[record.owner]:
                if not metric.takes(record.name):
                    continue
                ghash = group_hash(group_key(dimension_values(metric, record)))
                key = (record.owner, metric.name, ghash)
                if key in self._groups:
                    continue
                if await self.store.register_group(
                    record.owner, metric.name, ghash, self.settings.max_groups
                ):
                    self._groups.add(key)
                else:
                    refused = (
                        f"metric {metric.name!r} already has {self.settings.max_groups} groups "
                        "(distinct dimension values), its limit; this event would add another"
                    )
                    break
            if refused is None:
                kept.append(record)
            else:
                result.rejected.append(Rejection(record.id, refused))
        return kept

    async def _count(
        self, on_time: list[Record], late: list[Record], metrics: dict[str, list[Metric]]
    ) -> None:
        """Put the value packs and hours (and the late items), then the markers."""
        puts: list[dict[str, Any]] = []
        for (owner, metric, pane, ghash), (group, values) in _packs(on_time, metrics).items():
            puts += AnalyticsStore.pack_items(owner, metric, pane, ghash, group, values)
            puts.append(AnalyticsStore.hour_item(owner, metric, pane))
        for record in late:
            body = {
                "id": record.id,
                "name": record.name,
                "time": record.time_ms,
                "received": record.received_ms,
                "source": record.source,
                "properties": record.properties,
                "reason": "older than its source's watermark minus the retention",
            }
            puts.append(AnalyticsStore.late_item(record.owner, record.time_ms, record.id, body))
        unique = {(i["PK"]["S"], i["SK"]["S"]): i for i in puts}
        await self.store.write(list(unique.values()))
        await self.store.write(
            [AnalyticsStore.marker(r.owner, r.id, r.digest) for r in [*on_time, *late]]
        )

    async def _mark(self, records: list[Record], metrics: dict[str, list[Metric]]) -> None:
        panes: set[tuple[str, str, int]] = set()  # every window holding a time holds its pane
        for record in records:
            pane = record.time_ms - record.time_ms % PANE_MS
            for metric in metrics[record.owner]:
                if metric.takes(record.name):
                    panes.add((record.owner, metric.name, pane))
        windows = [
            (owner, metric, spec.name, start)
            for owner, metric, pane in sorted(panes)
            for spec in WINDOWS.values()
            for start in spec.starts_of(pane)
        ]
        if windows:
            await self.store.mark_open(windows)

    async def _advance(self, records: list[Record], now_ms: int) -> None:
        newest: dict[tuple[str, str], int] = {}
        for record in records:
            key = (record.owner, record.source)
            newest[key] = max(newest.get(key, record.time_ms), record.time_ms)
        for (owner, source), time_ms in newest.items():
            await self.store.advance(owner, source, time_ms, now_ms)
            self._sources.pop(owner, None)  # this process knows it moved: read it afresh


REUSED = "this id was sent before with a different body"


PackKey = tuple[str, str, int, str]  # owner, metric, pane, group hash


def _packs(
    records: list[Record], metrics: dict[str, list[Metric]]
) -> dict[PackKey, tuple[str, list[Value]]]:
    """The records' values in each (owner, metric, pane, group), with the group's key."""
    packs: dict[PackKey, tuple[str, list[Value]]] = {}
    for record in records:
        pane = record.time_ms - record.time_ms % PANE_MS
        for metric in metrics[record.owner]:
            if not metric.takes(record.name):
                continue
            group = group_key(dimension_values(metric, record))
            amount = numeric(record.properties.get(metric.value)) if metric.value else None
            distinct = record.properties.get(metric.distinct) if metric.distinct else None
            value = Value(
                group=group,
                id=record.id,
                time_ms=record.time_ms,
                value=amount,
                distinct=None if distinct is None else str(distinct),
            )
            key = (record.owner, metric.name, pane, group_hash(group))
            packs.setdefault(key, (group, []))[1].append(value)
    return packs
