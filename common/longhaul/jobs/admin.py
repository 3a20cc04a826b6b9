"""The admin routes every job-running service mounts beside its job routes: every owner's
jobs, a look at the service's dead-letter queue, and its redrive. Only callers in the
Cognito group `admin` (the token's `cognito:groups`) reach them; anyone else is a 403.

The DLQ routes reuse `longhaul.jobs.dlq`, the code of `longhaul dlq list` and `redrive`:
a look receives messages with a zero visibility timeout, so they stay in the DLQ, visible;
a redrive resets each failed job, copies its message to the work queue, then deletes it
from the DLQ (docs/jobs.md, "Dead letters"). One redrive call is bounded (`REDRIVE_MOST`
messages or `REDRIVE_S` seconds, whichever first), far inside a load balancer's idle
timeout: it answers what it moved and how many are `left`, and the console calls again
until none is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from longhaul.api.deps import CallerDep, JobStoreDep, require_group
from longhaul.api.openapi import problems
from longhaul.api.problems import Problem
from longhaul.jobs import dlq
from longhaul.jobs.queue import dlq_url_of, parse_job_message
from longhaul.jobs.store import InvalidCursor
from longhaul.jobs.types import Job, JobState

__all__ = [
    "ADMIN_GROUP",
    "AdminJobList",
    "DeadLetter",
    "DeadLetters",
    "Redriven",
    "admin_routes",
]

log = logging.getLogger(__name__)

ADMIN_GROUP = "admin"  # the Cognito group whose members reach these routes
PEEK_WAIT_S = 1  # a look's long poll: it ends the look once the DLQ has nothing new
# One redrive call's bound: at most this many messages, or no new receive after this many
# seconds (then one 2 s long poll and one batch at most), whichever comes first. An ALB
# closes a request idle for 60 s by default; a call ends well before.
REDRIVE_MOST = 500
REDRIVE_S = 20.0


class AdminJobList(BaseModel):
    """One page of every owner's jobs (or of one owner's), with the cursor of the next."""

    jobs: list[Job]
    next_cursor: str | None


class DeadLetter(BaseModel):
    """One message in the dead-letter queue, and what the job table says of its job."""

    message_id: str
    job_id: str | None = Field(description="the job the message runs; None for an event")
    type: str | None = Field(default=None, description="the job's type")
    owner: str | None = None
    state: JobState | None = Field(default=None, description="the job's state now")
    receives: int = Field(description="times the message was received, this look included")
    reason: str | None = Field(default=None, description="the job's error, when it has one")
    sent_at: datetime | None = Field(default=None, description="when it reached the DLQ")
    body: Any = Field(default=None, description="a message that is not a job's: its body")


class DeadLetters(BaseModel):
    """A look at the DLQ: its approximate count and up to `limit` of its messages, left in
    place. SQS hands out a sample per receive, so a large DLQ may hold messages no look
    returns (`limited`)."""

    count: int = Field(
        description="messages in the DLQ, visible, hidden and delayed (approximate on AWS)"
    )
    messages: list[DeadLetter]
    limited: bool = Field(description="more messages are in the DLQ than are listed")


class Redriven(BaseModel):
    """What one bounded redrive call did, and what it left: call again while `left` is above
    zero (and the last call moved something)."""

    moved: int = Field(description="messages copied to the work queue and deleted from the DLQ")
    jobs_reset: list[str] = Field(description="failed jobs queued again")
    not_failed: list[str] = Field(description="jobs whose message moved, not failed: not reset")
    other: int = Field(description="messages that are not a job's (events), moved")
    kept: list[str] = Field(description="jobs that failed again during the redrive, left")
    left: int = Field(
        description="messages in the DLQ once this call ended, visible, hidden and delayed"
    )
    stopped: bool = Field(
        description="this call ended at its bound (messages or seconds), not with the DLQ drained"
    )
    summary: str


async def _queues(request: Request) -> tuple[Any, str, str]:
    """The SQS client, the work queue's URL and its DLQ's (found once, from the queue's
    redrive policy, then kept); 404 for a queue without a DLQ."""
    state = request.app.state
    url: str | None = getattr(state, "dlq_url", None)
    if url is None:
        url = await dlq_url_of(state.sqs, state.queue_url)
        if url is None:
            raise Problem(404, "this service's queue has no dead-letter queue")
        state.dlq_url = url
    return state.sqs, state.queue_url, url


QueuesDep = Annotated[tuple[Any, str, str], Depends(_queues)]


def admin_routes() -> APIRouter:
    """The /admin routes of a job-running service, for members of `ADMIN_GROUP` only."""
    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(require_group(ADMIN_GROUP))],
        responses=problems(403),
    )

    @router.get("/jobs", response_model=AdminJobList, responses=problems(400))
    async def list_all_jobs(
        store: JobStoreDep,
        state: JobState | None = None,
        type: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        owner: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> AdminJobList:
        """Every owner's jobs, the most recent state change first (or, with `owner`, that
        owner's, newest first), filtered by state, type and owner; pass `next_cursor` back
        for the next page. With a type filter a page may hold fewer than `limit` jobs and
        still have a cursor."""
        try:
            if owner is not None:
                page = await store.page(owner, state=state, limit=limit, cursor=cursor)
                jobs = [job for job in page.jobs if type is None or job.type == type]
            else:
                page = await store.page_all(state=state, job_type=type, limit=limit, cursor=cursor)
                jobs = page.jobs
        except InvalidCursor as exc:
            raise Problem(400, str(exc)) from None
        return AdminJobList(jobs=jobs, next_cursor=page.cursor)

    @router.get("/dlq", response_model=DeadLetters, responses=problems(404))
    async def look_at_dlq(
        store: JobStoreDep,
        queues: QueuesDep,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> DeadLetters:
        """The DLQ's message count and its first `limit` messages, each with its job's id,
        type, owner, state and error, and its receive count. The messages stay in the DLQ,
        visible (a look counts as a receive)."""
        sqs, _, url = queues
        counts = await dlq.counts(sqs, url)
        if counts.total == 0:
            return DeadLetters(count=0, messages=[], limited=False)
        sample = await dlq.peek(sqs, url, limit=limit, wait_s=PEEK_WAIT_S)
        ids = [m.job_id for m in map(_job_message, sample.messages) if m is not None]
        rows = await store.rows(ids) if ids else {}
        return DeadLetters(
            count=sample.about,
            messages=[_dead_letter(m, rows) for m in sample.messages],
            limited=sample.limited,
        )

    @router.post("/dlq/redrive", response_model=Redriven, responses=problems(404))
    async def redrive_dlq(caller: CallerDep, store: JobStoreDep, queues: QueuesDep) -> Redriven:
        """Move DLQ messages back to the work queue, resetting each failed job first
        (`longhaul dlq redrive`), for at most `REDRIVE_MOST` messages (500) or `REDRIVE_S`
        seconds (20), whichever comes first; `left` says how many are still in the DLQ: call
        again until it is 0. A job that fails again during a call is left in the DLQ
        (`kept`)."""
        sqs, queue_url, url = queues
        done = await dlq.redrive(sqs, url, queue_url, store, most=REDRIVE_MOST, for_s=REDRIVE_S)
        left = (await dlq.counts(sqs, url)).total
        log.info(
            "dlq redriven by admin %s: moved %d, reset %d, not failed %d, other %d, kept %d, "
            "left %d",
            caller.sub,
            done.moved,
            len(done.jobs_reset),
            len(done.not_failed),
            done.other,
            len(done.kept),
            left,
        )
        return Redriven(
            moved=done.moved,
            jobs_reset=done.jobs_reset,
            not_failed=done.not_failed,
            other=done.other,
            kept=done.kept,
            left=left,
            stopped=done.stopped,
            summary=done.summary(),
        )

    return router


def _job_message(message: dict[str, Any]) -> Any:
    return parse_job_message(message["Body"])


def _dead_letter(message: dict[str, Any], rows: dict[str, dict[str, Any]]) -> DeadLetter:
    """A DLQ message as the admin routes show it."""
    described = dlq.describe(message)
    job_id = described["job_id"]
    row = rows.get(job_id) if job_id else None
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    return DeadLetter(
        message_id=described["message_id"],
        job_id=job_id,
        type=row.get("type") if row else None,
        owner=row.get("owner") if row else None,
        state=JobState(row["state"]) if row and row.get("state") in set(JobState) else None,
        receives=described["receives"],
        reason=row.get("error") if row else None,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        body=described["body"],
    )
