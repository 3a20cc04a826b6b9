"""The job worker's OpenTelemetry metrics. Every point carries the service attribute."""

from __future__ import annotations

from longhaul.observability.tracing import meter

__all__ = [
    "WATCHED",
    "dead_lettered",
    "duration",
    "effects_failed",
    "finished",
    "leases_lost",
    "queue_wait",
    "reconciler_requeues",
    "retries",
    "started",
    "takeovers",
]

started = meter().create_counter("longhaul.jobs.started", description="Jobs started")
finished = meter().create_counter("longhaul.jobs.finished", description="Jobs ended, by state")
retries = meter().create_counter("longhaul.jobs.retries", description="Failed attempts retried")
takeovers = meter().create_counter(
    "longhaul.jobs.takeovers", description="Runs started over a lease whose worker died"
)
leases_lost = meter().create_counter(
    "longhaul.jobs.leases_lost", description="Runs stopped because their lease lapsed or was taken"
)
reconciler_requeues = meter().create_counter(
    "longhaul.jobs.reconciler_requeues",
    description="Jobs the reconciler enqueued again (lost message or expired lease)",
)
dead_lettered = meter().create_counter(
    "longhaul.jobs.dlq_arrivals", description="Job messages moved to the dead-letter queue"
)
effects_failed = meter().create_counter(
    "longhaul.jobs.effects_failed",
    description="Deliveries whose after-end effects (facts, on_end, wakes) failed and are retried",
)
duration = meter().create_histogram("longhaul.jobs.duration", unit="s", description="Submit to end")
queue_wait = meter().create_histogram(
    "longhaul.jobs.queue_wait", unit="s", description="Submit to first start"
)

# What operators watch, as CloudWatch names it (longhaul.observability.emf): each metric's
# name without `longhaul.` and the breakdowns beside `service`. The CDK app's job alarms
# and dashboard read exactly these (deploy/longhaul_deploy/observability.py).
WATCHED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jobs.started", ()),
    ("jobs.finished", ()),
    ("jobs.finished", ("state",)),
    ("jobs.queue_wait", ()),
    ("jobs.duration", ()),
    ("jobs.takeovers", ()),
    ("jobs.leases_lost", ()),
    ("jobs.retries", ()),
    ("jobs.dlq_arrivals", ()),
)
