"""The job routes every job-running service mounts: submit, get, list, cancel, and a
Server-Sent Events stream of progress and state changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from botocore.exceptions import ClientError
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from sse_starlette.sse import EventSourceResponse

from longhaul.api.deps import CallerDep, JobStoreDep, PublisherDep, QuotasDep
from longhaul.api.openapi import json_body, problems
from longhaul.api.problems import Problem
from longhaul.jobs.exceptions import IdempotencyConflict, JobNotFound
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.store import InvalidCursor, JobStore, unstorable_numbers
from longhaul.jobs.store.items import UNSTORABLE
from longhaul.jobs.submit import publish_fact, submit_job
from longhaul.jobs.types import TERMINAL, Job, JobState
from longhaul.quotas import QuotaStore, StreamSlot

__all__ = ["JobList", "SubmitJob", "document_jobs", "job_routes", "submit_schema"]

log = logging.getLogger(__name__)

SSE_POLL_S = 0.5  # a stream's poll while the job reports; doubled while it is quiet
SSE_POLL_MAX_S = 2.0


class SubmitJob(BaseModel):
    """A job to run: its type and the payload its handler takes."""

    type: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)


class JobList(BaseModel):
    """One page of the caller's jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def submit_schema(types: JobTypes) -> Any:
    """The body POST /jobs takes, as the OpenAPI documents it: one object per public job
    type, told apart by `type`, whose `payload` is that type's payload model (optional when
    the model's every field has a default). The route checks exactly this, in two steps:
    the type (422 naming the known types), then the payload (422 naming its fields)."""
    variants: list[Any] = []
    for name in types.public_names:
        job_type = types.public(name)
        assert job_type is not None
        try:
            job_type.payload.model_validate({})
            payload: Any = (job_type.payload, Field(default_factory=dict))
        except ValidationError:
            payload = (job_type.payload, ...)
        tag: Any = Literal[name]
        variants.append(
            create_model(
                f"Submit{_camel(name)}",
                __config__=ConfigDict(extra="ignore"),
                __doc__=f"Submit a {name!r} job.",
                type=(tag, ...),
                payload=payload,
            )
        )
    if not variants:
        return SubmitJob
    if len(variants) == 1:
        return variants[0]
    return Annotated[_union(variants), Field(discriminator="type")]


def _union(variants: list[Any]) -> Any:
    union = variants[0]
    for variant in variants[1:]:
        union = union | variant
    return union


def document_jobs(types: JobTypes) -> Any:
    """A patch of the service's OpenAPI document: a job's `payload` and `result` name the
    payload models of the public job types and the output models they declare."""

    def patch(schema: dict[str, Any]) -> None:
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        job = components.get("Job")
        if job is None:
            return
        payloads: list[Any] = []
        outputs: list[Any] = []
        for name in types.public_names:
            job_type = types.public(name)
            assert job_type is not None
            payloads.append(job_type.payload)
            if job_type.output is not None:
                outputs.append(job_type.output)
        refs = _component_refs(components, payloads)
        job["properties"]["payload"] = {
            "description": "the payload, as the job type's payload model took it",
            "anyOf": [*refs, {"type": "object"}],
        }
        result_refs = _component_refs(components, outputs)
        job["properties"]["result"] = {
            "description": "the result: the job type's output model when it declares one",
            "anyOf": [*result_refs, {"type": "object"}, {"type": "null"}],
        }

    return patch


def _component_refs(components: dict[str, Any], models: list[Any]) -> list[dict[str, str]]:
    refs = []
    for model in models:
        document = TypeAdapter(model).json_schema(
            ref_template="#/components/schemas/{model}", mode="serialization"
        )
        for name, definition in document.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, document)
        refs.append({"$ref": f"#/components/schemas/{model.__name__}"})
    return refs


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
]


def job_routes(service: str, types: JobTypes) -> APIRouter:
    """The /jobs routes for `service`'s job types."""
    router = APIRouter(prefix="/jobs", tags=["jobs"])
    submit_body = json_body(submit_schema(types))
    submit_body["requestBody"]["content"]["application/json"]["schema"]["description"] = (
        "a job of one of the service's types, its payload that type's"
    )

    @router.post(
        "",
        status_code=202,
        response_model=Job,
        responses=problems(404, 409, 503),
        openapi_extra=submit_body,
    )
    async def submit(
        body: SubmitJob,
        caller: CallerDep,
        store: JobStoreDep,
        publisher: PublisherDep,
        quotas: QuotasDep,
        request: Request,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> Job:
        """Accept a job; with an Idempotency-Key, a retry returns the first job. 429 when
        the caller has as many jobs queued or running as their quota allows."""
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
        payload = model.model_dump(mode="json")
        unstorable = [
            {
                "loc": ("body", "payload", *path),
                "msg": UNSTORABLE,
                "type": "number_unstorable",
                "input": number,
            }
            for path, number in unstorable_numbers(payload)
        ]
        if unstorable:
            raise RequestValidationError(unstorable)
        if job_type.admit is not None and not job_type.admit(model, caller.sub):
            raise Problem(404, "the job's input does not exist or is not yours")
        slot = await quotas.take_job_slot(caller.sub, key=idempotency_key)
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
            await _release(quotas, caller.sub, slot)
            raise Problem(
                409, "this Idempotency-Key was used with a different request body"
            ) from None
        except ClientError as exc:
            await _release(quotas, caller.sub, slot)
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            # Nothing was written: writes with this key kept cancelling each other.
            raise Problem(
                503, "the job could not be written; retry", headers={"Retry-After": "1"}
            ) from None
        if slot is not None:
            if created:
                await quotas.bind_job_slot(caller.sub, slot, job.id)
            else:  # a replay: the first request's slot counts its job
                await quotas.release_job_slot(caller.sub, slot)
        response.headers["Location"] = f"/jobs/{job.id}"
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        return job

    @router.get("", response_model=JobList, responses=problems(400))
    async def list_jobs(
        caller: CallerDep,
        store: JobStoreDep,
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
    async def get_job(job_id: str, caller: CallerDep, store: JobStoreDep) -> Job:
        """One of the caller's jobs."""
        try:
            return await store.get(job_id, caller.sub)
        except JobNotFound:
            raise Problem(404, "no such job") from None

    @router.post("/{job_id}/cancel", status_code=202, response_model=Job)
    async def cancel_job(
        job_id: str, caller: CallerDep, store: JobStoreDep, publisher: PublisherDep
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

    @router.get(
        "/{job_id}/events",
        response_class=EventSourceResponse,
        responses={
            200: {
                "description": "`state` and `progress` events, each a JobEvent as JSON",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    async def job_events(
        job_id: str,
        caller: CallerDep,
        store: JobStoreDep,
        quotas: QuotasDep,
        request: Request,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
    ) -> EventSourceResponse:
        """Server-Sent Events of the job's progress and state until it ends, or until the
        stream's lifetime (send `Last-Event-ID` on reconnecting to resume after it). 429
        when the caller has as many streams open as their quota allows."""
        try:
            await store.get(job_id, caller.sub)
        except JobNotFound:
            raise Problem(404, "no such job") from None
        slot = await quotas.open_stream(caller.sub)
        return EventSourceResponse(_follow(store, job_id, last_event_id, slot, request), ping=15)

    return router


async def _follow(
    store: JobStore, job_id: str, last: str | None, slot: StreamSlot, request: Request
) -> AsyncIterator[dict[str, str]]:
    """The job's events after `last`, polled (one query a poll, less often while nothing
    happens) until the job ends, the client goes, or the stream's lifetime is up."""
    delay = SSE_POLL_S
    ended_quietly = False
    try:
        while not await request.is_disconnected():
            events, job = await store.poll(job_id, after=last)
            for item in events:
                last = item.id
                yield {"id": item.id, "event": item.kind, "data": item.model_dump_json()}
                if item.kind == "state" and item.state in TERMINAL:
                    return
            if job is None:
                return
            if job.terminal and not events:
                # Its terminal entry is written just after the row: look once more, then end
                # (a crash between the two writes leaves no entry).
                if ended_quietly:
                    return
                ended_quietly = True
                continue
            if time.time() >= slot.ends_at or not await slot.renew_if_due():
                return  # the client reconnects with Last-Event-ID
            delay = SSE_POLL_S if events or job.terminal else min(delay * 2, SSE_POLL_MAX_S)
            await asyncio.sleep(delay)
    finally:
        # A client that goes cancels this generator's scope: free the slot regardless.
        with anyio.move_on_after(5, shield=True):
            await slot.close()


async def _release(quotas: QuotaStore, owner: str, slot: str | None) -> None:
    if slot is not None:
        await quotas.release_job_slot(owner, slot)
