"""Observability: JSON logs, correlation ids, OpenTelemetry traces and metrics."""

from longhaul.observability.context import bind, correlation_id, job_id, new_correlation_id
from longhaul.observability.logging import JsonFormatter, configure_logging, redact
from longhaul.observability.tracing import configure_telemetry, extract, inject, meter, tracer

__all__ = [
    "JsonFormatter",
    "bind",
    "configure_logging",
    "configure_telemetry",
    "correlation_id",
    "extract",
    "inject",
    "job_id",
    "meter",
    "new_correlation_id",
    "redact",
    "tracer",
]
