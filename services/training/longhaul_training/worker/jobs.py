"""The training service's job types."""

from __future__ import annotations

from longhaul.jobs import JobTypes

__all__ = ["jobs"]

jobs = JobTypes()
