"""`POST /query`: read-only SQL over the caller's own events (docs/lake.md "The SQL sandbox").

The router's lifespan also submits the lake's compaction scheduler once (idempotent), so
the service needs no other start-up hook for it (docs/lake.md "Compaction").
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from longhaul.api import CallerDep, Problem
from longhaul.api.openapi import problems
from longhaul_analytics.analytics.lake import read_rows
from longhaul_analytics.analytics.sql import QueryRefused, check_sql, run_query
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.worker.lake_jobs import ensure_scheduler

__all__ = ["QueryRequest", "QueryResponse", "router"]

log = logging.getLogger(__name__)
CONCURRENT_QUERIES = 2  # per API process: each holds its rows and DuckDB's memory
SCHEDULER_SUBMIT_TIMEOUT_S = 10
ENCODERS: dict[Any, Any] = {
    bytes: lambda b: b.hex(),  # a BLOB, as hex: it need not be text
    float: lambda f: f if math.isfinite(f) else str(f),  # JSON has no NaN or infinity
}


@asynccontextmanager
async def _start_scheduler(app: FastAPI) -> AsyncIterator[None]:
    """Submit the compaction scheduler once the app's clients exist; best effort, an API
    that cannot reach the table still starts (its next start tries again)."""
    settings = app.state.settings
    state = app.state
    if (
        isinstance(settings, AnalyticsSettings)
        and settings.lake_schedule_on_start
        and hasattr(state, "job_store")
        and hasattr(state, "sqs")
    ):
        try:
            async with asyncio.timeout(SCHEDULER_SUBMIT_TIMEOUT_S):
                await ensure_scheduler(state.job_store, state.sqs, state.queue_url)
        except Exception as exc:
            log.warning("could not submit the lake's compaction scheduler: %r", exc)
    yield


router = APIRouter(tags=["analytics"], lifespan=_start_scheduler)
_gate = asyncio.Semaphore(CONCURRENT_QUERIES)


class QueryRequest(BaseModel):
    """SQL over the table `events` holding the caller's events with start <= time < end."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sql": "SELECT name, count(*) AS n FROM events GROUP BY name",
                    "start": "2026-01-01T00:00:00Z",
                    "end": "2026-01-01T01:00:00Z",
                }
            ]
        }
    )

    sql: str = Field(min_length=1, max_length=20_000)
    start: AwareDatetime
    end: AwareDatetime


class QueryResponse(BaseModel):
    """The result: at most `max_rows` rows; `truncated` when the query had more."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    max_rows: int
    loaded_rows: int
    elapsed_ms: float


def _settings(request: Request) -> AnalyticsSettings:
    settings = request.app.state.settings
    assert isinstance(settings, AnalyticsSettings)
    return settings


async def _s3(request: Request) -> Any:
    return await request.app.state.aws.get("s3")


SettingsDep = Annotated[AnalyticsSettings, Depends(_settings)]
S3Dep = Annotated[Any, Depends(_s3)]


@router.post("/query", response_model=QueryResponse, responses=problems(400))
async def query(
    body: QueryRequest, caller: CallerDep, settings: SettingsDep, s3: S3Dep
) -> QueryResponse:
    """Run one read-only SELECT over the caller's events in [start, end) (table `events`,
    the columns of a lake row). Refused with 400 and the reason: anything but one SELECT of
    `events`, a table function, file or URL access, a range too long or holding too many
    events, a failing query, one past the time limit."""
    try:
        check_sql(body.sql)
    except QueryRefused as exc:
        raise Problem(400, str(exc)) from None
    span = (body.end - body.start).total_seconds()
    if span <= 0:
        raise Problem(400, "end must be after start")
    if span > settings.query_max_range_s:
        raise Problem(
            400,
            f"the range is {span:.0f} s, over the limit of {settings.query_max_range_s} s",
            max_range_s=settings.query_max_range_s,
        )
    async with _gate:
        table = await read_rows(s3, str(settings.bucket_name), caller.sub, body.start, body.end)
        if table.num_rows > settings.query_max_loaded_rows:
            raise Problem(
                400,
                f"the range holds {table.num_rows} events, over the limit of "
                f"{settings.query_max_loaded_rows}; narrow it",
                max_loaded_rows=settings.query_max_loaded_rows,
            )
        try:
            outcome = await asyncio.to_thread(
                run_query,
                table,
                body.sql,
                max_rows=settings.query_max_rows,
                timeout_s=settings.query_timeout_s,
                memory_mib=settings.query_memory_mib,
            )
        except QueryRefused as exc:
            raise Problem(400, str(exc)) from None
    return QueryResponse(
        columns=outcome.columns,
        rows=jsonable_encoder([list(row) for row in outcome.rows], custom_encoder=ENCODERS),
        row_count=len(outcome.rows),
        truncated=outcome.truncated,
        max_rows=settings.query_max_rows,
        loaded_rows=table.num_rows,
        elapsed_ms=round(outcome.elapsed_s * 1000, 1),
    )
