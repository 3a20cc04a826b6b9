"""Submitting a job from anywhere in a service: the API's POST /jobs, an event handler (an
upload that starts a transcode), or a parent job's resources."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from longhaul.config import KitSettings
from longhaul.jobs.events import job_fact
from longhaul.jobs.queue import enqueue
from longhaul.jobs.store import JobStore
from longhaul.jobs.types import Job
from longhaul.observability import context
from longhaul.observability.tracing import meter

__all__ = ["JobResources", "publish_fact", "submit_job"]

log = logging.getLogger(__name__)
_submitted = meter().create_counter("longhaul.jobs.submitted", description="Jobs accepted")


async def publish_fact(service: str, fact: str, job: Job, publisher: Any) -> None:
    """Publish `<service>.job.<fact>` for `job`; best effort, the job stands either way."""
    model = job_fact(service, fact)
    try:
        await publisher.publish(
            model(
                job_id=job.id,
                job_type=job.type,
                owner=job.owner,
                state=job.state.value,
                attempts=job.attempts,
                error=job.error,
            )
        )
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

    Accepted means finished: if this process dies between the write and the send, the
    reconciler finds the job queued without a message and enqueues it.
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
    await enqueue(sqs, queue_url, job.id)
    await store.mark_enqueued(job.id)
    _submitted.add(1, {"service": service, "type": job.type})
    await publish_fact(service, "submitted", job, publisher)
    return job, True


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
