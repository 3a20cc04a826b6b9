"""The job model: a row in the service's table, and the message that points at it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TERMINAL", "Job", "JobEvent", "JobMessage", "JobState"]


class JobState(StrEnum):
    """queued -> running -> succeeded | failed | cancelled (running -> queued on retry)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class Job(BaseModel):
    """What a caller sees of a job."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    owner: str
    state: JobState
    payload: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: float = 0.0
    message: str | None = None
    attempts: int = Field(default=0, description="failed attempts so far")
    runs: int = Field(default=0, description="times a worker started it")
    takeovers: int = Field(default=0, description="runs whose worker died holding the lease")
    cancel_requested: bool = False
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job will never change again."""
        return self.state in TERMINAL


class JobEvent(BaseModel):
    """One entry of a job's progress and state history (the SSE stream)."""

    id: str
    kind: str  # "state" or "progress"
    state: JobState
    progress: float
    message: str | None = None
    at: datetime


class JobMessage(BaseModel):
    """The SQS message body that asks a worker to run (or resume) a job."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(default="job", pattern="^job$")
