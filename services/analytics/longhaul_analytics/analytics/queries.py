"""Reading aggregates back: closed windows from their results, open ones computed from the
values stored so far (labelled not final, their percentiles approximate), sessions cut from
the stored values of the range."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from longhaul_analytics.analytics.aggregates import Summary, summarize
from longhaul_analytics.analytics.closer import PaneReader, by_group, compute, window_values
from longhaul_analytics.analytics.model import Metric
from longhaul_analytics.analytics.store import AnalyticsStore
from longhaul_analytics.analytics.windows import PANE_MS, WindowSpec, pane_of, sessions

__all__ = ["WindowRow", "matches", "session_rows", "window_rows"]


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One group's aggregates over one window."""

    start: int
    end: int
    group: dict[str, str | None]
    summary: Summary
    final: bool  # closed at this content: exact; otherwise still open (or being revised)
    revision: int  # 0 while never closed

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "group": self.group,
            **self.summary.as_dict(),
            "final": self.final,
            "approximate": not self.final,
            "revision": self.revision,
        }


def group_of(metric: Metric, key: str) -> dict[str, str | None]:
    """A group key as {dimension: value}."""
    values = json.loads(key)
    return dict(zip(metric.dimensions, values, strict=False))


def matches(group: dict[str, str | None], wanted: dict[str, str]) -> bool:
    """Whether `group` has every dimension value of `wanted`."""
    return all(group.get(k) == v for k, v in wanted.items())


async def window_rows(
    store: AnalyticsStore,
    owner: str,
    metric: Metric,
    spec: WindowSpec,
    start_ms: int,
    end_ms: int,
    wanted: dict[str, str],
) -> list[WindowRow]:
    """The metric's windows whose start is in [start_ms, end_ms), per group, by start."""
    starts = spec.starts_between(start_ms, end_ms)
    if not starts:
        return []
    first, last = starts[0], starts[-1]
    open_starts = {
        m.start
        for m in await store.open_windows(owner)
        if m.metric == metric.name and m.window == spec.name and first <= m.start <= last
    }
    rows: list[WindowRow] = []
    stored = await store.results(owner, metric.name, spec.name, first, last)
    revisions = {(r.start, r.group): r.revision for r in stored}
    for result in stored:
        if result.start in open_starts:
            continue
        group = group_of(metric, result.group)
        if matches(group, wanted):
            rows.append(
                WindowRow(
                    result.start,
                    spec.end(result.start),
                    group,
                    result.summary,
                    True,
                    result.revision,
                )
            )
    reader = PaneReader(store, owner, metric.name)
    if open_starts:
        await reader.prepare(min(open_starts), max(open_starts) + spec.size_ms - PANE_MS)
    for start in sorted(open_starts):
        for key, summary in (await compute(reader, metric, spec, start)).items():
            group = group_of(metric, key)
            if matches(group, wanted):
                revision = revisions.get((start, key), 0)
                rows.append(WindowRow(start, spec.end(start), group, summary, False, revision))
    rows.sort(key=lambda r: (r.start, json.dumps(list(r.group.values()))))
    return rows


async def session_rows(
    store: AnalyticsStore,
    owner: str,
    metric: Metric,
    gap_ms: int,
    start_ms: int,
    end_ms: int,
    wanted: dict[str, str],
    watermark_ms: int,
) -> list[WindowRow]:
    """Sessions of each group among the events with start_ms <= time < end_ms: runs whose
    events follow each other by at most `gap_ms`. A session is final once the watermark is
    past its last event plus the gap; a session that crosses the range's edges is cut there."""
    values = [
        v
        for v in await window_values(
            store, owner, metric.name, pane_of(start_ms), pane_of(end_ms - 1)
        )
        if start_ms <= v.time_ms < end_ms
    ]
    rows: list[WindowRow] = []
    for key, items in by_group(values).items():
        group = group_of(metric, key)
        if not matches(group, wanted):
            continue
        for first, last in sessions((v.time_ms for v in items), gap_ms):
            inside = [v for v in items if first <= v.time_ms <= last]
            summary = summarize(inside, with_distinct=metric.distinct is not None)
            final = last + gap_ms <= watermark_ms
            rows.append(WindowRow(first, last + 1, group, summary, final, 1 if final else 0))
    rows.sort(key=lambda r: (r.start, json.dumps(list(r.group.values()))))
    return rows
