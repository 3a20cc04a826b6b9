"""Durable jobs: the store, the handler registry and context, the worker and the routes."""

from longhaul.jobs.context import JobContext
from longhaul.jobs.exceptions import (
    IdempotencyConflict,
    JobCancelled,
    JobError,
    JobInterrupted,
    JobNotFound,
    JobParked,
    LeaseLost,
    NonRetryable,
)
from longhaul.jobs.registry import JobType, JobTypes
from longhaul.jobs.store import JobStore
from longhaul.jobs.submit import JobResources, submit_job
from longhaul.jobs.types import TERMINAL, Job, JobEvent, JobMessage, JobState
from longhaul.spec import GsiSpec, TableSpec

__all__ = [
    "JOBS_TABLE",
    "TERMINAL",
    "IdempotencyConflict",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobEvent",
    "JobInterrupted",
    "JobMessage",
    "JobNotFound",
    "JobParked",
    "JobResources",
    "JobState",
    "JobStore",
    "JobType",
    "JobTypes",
    "LeaseLost",
    "NonRetryable",
    "jobs_table",
    "submit_job",
]


def jobs_table(*extra: GsiSpec) -> TableSpec:
    """The table a job-running service declares: the two GSIs the job store queries
    (GSI1: a caller's jobs newest first; GSI2: jobs by state), plus any of its own."""
    return TableSpec(
        gsis=(
            # Only what listings filter on: heartbeats, progress and checkpoints change no
            # projected attribute, so they cost no index writes (rows are read from the table).
            GsiSpec(name="GSI1", pk="GSI1PK", sk="GSI1SK", include=("state",)),
            GsiSpec(name="GSI2", pk="GSI2PK", sk="GSI2SK", include=("id", "enqueued_at")),
            *extra,
        )
    )


JOBS_TABLE = jobs_table()
