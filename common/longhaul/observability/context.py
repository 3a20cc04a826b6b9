"""Per-task log context: the correlation id and job id of the work at hand."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["bind", "correlation_id", "job_id", "new_correlation_id", "valid_correlation_id"]

_correlation_id: ContextVar[str | None] = ContextVar("longhaul_correlation_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("longhaul_job_id", default=None)

# Callers may pass their own id; anything else (too long, control characters) is replaced.
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def correlation_id() -> str | None:
    """The correlation id of the current request, message or job."""
    return _correlation_id.get()


def job_id() -> str | None:
    """The id of the job being worked on, if any."""
    return _job_id.get()


def new_correlation_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


def valid_correlation_id(candidate: str | None) -> str:
    """`candidate` when it is a safe id, a fresh one otherwise."""
    if candidate and _VALID.match(candidate):
        return candidate
    return new_correlation_id()


@contextmanager
def bind(*, correlation: str | None = None, job: str | None = None) -> Iterator[None]:
    """Set the correlation id and/or job id for the duration of the block."""
    tokens = []
    if correlation is not None:
        tokens.append((_correlation_id, _correlation_id.set(correlation)))
    if job is not None:
        tokens.append((_job_id, _job_id.set(job)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
