"""Errors of the jobs capability."""

from __future__ import annotations

__all__ = [
    "IdempotencyConflict",
    "JobCancelled",
    "JobError",
    "JobInterrupted",
    "JobNotFound",
    "JobParked",
    "LeaseLost",
    "NonRetryable",
]


class JobError(Exception):
    """Base of every jobs error."""


class NonRetryable(JobError):
    """Raise from a handler: the job fails at once with this message, without retries."""


class JobCancelled(JobError):
    """The job's owner asked for it to stop."""


class JobInterrupted(JobError):
    """The worker is shutting down; the job was checkpointed and will resume elsewhere."""


class JobParked(JobError):
    """The job is waiting on others (its child jobs): hand it back to the queue, to be run
    again from its checkpoint after `delay_s`, without counting an attempt."""

    def __init__(self, job_id: str, delay_s: int, message: str | None = None) -> None:
        super().__init__(job_id)
        self.delay_s = delay_s
        self.message = message


class LeaseLost(JobError):
    """Another worker owns the job now (its lease expired here); stop without writing."""


class JobNotFound(JobError):
    """No job with that id belongs to the caller."""


class IdempotencyConflict(JobError):
    """The Idempotency-Key was used before with a different request body."""
