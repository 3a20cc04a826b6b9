"""How a job worker paces itself."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_DELAY_S", "MAX_VISIBILITY_S", "WorkerConfig"]

MAX_VISIBILITY_S = 43_200  # SQS: a message's visibility ends at most 12 h after its receipt
MAX_DELAY_S = 900  # SQS: a message's delay is at most 15 minutes


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker paces itself (see KitSettings for the variables)."""

    visibility_s: int
    concurrency: int = 2
    poll_wait_s: int = 20
    heartbeat_s: float | None = None  # default: a third of the visibility timeout
    cancel_poll_s: float = 1.0
    shutdown_deadline_s: float = 100.0
    reconcile_every_s: float = 30.0
    reconcile_after_s: float = 60.0
    retry_base_s: int = 5
    retry_max_s: int = 900
    max_takeovers: int = 5  # runs that ended with their worker dead before the job is failed
    # The queue's maxReceiveCount (None: no DLQ). A live job's message that nears it is
    # replaced by a fresh copy, so only a message that kills its workers reaches the DLQ.
    max_receives: int | None = None
    visibility_cap_s: int = MAX_VISIBILITY_S  # shorter only on an emulator, to reach it in tests
    effects_retry_s: float = 10.0  # how long a run retries its after-end effects in place
    max_effect_rounds: int = 20  # deliveries that retry failing after-end effects, then give up

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s * 2 > self.visibility_s:
            raise ValueError(
                f"heartbeat every {self.heartbeat_interval_s}s cannot keep a "
                f"{self.visibility_s}s visibility timeout; use at most half of it"
            )
        if self.retry_max_s > MAX_DELAY_S:
            raise ValueError(f"retry_max_s is {self.retry_max_s}; SQS delays reach {MAX_DELAY_S}s")

    @property
    def heartbeat_interval_s(self) -> float:
        """How often a running job's lease and message invisibility are renewed."""
        return self.heartbeat_s or max(1.0, self.visibility_s / 3)

    @property
    def lease_margin_s(self) -> float:
        """How long before its lease ends a run stops itself: room for clocks that differ
        between hosts and for the stop itself, so no successor starts while it runs."""
        return max(0.5, min(5.0, self.visibility_s / 10))
