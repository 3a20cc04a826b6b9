"""OpenTelemetry tracing and metrics, configured from the standard OTEL_* variables.

Spans are always recorded in-process so that log lines carry trace and span ids and trace
context travels in every envelope; they are exported over OTLP only when an endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT` or its per-signal form). Metrics are exported over OTLP
likewise, and as CloudWatch EMF lines on stdout once a minute when asked
(`LONGHAUL_METRICS_EMF=true`, on AWS; `emf.py`). `OTEL_SDK_DISABLED=true` turns the SDK
off entirely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ["configure_telemetry", "extract", "inject", "meter", "tracer"]

_configured = False


def _endpoint_for(signal: str) -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def configure_telemetry(service: str, role: str, *, emf: bool = False) -> None:
    """Install the SDK's tracer and meter providers once per process; `emf`: also export
    the metrics as CloudWatch EMF lines (`KitSettings.metrics_emf`)."""
    global _configured
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    _configured = True
    resource = Resource.create(
        {"service.name": service, "service.namespace": "longhaul", "longhaul.role": role}
    )
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=resource)
        if _endpoint_for("traces"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return
    readers: list[PeriodicExportingMetricReader] = []
    if _endpoint_for("metrics"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if emf:
        from longhaul.observability.emf import EmfExporter

        # every minute (OTEL_METRIC_EXPORT_INTERVAL, in ms, sets another period)
        readers.append(PeriodicExportingMetricReader(EmfExporter(service)))
    if readers:
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def tracer() -> trace.Tracer:
    """The kit's tracer."""
    return trace.get_tracer("longhaul")


def meter() -> metrics.Meter:
    """The kit's meter."""
    return metrics.get_meter("longhaul")


def inject() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> Context:
    """A context whose parent is the span described by `carrier`."""
    return propagate.extract(dict(carrier))
