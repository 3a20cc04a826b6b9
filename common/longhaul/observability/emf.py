"""Metrics to CloudWatch in the Embedded Metric Format (EMF), through the task's logs.

On AWS a task's stdout already reaches CloudWatch Logs (the awslogs driver); a log line that
is an EMF document becomes metric datapoints there, with no collector, no extra network
path and no IAM permission beyond writing logs. So the kit's OpenTelemetry metrics are
exported, once a minute, as EMF lines on stdout when `LONGHAUL_METRICS_EMF=true` (the CDK
app sets it; docs/operations.md "Telemetry on AWS" says why EMF rather than a collector).

Every datapoint is published in the `Longhaul` namespace under the metric's name without
its `longhaul.` prefix (`jobs.finished`), with the dimension sets `[service]` and, for each
of `state` and `type` the point carries, `[service, state]` / `[service, type]`: the
per-service rollup the alarms read, and the breakdowns the dashboard shows. Its other
attributes are written beside it as searchable properties.

Counters are exported as deltas (the count of the minute). A histogram's datapoint becomes
the list of its observations, each given as its bucket's middle (clamped to the minute's
min and max), at most 100 values a document as EMF allows: CloudWatch's percentiles of
them (the queue wait's p95) are exact to the bucket, and the buckets below are fine enough
for seconds from 50 ms to half a day.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation

__all__ = [
    "BREAKDOWNS",
    "NAMESPACE",
    "SECONDS_BUCKETS",
    "EmfExporter",
    "documents",
    "emf_logger",
]

NAMESPACE = "Longhaul"
BREAKDOWNS = ("state", "type")  # attributes that also become a dimension beside `service`
SECONDS_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
)
MAX_VALUES = 100  # EMF's limit on one metric's values in one document
_UNITS = {"s": "Seconds", "ms": "Milliseconds", "By": "Bytes", "1": "Count"}


def documents(
    data: MetricsData, service: str, namespace: str = NAMESPACE
) -> Iterator[dict[str, Any]]:
    """The EMF documents of one collection by `service`'s process (a point's own `service`
    attribute, where it has one, is the same name)."""
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                name = metric.name.removeprefix("longhaul.")
                points = getattr(metric.data, "data_points", ())
                for point in points:
                    values = _values(point)
                    if not values:
                        continue
                    attributes = {k: str(v) for k, v in point.attributes.items()}
                    attributes.pop("service", None)
                    unit = _UNITS.get(metric.unit or "", "Count" if _is_count(point) else "None")
                    dimensions = [["service"]]
                    dimensions += [["service", key] for key in BREAKDOWNS if key in attributes]
                    for i in range(0, len(values), MAX_VALUES):
                        chunk = values[i : i + MAX_VALUES]
                        yield {
                            "_aws": {
                                "Timestamp": point.time_unix_nano // 1_000_000,
                                "CloudWatchMetrics": [
                                    {
                                        "Namespace": namespace,
                                        "Dimensions": dimensions,
                                        "Metrics": [{"Name": name, "Unit": unit}],
                                    }
                                ],
                            },
                            **attributes,
                            "service": service,
                            name: chunk[0] if len(chunk) == 1 else chunk,
                        }


def _is_count(point: Any) -> bool:
    return isinstance(point, NumberDataPoint) and isinstance(point.value, int)


def _values(point: Any) -> list[float]:
    """A datapoint's values: a number's own (none when a delta of 0), or one value per
    observation of a histogram."""
    if isinstance(point, NumberDataPoint):
        return [] if point.value == 0 else [point.value]
    if not isinstance(point, HistogramDataPoint) or point.count == 0:
        return []
    bounds = list(point.explicit_bounds)
    values: list[float] = []
    for i, count in enumerate(point.bucket_counts):
        if count == 0:
            continue
        low = bounds[i - 1] if i > 0 else min(0.0, point.min)
        high = bounds[i] if i < len(bounds) else point.max
        middle = (low + high) / 2
        values += [min(max(middle, point.min), point.max)] * count
    return values


class EmfExporter(MetricExporter):
    """Writes each collection as EMF lines (one JSON document each) to a logger."""

    def __init__(
        self, service: str, logger: logging.Logger | None = None, namespace: str = NAMESPACE
    ) -> None:
        super().__init__(
            preferred_temporality={
                Counter: AggregationTemporality.DELTA,
                Histogram: AggregationTemporality.DELTA,
                ObservableCounter: AggregationTemporality.DELTA,
                UpDownCounter: AggregationTemporality.CUMULATIVE,
                ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
                ObservableGauge: AggregationTemporality.CUMULATIVE,
            },
            preferred_aggregation={
                Histogram: ExplicitBucketHistogramAggregation(boundaries=SECONDS_BUCKETS)
            },
        )
        self.service = service
        self.logger = logger or emf_logger()
        self.namespace = namespace

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        for document in documents(metrics_data, self.service, self.namespace):
            self.logger.info(json.dumps(document, separators=(",", ":")))
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def emf_logger() -> logging.Logger:
    """A logger that writes its messages as they are (an EMF document a line) to stdout,
    under the same lock as the JSON log handler there, so lines never interleave."""
    logger = logging.getLogger("longhaul.emf")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        for existing in logging.getLogger().handlers:
            if isinstance(existing, logging.StreamHandler) and existing.stream is sys.stdout:
                handler.lock = existing.lock
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return logger
