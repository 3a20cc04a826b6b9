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
import time
from collections import defaultdict
from collections.abc import Callable

from longhaul_analytics.analytics.aggregates import Summary, Value, summarize
from longhaul_analytics.analytics.model import Metric, group_hash
from longhaul_analytics.analytics.store import AnalyticsStore, OpenWindow
from longhaul_analytics.analytics.windows import PANE_MS, WINDOWS, WindowSpec
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["Closer", "owner_watermark", "window_values"]

log = logging.getLogger(__name__)


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


async def window_values(
    store: AnalyticsStore, owner: str, metric: str, first_pane: int, last_pane: int
) -> list[Value]:
    """Every value stored in the metric's panes first..last (only panes that hold any)."""
    panes = sorted({p for p, *_ in await store.panes(owner, metric, first_pane, last_pane)})
    values: list[Value] = []
    for pane in panes:
        values.extend(await store.values(owner, metric, pane))
    return values


def by_group(values: list[Value]) -> dict[str, list[Value]]:
    """Values grouped by their group's key."""
    groups: dict[str, list[Value]] = defaultdict(list)
    for value in values:
        groups[value.group].append(value)
    return groups


async def compute(
    store: AnalyticsStore, owner: str, metric: Metric, spec: WindowSpec, start: int
) -> dict[str, Summary]:
    """The exact aggregates of every group of one window."""
    last_pane = start + spec.size_ms - PANE_MS
    values = await window_values(store, owner, metric.name, start, last_pane)
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
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every `close_every_s` until `stop` is set; a failed pass is logged."""
        while not stop.is_set():
            try:
                await self.close_due()
            except Exception:
                log.exception("closing windows failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.close_every_s)

    async def close_due(self) -> int:
        """One pass: close every due window; the number of windows settled."""
        now_ms = int(self.clock() * 1000)
        marks = await self.store.open_windows()
        watermarks: dict[str, int] = {}
        metrics: dict[str, dict[str, Metric]] = {}
        settled = 0
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
            if await self.close(mark, metric, spec, now_ms):
                settled += 1
        return settled

    async def close(self, mark: OpenWindow, metric: Metric, spec: WindowSpec, now_ms: int) -> bool:
        """Write the window's changed groups as their next revision; settle the mark."""
        summaries = await compute(self.store, mark.owner, metric, spec, mark.start)
        existing = {
            r.group: r
            for r in await self.store.results(
                mark.owner, mark.metric, mark.window, mark.start, mark.start
            )
        }
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
