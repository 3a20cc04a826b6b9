"""The echo service: one authenticated route that publishes, one handler that logs."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from longhaul import Service
from longhaul.api import Caller, CallerDep, PublisherDep, require_group
from longhaul.events import Delivery, EventRouter
from longhaul.jobs.events import JobFact
from tests.support.echo.events import JOB_FACTS, MessageSent
from tests.support.echo.jobs import Effects, jobs
from tests.support.echo.spec import SPEC

log = logging.getLogger("echo")

router = APIRouter()
events = EventRouter()


class Say(BaseModel):
    """What to echo."""

    text: str = Field(min_length=1, max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=5)


@router.post("/messages", status_code=202)
async def say(body: Say, caller: CallerDep, publisher: PublisherDep) -> dict[str, str]:
    """Publish what the caller said."""
    [envelope] = await publisher.publish(MessageSent(text=body.text))
    return {"event_id": envelope.id, "owner": caller.sub}


@router.get("/me")
async def me(caller: CallerDep) -> dict[str, object]:
    """Who the token says the caller is."""
    return {"sub": caller.sub, "username": caller.username, "groups": sorted(caller.groups)}


@router.get("/admin")
async def admin(caller: Annotated[Caller, Depends(require_group("admins"))]) -> dict[str, str]:
    """Only for the admins group."""
    return {"sub": caller.sub}


@router.get("/boom")
async def boom() -> None:
    """Fails with an internal error whose text must never reach the caller."""
    raise RuntimeError("internal detail: password=hunter2 at db.internal:5432")


@events.on(MessageSent)
async def on_message(delivery: Delivery[MessageSent]) -> None:
    """Log the message; fail on request."""
    if delivery.event.fail:
        raise ValueError("asked to fail")
    log.info("echo received", extra={"text": delivery.event.text})


async def on_job_fact(delivery: Delivery[JobFact]) -> None:
    """Record a job's terminal fact among its effects: the tests count them."""
    Effects(delivery.event.job_id).record("fact", state=delivery.event.state)


for _fact in ("succeeded", "failed", "cancelled"):
    events.on(JOB_FACTS[_fact])(on_job_fact)

SERVICE = Service(spec=SPEC, routers=[router], events=events, jobs=jobs)
