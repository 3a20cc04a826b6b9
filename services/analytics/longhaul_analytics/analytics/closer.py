"""Closing windows: the watermark of an owner, and the pass that computes every window the
watermark has passed, exactly, from the values stored in its panes.

The watermark of one source is its newest event time minus the allowed lateness. An
owner's watermark is the least of its active sources' and never past now; a source that
sent nothing for `idle_timeout_s` is idle and holds nothing back (FLINK-18523's stall), so
with every source idle the watermark is now. A window closes once its end is at or
before the watermark; the worker runs a pass every `close_every_s`, so a window of an idle
source closes within its idle timeout plus that period and the time a pass takes.

A window is marked open by each event counted into it (after its transaction). A pass
reads the marks, and for each due one recomputes every group of the window from the
stored values, writes the groups that changed as their next revision (a conditional Put,
so two closers never both write one revision), and removes the mark only if nobody marked
the window again meanwhile. A late event within retention marks its window again, so the
next pass writes its revision: closed windows are revised, never frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable

from longhaul_analytics.analytics.aggregates import Summary, Value, summarize
from longhaul_analytics.analytics.model import Metric, group_hash
from longhaul_analytics.analytics.store import AnalyticsStore, OpenWindow, StoredResult
from longhaul_analytics.analytics.windows import HOUR_MS, PANE_MS, WINDOWS, WindowSpec
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["Closer", "owner_watermark", "window_values"]

log = logging.getLogger(__name__)

CONCURRENCY = 8  # windows closed at once in a pass


async def owner_watermark(
    store: AnalyticsStore, settings: AnalyticsSettings, owner: str, now_ms: int
) -> int:
    """The owner's watermark now (see the module's docstring)."""
    lateness = int(settings.allowed_lateness_s * 1000)
    idle = int(settings.idle_timeout_s * 1000)
    marks = [
        newest - lateness
        for newest, seen in (await store.sources(owner)).values()
        if now_ms - seen < idle
    ]
    return min([now_ms, *marks])


class PaneReader:
    """Reads a metric's stored values, each hour's partition once (the windows of one pass
    or one query share them: a 1h window and its sixty 1m windows)."""

    def __init__(self, store: AnalyticsStore, owner: str, metric: str) -> None:
        self.store = store
        self.owner = owner
        self.metric = metric
        self._filled: set[int] | None = None
        self._span: tuple[int, int] = (0, -1)
        self._values: dict[int, list[Value]] = {}
        self._results: dict[str, dict[int, list[StoredResult]]] = {}

    async def prepare(self, first_pane: int, last_pane: int) -> None:
        """Learn which hours of panes first..last hold values (one query)."""
        first, last = first_pane - first_pane % HOUR_MS, last_pane - last_pane % HOUR_MS
        self._filled = set(await self.store.hours(self.owner, self.metric, first, last))
        self._span = (first, last)

    async def values(self, first_pane: int, last_pane: int) -> list[Value]:
        """Every value stored in panes first..last."""
        first, last = first_pane - first_pane % HOUR_MS, last_pane - last_pane % HOUR_MS
        if self._filled is None or first < self._span[0] or last > self._span[1]:
            await self.prepare(first_pane, last_pane)
        assert self._filled is not None
        values: list[Value] = []
        for hour in sorted(h for h in self._filled if first <= h <= last):
            if hour not in self._values:
                self._values[hour] = await self.store.values(self.owner, self.metric, hour)
            values.extend(
                v
                for v in self._values[hour]
                if first_pane <= v.time_ms - v.time_ms % PANE_MS <= last_pane
            )
        return values

    async def results(self, window: str, start: int) -> list[StoredResult]:
        """The stored results of one window (those of the prepared span read at once)."""
        if window not in self._results:
            size = WINDOWS[window].size_ms
            found = await self.store.results(
                self.owner, self.metric, window, self._span[0] - size, self._span[1] + HOUR_MS
            )
            by_start: dict[int, list[StoredResult]] = defaultdict(list)
            for result in found:
                by_start[result.start].append(result)
            self._results[window] = by_start
        return self._results[window].get(start, [])


async def window_values(
    store: AnalyticsStore, owner: str, metric: str, first_pane: int, last_pane: int
) -> list[Value]:
    """Every value stored in the metric's panes first..last (only panes that hold any)."""
    return await PaneReader(store, owner, metric).values(first_pane, last_pane)


def by_group(values: list[Value]) -> dict[str, list[Value]]:
    """Values grouped by their group's key."""
    groups: dict[str, list[Value]] = defaultdict(list)
    for value in values:
        groups[value.group].append(value)
    return groups


async def compute(
    reader: PaneReader, metric: Metric, spec: WindowSpec, start: int
) -> dict[str, Summary]:
    """The exact aggregates of every group of one window."""
    values = await reader.values(start, start + spec.size_ms - PANE_MS)
    return {
        group: summarize(items, with_distinct=metric.distinct is not None)
        for group, items in by_group(values).items()
    }


class Closer:
    """Closes (and revises) the windows the watermark has passed."""

    def __init__(
        self,
        store: AnalyticsStore,
        settings: AnalyticsSettings,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        """`owner`: close only that owner's windows (a benchmark's own closer)."""
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every `close_every_s` while this process holds the closer's lease, until
        `stop` is set; a failed pass is logged. The lease lasts ten periods (at least 5 s)
        and is renewed once half of it has passed (not every pass: an idle service's
        closer writes once every few seconds); a standby asks for it every half lease, so a
        dead holder's passes are taken over within a lease and a half. Passes of two
        closers overlapping (clocks apart) stay exact: a window's revision is a conditional
        write."""
        ttl_ms = int(max(5.0, 10 * self.settings.close_every_s) * 1000)
        held_until = next_try = 0
        while not stop.is_set():
            try:
                now_ms = int(self.clock() * 1000)
                if now_ms >= held_until - ttl_ms // 2 and now_ms >= next_try:
                    taken = await self.store.lease(self.holder, now_ms, ttl_ms)
                    held_until = now_ms + ttl_ms if taken else 0
                    # a standby asks again after half a lease, not every pass: each refusal
                    # is a conditional write that failed, billed like one that did not
                    next_try = 0 if taken else now_ms + ttl_ms // 2
                if now_ms < held_until:
                    await self.close_due()
            except Exception:
                log.exception("closing windows failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.close_every_s)

    async def close_due(self) -> int:
        """One pass: close every due window; the number of windows settled."""
        now_ms = int(self.clock() * 1000)
        marks = await self.store.open_windows(self.owner)
        watermarks: dict[str, int] = {}
        metrics: dict[str, dict[str, Metric]] = {}
        readers: dict[tuple[str, str], PaneReader] = {}
        due: list[tuple[OpenWindow, Metric, WindowSpec, PaneReader]] = []
        for mark in marks:
            spec = WINDOWS.get(mark.window)
            if spec is None:
                await self.store.settle(mark)
                continue
            if mark.owner not in watermarks:
                watermarks[mark.owner] = await owner_watermark(
                    self.store, self.settings, mark.owner, now_ms
                )
                metrics[mark.owner] = {m.name: m for m in await self.store.metrics(mark.owner)}
            if spec.end(mark.start) > watermarks[mark.owner]:
                continue
            metric = metrics[mark.owner].get(mark.metric)
            if metric is None:
                await self.store.settle(mark)  # the metric is no longer declared
                continue
            reader = readers.get((mark.owner, mark.metric))
            if reader is None:
                reader = readers[(mark.owner, mark.metric)] = PaneReader(
                    self.store, mark.owner, mark.metric
                )
                same = [
                    m
                    for m in marks
                    if m.owner == mark.owner and m.metric == mark.metric and m.window in WINDOWS
                ]
                await reader.prepare(
                    min(m.start for m in same),
                    max(m.start + WINDOWS[m.window].size_ms for m in same) - PANE_MS,
                )
            due.append((mark, metric, spec, reader))
        settled = 0
        for i in range(0, len(due), CONCURRENCY):
            done = await asyncio.gather(
                *(
                    self.close(m, metric, spec, r, now_ms)
                    for m, metric, spec, r in due[i : i + CONCURRENCY]
                )
            )
            settled += sum(done)
        return settled

    async def close(
        self, mark: OpenWindow, metric: Metric, spec: WindowSpec, reader: PaneReader, now_ms: int
    ) -> bool:
        """Write the window's changed groups as their next revision; settle the mark."""
        summaries = await compute(reader, metric, spec, mark.start)
        existing = {r.group: r for r in await reader.results(mark.window, mark.start)}
        clean = True
        for group, summary in summaries.items():
            old = existing.get(group)
            if old is not None and old.summary == summary:
                continue
            written = await self.store.write_result(
                mark.owner,
                mark.metric,
                mark.window,
                mark.start,
                group_hash(group),
                group,
                summary,
                revision=old.revision + 1 if old else 1,
                at=now_ms,
            )
            clean = clean and written
        if not clean:
            return False  # another closer wrote meanwhile: the next pass looks again
        return await self.store.settle(mark)
