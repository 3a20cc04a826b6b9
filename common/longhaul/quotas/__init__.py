"""Per-owner quotas, held in the service's own table so they hold across its API tasks:
concurrent jobs, uploads per hour, stored bytes, open event streams and their lifetime.

Items (no index key, one per owner and quota):

- `PK=QUOTA#<owner>`, `SK=JOBS`: the owner's job slots (`slots`: id -> job, or the
  Idempotency-Key that will make it, and until when a slot without a job counts)
- `SK=STREAMS`: open event streams (`slots`: id -> lease expiry, lifetime end)
- `SK=UPLOADS`: uploads counted in the current hour (`window`, `n`)
- `SK=BYTES`: reserved upload bytes by the day they lapse (`days`), and their `total`

A request over a quota raises `QuotaExceeded`; the API answers 429 problem+json with
`Retry-After`. See docs/quotas.md.
"""

from longhaul.quotas.counters import BytesReserved, QuotaCounters, UploadCounted
from longhaul.quotas.slots import QuotaSlots, StreamSlot
from longhaul.quotas.types import QuotaExceeded, Quotas

__all__ = [
    "BytesReserved",
    "QuotaExceeded",
    "QuotaStore",
    "Quotas",
    "StreamSlot",
    "UploadCounted",
]


class QuotaStore(QuotaCounters, QuotaSlots):
    """Every quota of one service's owners."""
