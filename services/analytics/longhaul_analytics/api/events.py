"""`POST /events`: a batch of client events, owned by the caller, counted once per id."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from longhaul.api import CallerDep, Problem
from longhaul.api.openapi import json_body, problems
from longhaul_analytics.analytics.model import (
    MAX_BATCH_EVENTS,
    ClientEvent,
    EventBatch,
    Record,
    digest,
    to_ms,
)
from longhaul_analytics.api.deps import EngineDep

__all__ = ["IngestReport", "Rejected", "router"]

router = APIRouter(tags=["analytics"])

MAX_BATCH_BYTES = 1024 * 1024


class Rejected(BaseModel):
    """An event of the batch that was not taken, and why."""

    id: str
    reason: str


class IngestReport(BaseModel):
    """What became of each event of a batch (by id)."""

    accepted: list[str]
    duplicates: list[str]
    late: list[str]
    rejected: list[Rejected]


def record_of(event: ClientEvent, owner: str, received_ms: int) -> Record:
    """The engine's record of a client event."""
    time_ms = to_ms(event.time)
    properties: dict[str, Any] = dict(event.properties)
    return Record(
        owner=owner,
        id=event.id,
        name=event.name,
        time_ms=time_ms,
        properties=properties,
        source="client",
        received_ms=received_ms,
        digest=digest(event.name, time_ms, properties),
    )


@router.post(
    "/events",
    response_model=IngestReport,
    responses={
        207: {"model": IngestReport, "description": "some events were rejected"},
        **problems(413, 422),
    },
    openapi_extra=json_body(EventBatch),
)
async def post_events(
    request: Request, caller: CallerDep, engine: EngineDep, response: Response
) -> IngestReport:
    """Count a batch of up to 500 events (1 MiB): each id once, however often it is sent.
    200 when every event was taken (`accepted` now, `duplicates` taken before, `late`:
    past the watermark's retention, kept in GET /late-events instead of the windows); 207
    when some were `rejected`, each with its reason (a reused id with another body, a time
    too far ahead or behind, a metric's group limit). A malformed batch is refused whole:
    422, or 413 past 500 events or 1 MiB."""
    body = await request.body()
    if len(body) > MAX_BATCH_BYTES:
        raise Problem(413, f"a batch is at most {MAX_BATCH_BYTES} bytes", max_bytes=MAX_BATCH_BYTES)
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise Problem(422, f"the body is not JSON: {exc}") from None
    events = document.get("events") if isinstance(document, dict) else None
    if isinstance(events, list) and len(events) > MAX_BATCH_EVENTS:
        raise Problem(
            413,
            f"a batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(events)}",
            max_events=MAX_BATCH_EVENTS,
        )
    try:
        batch = EventBatch.model_validate(document)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    received_ms = int(time.time() * 1000)
    records = [record_of(e, caller.sub, received_ms) for e in batch.events]
    result = await engine.ingest(records)
    if result.rejected:
        response.status_code = 207
    return IngestReport(
        accepted=result.accepted,
        duplicates=result.duplicates,
        late=result.late,
        rejected=[Rejected(id=r.id, reason=r.reason) for r in result.rejected],
    )
