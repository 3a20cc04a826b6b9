"""Metrics (declare, list), aggregates by window and group, late events, and an SSE stream
of window updates: each caller's own only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from longhaul.api import CallerDep, Problem
from longhaul.api.openapi import problems
from longhaul_analytics.analytics.aggregates import Summary
from longhaul_analytics.analytics.closer import PaneReader, compute, owner_watermark
from longhaul_analytics.analytics.model import BUILTIN, Metric, MetricSpec, to_ms
from longhaul_analytics.analytics.queries import (
    WindowRow,
    group_of,
    matches,
    session_rows,
    window_rows,
)
from longhaul_analytics.analytics.store import AnalyticsStore
from longhaul_analytics.analytics.windows import SESSION, WINDOWS
from longhaul_analytics.api.deps import AnalyticsSettingsDep, EngineDep, StoreDep
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["router"]

router = APIRouter(tags=["analytics"])

MAX_WINDOWS = 1440  # windows one query may span
MAX_SESSION_RANGE_MS = 86_400_000


class MetricOut(BaseModel):
    """A metric the caller can query."""

    name: str
    event: str
    dimensions: list[str]
    value: str | None
    distinct: str | None
    builtin: bool


class WindowOut(BaseModel):
    """One group's aggregates over one window (also the data of a stream's events)."""

    start: str = Field(description="the window's start, ISO 8601 UTC")
    end: str = Field(description="the window's end (exclusive), ISO 8601 UTC")
    group: dict[str, str | None] = Field(description="dimension -> value")
    count: int
    sum: float | None = Field(description="of the metric's value property; None without one")
    min: float | None
    max: float | None
    distinct: int | None = Field(description="distinct values of the metric's distinct key")
    p50: float | None
    p95: float | None
    p99: float | None
    final: bool = Field(description="closed at this content: exact")
    approximate: bool = Field(description="still open, or being revised: counted so far")
    revision: int = Field(description="how often the window closed (a late event revises it)")


class Aggregates(BaseModel):
    """One metric's windows of one kind, per group."""

    metric: str
    window: str
    dimensions: list[str]
    watermark: datetime
    windows: list[WindowOut]


class LateEvents(BaseModel):
    """A page of the caller's events that no window counts, oldest first."""

    events: list[dict[str, Any]]
    next_cursor: str | None


def _out(metric: Metric) -> MetricOut:
    return MetricOut(
        name=metric.name,
        event=metric.event,
        dimensions=list(metric.dimensions),
        value=metric.value,
        distinct=metric.distinct,
        builtin=metric.event == "*",
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _row(row: WindowRow) -> dict[str, Any]:
    data = row.as_dict()
    data["start"], data["end"] = _iso(row.start), _iso(row.end)
    return data


MetricName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


@router.put("/metrics/{name}", response_model=MetricOut, responses=problems(409))
async def declare_metric(
    name: MetricName,
    spec: MetricSpec,
    caller: CallerDep,
    engine: EngineDep,
    settings: AnalyticsSettingsDep,
) -> MetricOut:
    """Declare what to aggregate: events named `event`, grouped by `dimensions`, their
    `value` property summed and ranked, their `distinct` property counted. It counts the
    events ingested from now on (within ANALYTICS_METRICS_CACHE_S on every process)."""
    if name == BUILTIN.name:
        raise Problem(409, f"{name!r} is the built-in metric (every event by name)")
    if not await engine.store.put_metric(caller.sub, name, spec, settings.max_metrics):
        raise Problem(
            409,
            f"you have {settings.max_metrics} metrics, the limit",
            max_metrics=settings.max_metrics,
        )
    engine.forget_metrics(caller.sub)
    return _out(Metric.of(name, spec))


@router.get("/metrics", response_model=list[MetricOut])
async def list_metrics(caller: CallerDep, store: StoreDep) -> list[MetricOut]:
    """The caller's metrics, the built-in `events` first."""
    return [_out(m) for m in await store.metrics(caller.sub)]


async def _metric(store: AnalyticsStore, owner: str, name: str) -> Metric:
    for metric in await store.metrics(owner):
        if metric.name == name:
            return metric
    raise Problem(404, f"no metric {name!r}; PUT /metrics/{name} declares it")


def _wanted(metric: Metric, group: str | None) -> dict[str, str]:
    """`group=dim:value,dim:value` as a filter."""
    if not group:
        return {}
    wanted: dict[str, str] = {}
    for part in group.split(","):
        dimension, found, value = part.partition(":")
        if not found or dimension not in metric.dimensions:
            raise Problem(
                422,
                f"group {part!r} is not <dimension>:<value> of this metric's dimensions",
                dimensions=list(metric.dimensions),
            )
        wanted[dimension] = value
    return wanted


def _window_name(window: str) -> str:
    if window != SESSION and window not in WINDOWS:
        raise Problem(422, f"unknown window {window!r}", windows=[*WINDOWS, SESSION])
    return window


@router.get("/aggregates", response_model=Aggregates, responses=problems(404))
async def aggregates(
    caller: CallerDep,
    store: StoreDep,
    settings: AnalyticsSettingsDep,
    metric: Annotated[str, Query(max_length=64)],
    window: Annotated[str, Query(max_length=16)],
    start: AwareDatetime,
    end: AwareDatetime,
    group: Annotated[str | None, Query(max_length=1024)] = None,
) -> Aggregates:
    """The metric's windows starting in [start, end), per group (`group=dim:value,...`
    filters). A window is `final` once the watermark passed its end (exact; `revision`
    counts its closes, a late event revises it); before that it shows what was counted so
    far, `approximate`. `window` is 1m, 1h, 1d (tumbling), 5m/1m (5 minutes every minute)
    or session (gap ANALYTICS_SESSION_GAP_S; cut at the range's edges)."""
    chosen = await _metric(store, caller.sub, metric)
    name = _window_name(window)
    wanted = _wanted(chosen, group)
    start_ms, end_ms = to_ms(start), to_ms(end)
    if end_ms <= start_ms:
        raise Problem(422, "end must be after start")
    now_ms = int(time.time() * 1000)
    watermark = await owner_watermark(store, settings, caller.sub, now_ms)
    if name == SESSION:
        if end_ms - start_ms > MAX_SESSION_RANGE_MS:
            raise Problem(422, "sessions are read over at most one day at a time")
        rows = await session_rows(
            store,
            caller.sub,
            chosen,
            settings.session_gap_s * 1000,
            start_ms,
            end_ms,
            wanted,
            watermark,
        )
    else:
        spec = WINDOWS[name]
        if len(spec.starts_between(start_ms, end_ms)) > MAX_WINDOWS:
            raise Problem(422, f"a query spans at most {MAX_WINDOWS} windows")
        rows = await window_rows(store, caller.sub, chosen, spec, start_ms, end_ms, wanted)
    return Aggregates(
        metric=chosen.name,
        window=name,
        dimensions=list(chosen.dimensions),
        watermark=datetime.fromtimestamp(watermark / 1000, UTC),
        windows=[WindowOut.model_validate(_row(r)) for r in rows],
    )


@router.get("/late-events", response_model=LateEvents)
async def late_events(
    caller: CallerDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> LateEvents:
    """The caller's events that arrived past their source's watermark minus the retention:
    kept here (and in the lake), never in a window."""
    events, next_cursor = await store.late_events(caller.sub, limit=limit, cursor=cursor)
    for event in events:
        event["time"] = _iso(int(event["time"]))
        event["received"] = _iso(int(event["received"]))
    return LateEvents(events=events, next_cursor=next_cursor)


@router.get(
    "/aggregates/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`live` and `window` events, each a window's row as JSON",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problems(404),
    },
)
async def stream(
    caller: CallerDep,
    store: StoreDep,
    settings: AnalyticsSettingsDep,
    request: Request,
    metric: Annotated[str, Query(max_length=64)],
    window: Annotated[str, Query(max_length=16)],
    group: Annotated[str | None, Query(max_length=1024)] = None,
) -> EventSourceResponse:
    """Server-Sent Events of the metric's windows as they change: `live` (an open window's
    aggregates so far, approximate) and `window` (a window closed, or revised by a late
    event, every aggregate exact), until the stream's lifetime (reconnect then)."""
    chosen = await _metric(store, caller.sub, metric)
    if window not in WINDOWS:
        raise Problem(422, f"unknown window {window!r}", windows=list(WINDOWS))
    wanted = _wanted(chosen, group)
    return EventSourceResponse(
        _follow(store, settings, caller.sub, chosen, window, wanted, request), ping=15
    )


async def _follow(
    store: AnalyticsStore,
    settings: AnalyticsSettings,
    owner: str,
    metric: Metric,
    window: str,
    wanted: dict[str, str],
    request: Request,
) -> AsyncIterator[dict[str, str]]:
    """Poll the results written since the last poll and the open windows' panes."""
    spec = WINDOWS[window]
    began = time.time()
    since = int(began * 1000) - 1
    sent: set[tuple[int, str, int]] = set()
    live: dict[tuple[int, str], Summary] = {}
    while not await request.is_disconnected():
        if time.time() - began > settings.stream_lifetime_s:
            return
        now_ms = int(time.time() * 1000)
        for result in await store.results(
            owner, metric.name, window, 0, now_ms, after_at=since - 1
        ):
            seen = (result.start, result.group, result.revision)
            group = group_of(metric, result.group)
            if seen in sent or not matches(group, wanted):
                continue
            sent.add(seen)
            since = max(since, result.at)
            row = WindowRow(
                result.start, spec.end(result.start), group, result.summary, True, result.revision
            )
            yield {"event": "window", "data": json.dumps(_row(row))}
        opened = [
            m
            for m in await store.open_windows(owner)
            if m.metric == metric.name and m.window == window
        ]
        reader = PaneReader(store, owner, metric.name)
        for mark in opened:
            for key, summary in (await compute(reader, metric, spec, mark.start)).items():
                group = group_of(metric, key)
                if live.get((mark.start, key)) == summary or not matches(group, wanted):
                    continue
                live[(mark.start, key)] = summary
                row = WindowRow(mark.start, spec.end(mark.start), group, summary, False, 0)
                yield {"event": "live", "data": json.dumps(_row(row))}
        await asyncio.sleep(settings.stream_poll_s)
