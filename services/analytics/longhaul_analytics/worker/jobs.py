"""The analytics service's job types."""

from __future__ import annotations

from longhaul.jobs import JobTypes

__all__ = ["jobs"]

jobs = JobTypes()

from longhaul_analytics.worker import lake_jobs as _lake_jobs  # noqa: E402, F401  (the lake's jobs)
