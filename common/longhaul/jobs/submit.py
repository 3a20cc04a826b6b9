"""Submitting a job from anywhere in a service: the API's POST /jobs, an event handler (an
upload that starts a transcode), or a parent job's resources."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from longhaul.config import KitSettings
from longhaul.flags import Flags
from longhaul.jobs.events import job_fact
from longhaul.jobs.queue import enqueue
from longhaul.jobs.store import JobStore
from longhaul.jobs.types import Job
from longhaul.observability import context
from longhaul.observability.tracing import meter

__all__ = ["JobResources", "publish_fact", "submit_job"]

log = logging.getLogger(__name__)
_submitted = meter().create_counter("longhaul.jobs.submitted", description="Jobs accepted")

# Once written, a job is accepted: its send is tried this many times within this bound
# (each try is the client's own retries too), then left to the reconciler.
SEND_ATTEMPTS = 3
SEND_DEADLINE_S = 5.0


def fact_of(service: str, fact: str, job: Job) -> Any:
    """The event `<service>.job.<fact>` for `job`."""
    return job_fact(service, fact)(
        job_id=job.id,
        job_type=job.type,
        owner=job.owner,
        state=job.state.value,
        attempts=job.attempts,
        error=job.error,
    )


async def publish_fact(service: str, fact: str, job: Job, publisher: Any) -> None:
    """Publish `<service>.job.<fact>` for `job`; best effort, the job stands either way."""
    try:
        await publisher.publish(fact_of(service, fact, job))
    except Exception as exc:
        log.warning("could not publish %s.job.%s: %s", service, fact, exc)


async def submit_job(
    *,
    service: str,
    store: JobStore,
    sqs: Any,
    queue_url: str,
    publisher: Any,
    owner: str,
    job_type: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Write a queued job, enqueue it and publish `submitted`; return it and whether it is
    new (`IdempotencyConflict` if the key was used with another body).

    Written means accepted: a send that keeps failing, like a process that dies between the
    write and the send, leaves the job queued without `enqueued_at`, and the reconciler
    enqueues it after `LONGHAUL_RECONCILE_AFTER_S`. Nothing after the write raises.
    """
    job, created = await store.submit(
        owner=owner,
        job_type=job_type,
        payload=payload,
        idempotency_key=idempotency_key,
        correlation_id=context.correlation_id(),
    )
    if not created:
        return job, False
    _submitted.add(1, {"service": service, "type": job.type})
    with context.bind(job=job.id):
        if await _send(sqs, queue_url, job.id):
            try:
                await store.mark_enqueued(job.id)
            except Exception as exc:
                # The reconciler sends it again later: a duplicate message is harmless.
                log.warning("job enqueued but not marked enqueued: %s", exc)
        await publish_fact(service, "submitted", job, publisher)
    return job, True


async def _send(sqs: Any, queue_url: str, job_id: str) -> bool:
    """Enqueue the job, a few times within `SEND_DEADLINE_S`; whether it was sent."""
    try:
        async with asyncio.timeout(SEND_DEADLINE_S):
            for attempt in range(1, SEND_ATTEMPTS + 1):
                try:
                    await enqueue(sqs, queue_url, job_id)
                    return True
                except Exception:
                    if attempt == SEND_ATTEMPTS:
                        raise
                    await asyncio.sleep(0.1 * 2**attempt)
    except Exception as exc:
        log.warning("could not enqueue the job (%r); the reconciler will enqueue it", exc)
    return False


@dataclass(frozen=True)
class JobResources:
    """What a worker hands its job and event handlers: settings, AWS clients, the
    publisher, the job store and the queue jobs go to."""

    service: str
    settings: KitSettings
    aws: Any  # longhaul.aws.AwsClients
    publisher: Any  # longhaul.events.EventPublisher
    store: JobStore
    sqs: Any
    queue_url: str
    flags: Flags | None = None  # the service's feature flags (longhaul.flags)

    async def submit(
        self,
        *,
        owner: str,
        job_type: str,
        payload: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> tuple[Job, bool]:
        """`submit_job` with these resources."""
        return await submit_job(
            service=self.service,
            store=self.store,
            sqs=self.sqs,
            queue_url=self.queue_url,
            publisher=self.publisher,
            owner=owner,
            job_type=job_type,
            payload=payload,
            idempotency_key=idempotency_key,
        )
