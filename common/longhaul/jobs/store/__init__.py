"""Jobs in the service's DynamoDB table (single-table design).

Items (key attributes; GSI1 lists a caller's jobs newest first, GSI2 finds jobs by state
and lists every owner's jobs for an administrator, `listing.py`):

- job: PK `JOB#<id>`, SK `META`; GSI1 `OWNER#<sub>` / `<created>#<id>`;
  GSI2 `STATE#<state>` / `<updated>#<id>`
- job history (the SSE stream): PK `JOB#<id>`, SK `EVENT#<time ns>-<random>`
- idempotency key: PK `IDEM#<sub>#<key>`, SK `IDEM`, holding the job id and a body hash

Every state change is a conditional write: a job starts only from queued (or from running
whose lease has expired), and only the lease holder may heartbeat, checkpoint, retry or
finish it. A lost update or a double start fails the condition instead of happening.
"""

from longhaul.jobs.store.items import (
    CHECKPOINT_INLINE_BYTES,
    CHILD_OWNER_PREFIX,
    InvalidCursor,
    Page,
    StartResult,
    UnstorableNumber,
    body_hash,
    child_owner,
    parent_of,
    timedelta_ago,
    unstorable_numbers,
)
from longhaul.jobs.store.leases import JobLeases
from longhaul.jobs.store.listing import JobListing
from longhaul.jobs.store.submissions import JobSubmissions

__all__ = [
    "CHECKPOINT_INLINE_BYTES",
    "CHILD_OWNER_PREFIX",
    "InvalidCursor",
    "JobStore",
    "Page",
    "StartResult",
    "UnstorableNumber",
    "body_hash",
    "child_owner",
    "parent_of",
    "timedelta_ago",
    "unstorable_numbers",
]


class JobStore(JobLeases, JobSubmissions, JobListing):
    """Reads and conditional writes of jobs in one table."""
