"""The job routes every job-running service mounts: submit, get, list, cancel, and a
Server-Sent Events stream of progress and state changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse

from longhaul.api.deps import CallerDep, PublisherDep
from longhaul.api.problems import Problem
from longhaul.jobs.exceptions import IdempotencyConflict, JobNotFound
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.store import InvalidCursor, JobStore
from longhaul.jobs.submit import publish_fact, submit_job
from longhaul.jobs.types import TERMINAL, Job, JobState

__all__ = ["JobList", "SubmitJob", "job_routes"]

log = logging.getLogger(__name__)

SSE_POLL_S = 0.5


class SubmitJob(BaseModel):
    """A job to run: its type and the payload its handler takes."""

    type: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)


class JobList(BaseModel):
    """One page of the caller's jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.job_store
    return store


StoreDep = Annotated[JobStore, Depends(_store)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
]


def job_routes(service: str, types: JobTypes) -> APIRouter:
    """The /jobs routes for `service`'s job types."""
    router = APIRouter(prefix="/jobs", tags=["jobs"])

    @router.post("", status_code=202, response_model=Job)
    async def submit(
        body: SubmitJob,
        caller: CallerDep,
        store: StoreDep,
        publisher: PublisherDep,
        request: Request,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> Job:
        """Accept a job; with an Idempotency-Key, a retry returns the first job."""
        job_type = types.public(body.type)
        if job_type is None:
            raise Problem(422, f"unknown job type {body.type!r}", known_types=types.public_names)
        try:
            model = job_type.payload.model_validate(body.payload)
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {**e, "loc": ("body", "payload", *e["loc"])}
                    for e in exc.errors(include_url=False)
                ]
            ) from None
        if job_type.admit is not None and not job_type.admit(model, caller.sub):
            raise Problem(404, "the job's input does not exist or is not yours")
        payload = model.model_dump(mode="json")
        try:
            job, created = await submit_job(
                service=service,
                store=store,
                sqs=request.app.state.sqs,
                queue_url=request.app.state.queue_url,
                publisher=publisher,
                owner=caller.sub,
                job_type=body.type,
                payload=payload,
                idempotency_key=idempotency_key,
            )
        except IdempotencyConflict:
            raise Problem(
                409, "this Idempotency-Key was used with a different request body"
            ) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            # Nothing was written: writes with this key kept cancelling each other.
            raise Problem(
                503, "the job could not be written; retry", headers={"Retry-After": "1"}
            ) from None
        response.headers["Location"] = f"/jobs/{job.id}"
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        return job

    @router.get("", response_model=JobList)
    async def list_jobs(
        caller: CallerDep,
        store: StoreDep,
        state: JobState | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> JobList:
        """The caller's jobs, newest first; pass `next_cursor` back for the next page."""
        try:
            page = await store.page(caller.sub, state=state, limit=limit, cursor=cursor)
        except InvalidCursor as exc:
            raise Problem(400, str(exc)) from None
        return JobList(jobs=page.jobs, next_cursor=page.cursor)

    @router.get("/{job_id}", response_model=Job)
    async def get_job(job_id: str, caller: CallerDep, store: StoreDep) -> Job:
        """One of the caller's jobs."""
        try:
            return await store.get(job_id, caller.sub)
        except JobNotFound:
            raise Problem(404, "no such job") from None

    @router.post("/{job_id}/cancel", status_code=202, response_model=Job)
    async def cancel_job(
        job_id: str, caller: CallerDep, store: StoreDep, publisher: PublisherDep
    ) -> Job:
        """Cancel a queued or parked job now, or ask a running one to stop (its state
        follows)."""
        try:
            job, ended_here = await store.cancel(job_id, caller.sub)
        except JobNotFound:
            raise Problem(404, "no such job") from None
        if ended_here:
            # Cancelled here, not by a worker: a queued job, or a parent parked on children.
            await publish_fact(service, "cancelled", job, publisher)
        if job.state is JobState.CANCELLED or job.cancel_requested:
            await store.cancel_children(job.id)  # its child processes stop with it
        return job

    @router.get("/{job_id}/events")
    async def job_events(
        job_id: str,
        caller: CallerDep,
        store: StoreDep,
        request: Request,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
    ) -> EventSourceResponse:
        """Server-Sent Events of the job's progress and state until it ends; resumes after
        `Last-Event-ID`."""
        try:
            await store.get(job_id, caller.sub)
        except JobNotFound:
            raise Problem(404, "no such job") from None

        async def stream() -> AsyncIterator[dict[str, str]]:
            last = last_event_id
            while not await request.is_disconnected():
                for item in await store.events(job_id, after=last):
                    last = item.id
                    yield {"id": item.id, "event": item.kind, "data": item.model_dump_json()}
                    if item.kind == "state" and item.state in TERMINAL:
                        return
                job = await store.get(job_id)
                if job.terminal and not await store.events(job_id, after=last):
                    return  # ended without its history entry (a crash between the two writes)
                await asyncio.sleep(SSE_POLL_S)

        return EventSourceResponse(stream(), ping=15)

    return router
