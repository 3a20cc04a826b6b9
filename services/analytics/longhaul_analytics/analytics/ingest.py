"""Ingest: a batch of records (client or platform events) becomes lake rows, then counted
exactly once per (owner, event id).

For a batch, in order:
1. each id once per batch: a repeat with the same body is a duplicate, another body refused;
2. time bounds: later than now + max_future or older than now - max_age is refused;
3. the markers already written (one BatchGetItem per 100): a counted id is a duplicate, or
   refused when its body differs;
4. the source's watermark: an event older than watermark - retention is late: recorded in
   the late-events table (and the lake), not counted;
5. cardinality: an event that would give a metric more groups than max_groups is refused;
6. the lake: every new event's row is flushed (`lake.write_flush`) before anything counts;
7. the count: per event, the marker Put (attribute_not_exists) with its stored value per
   metric and the pane aggregates' ADDs, packed into transactions of at most 100 items;
   a marker that fails its condition removes only its event (a duplicate or a refusal, by
   the digest the failure returns) and the rest is written again;
8. after the count, each counted (or duplicate) event's windows are marked open for the
   closer, and each source's watermark advances.

A crash anywhere redelivers the batch (or the client retries): steps 1-5 decide the same,
the flush rewrites the same files, counted events are found as duplicates, and step 8 runs
again for them, so no event is counted twice or left out of a window's close.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
from longhaul_analytics.analytics.windows import WINDOWS, pane_of
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["Engine", "IngestResult", "Rejection"]

log = logging.getLogger(__name__)

MAX_TRANSACTION_ITEMS = 100
MAX_ATTEMPTS = 8

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


@dataclass
class _Entry:
    record: Record
    items: list[tuple[str, dict[str, Any]]]  # (item key, transaction item), marker first
    panes: dict[
        str, tuple[str, str, int, str, str, float]
    ]  # key -> (owner, metric, pane, ghash, group, value)


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
        on_time = await self._within_cardinality(on_time, result)
        if on_time or late:
            await self.flush([*on_time, *late])
        entries = [await self._entry(r, late=False) for r in on_time]
        entries += [await self._entry(r, late=True) for r in late]
        counted, duplicate = await self._count(entries, result)
        late_set = {(r.owner, r.id) for r in late}
        for record in counted:
            if (record.owner, record.id) in late_set:
                result.late.append(record.id)
            else:
                result.accepted.append(record.id)
                settled.append(record)
        settled += [r for r in duplicate if (r.owner, r.id) not in late_set]
        await self._mark(settled)
        await self._advance([*settled, *counted], now_ms)
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
            sources = await self.store.sources(owner)
            for record in records:
                if record.owner != owner or record.source not in sources:
                    continue
                watermark = sources[record.source][0] - lateness
                if record.time_ms < watermark - retention:
                    late.add((owner, record.id))
        return late

    async def _within_cardinality(
        self, records: list[Record], result: IngestResult
    ) -> list[Record]:
        kept = []
        for record in records:
            refused = None
            for metric in await self.metrics(record.owner):
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

    async def _entry(self, record: Record, *, late: bool) -> _Entry:
        marker = AnalyticsStore.marker_put(record.owner, record.id, record.digest)
        entry = _Entry(record, [marker], {})
        if late:
            body = {
                "id": record.id,
                "name": record.name,
                "time": record.time_ms,
                "received": record.received_ms,
                "source": record.source,
                "properties": record.properties,
                "reason": "older than its source's watermark minus the retention",
            }
            late_item = AnalyticsStore.late_put(record.owner, record.received_ms, record.id, body)
            entry.items.append((f"late\0{record.owner}\0{record.id}", late_item))
            return entry
        pane = pane_of(record.time_ms)
        for metric in await self.metrics(record.owner):
            if not metric.takes(record.name):
                continue
            group = group_key(dimension_values(metric, record))
            ghash = group_hash(group)
            amount = numeric(record.properties.get(metric.value)) if metric.value else None
            distinct = record.properties.get(metric.distinct) if metric.distinct else None
            value = Value(
                group=group,
                id=record.id,
                time_ms=record.time_ms,
                value=amount,
                distinct=None if distinct is None else str(distinct),
            )
            put = AnalyticsStore.value_put(record.owner, metric.name, pane, ghash, value)
            entry.items.append((f"v\0{record.owner}\0{metric.name}\0{record.id}", put))
            pane_key = f"p\0{record.owner}\0{metric.name}\0{pane}\0{ghash}"
            entry.panes[pane_key] = (
                record.owner,
                metric.name,
                pane,
                ghash,
                group,
                amount or 0.0,
            )
        return entry

    async def _count(
        self, entries: list[_Entry], result: IngestResult
    ) -> tuple[list[Record], list[Record]]:
        """Write the entries' transactions; the records counted now and those found
        counted before."""
        counted: list[Record] = []
        duplicates: list[Record] = []
        pending = list(entries)
        while pending:
            chunk, pending = _pack(pending)
            attempt = 0
            while chunk:
                items, owners = _transaction(chunk)
                reasons = await self.store.transact(items)
                if reasons is None:
                    counted.extend(e.record for e in chunk)
                    break
                failed_markers: dict[int, dict[str, Any]] = {}
                for owner, reason in zip(owners, reasons, strict=False):
                    if owner is not None and reason.get("Code") == "ConditionalCheckFailed":
                        failed_markers[owner] = reason
                if failed_markers:
                    for index in sorted(failed_markers, reverse=True):
                        entry = chunk.pop(index)
                        old = failed_markers[index]
                        digest = old.get("Item", {}).get("h", {}).get("S")
                        if digest == entry.record.digest:
                            result.duplicates.append(entry.record.id)
                            duplicates.append(entry.record)
                        else:
                            result.rejected.append(Rejection(entry.record.id, REUSED))
                    continue
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    codes = sorted({str(r.get("Code")) for r in reasons})
                    raise RuntimeError(f"a count transaction kept being cancelled: {codes}")
                await asyncio.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        return counted, duplicates

    async def _mark(self, records: list[Record]) -> None:
        windows: list[tuple[str, str, str, int]] = []
        for record in records:
            for metric in await self.metrics(record.owner):
                if not metric.takes(record.name):
                    continue
                for spec in WINDOWS.values():
                    for start in spec.starts_of(record.time_ms):
                        windows.append((record.owner, metric.name, spec.name, start))
        if windows:
            await self.store.mark_open(windows)

    async def _advance(self, records: list[Record], now_ms: int) -> None:
        newest: dict[tuple[str, str], int] = {}
        for record in records:
            key = (record.owner, record.source)
            newest[key] = max(newest.get(key, record.time_ms), record.time_ms)
        for (owner, source), time_ms in newest.items():
            await self.store.advance(owner, source, time_ms, now_ms)


REUSED = "this id was sent before with a different body"


def _size(entry: _Entry, panes: set[str]) -> int:
    return len(entry.items) + len(set(entry.panes) - panes)


def _pack(entries: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
    """As many entries from the front as fit one transaction (the first always does)."""
    chunk: list[_Entry] = []
    panes: set[str] = set()
    items = 0
    for index, entry in enumerate(entries):
        size = _size(entry, panes)
        if chunk and items + size > MAX_TRANSACTION_ITEMS:
            return chunk, entries[index:]
        chunk.append(entry)
        items += size
        panes |= set(entry.panes)
    return chunk, []


def _transaction(chunk: list[_Entry]) -> tuple[list[dict[str, Any]], list[int | None]]:
    """The chunk's items, pane ADDs merged; and for each item, the index of the entry
    whose marker it is (None for the others)."""
    items: list[dict[str, Any]] = []
    owners: list[int | None] = []
    merged: dict[str, list[Any]] = {}
    for index, entry in enumerate(chunk):
        for position, (_, item) in enumerate(entry.items):
            items.append(_copy(item))
            owners.append(index if position == 0 else None)
        for key, (owner, metric, pane, ghash, group, amount) in entry.panes.items():
            slot = merged.setdefault(key, [owner, metric, pane, ghash, group, 0, 0.0])
            slot[5] += 1
            slot[6] += amount
    for owner, metric, pane, ghash, group, count, total in merged.values():
        items.append(AnalyticsStore.pane_update(owner, metric, pane, ghash, group, count, total))
        owners.append(None)
    return items, owners


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    ((kind, body),) = item.items()
    return {kind: dict(body)}
