"""The EMF exporter: counters as the minute's delta, a histogram as its observations (each
its bucket's middle, clamped to the minute's min and max) in documents of at most 100
values, and CloudWatch's p95 of them within the bucket of the true p95."""

from __future__ import annotations

import json
import logging
import math

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from longhaul.observability.emf import SECONDS_BUCKETS, EmfExporter


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _exporter() -> tuple[MeterProvider, Lines]:
    logger = logging.getLogger("test.emf")
    logger.propagate = False
    lines = Lines()
    logger.handlers = [lines]
    logger.setLevel(logging.INFO)
    reader = PeriodicExportingMetricReader(
        EmfExporter("media", logger=logger), export_interval_millis=10**9
    )
    return MeterProvider(metric_readers=[reader]), lines


def test_counters_are_the_delta_of_each_collection_by_service_and_state() -> None:
    provider, lines = _exporter()
    finished = provider.get_meter("t").create_counter("longhaul.jobs.finished")
    finished.add(3, {"service": "media", "type": "transcode", "state": "succeeded"})
    finished.add(1, {"service": "media", "type": "transcode", "state": "failed"})
    provider.force_flush()
    first = [json.loads(line) for line in lines.lines]
    lines.lines.clear()
    finished.add(2, {"service": "media", "type": "transcode", "state": "succeeded"})
    provider.force_flush()
    second = [json.loads(line) for line in lines.lines]
    provider.shutdown()

    assert sorted((d["state"], d["jobs.finished"]) for d in first) == [
        ("failed", 1),
        ("succeeded", 3),
    ]
    assert [(d["state"], d["jobs.finished"]) for d in second] == [("succeeded", 2)], "a delta"
    directive = first[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Longhaul"
    assert directive["Dimensions"] == [["service"], ["service", "state"], ["service", "type"]]
    assert first[0]["service"] == "media"


def test_a_histogram_is_its_observations_in_documents_of_100_and_keeps_its_p95() -> None:
    provider, lines = _exporter()
    wait = provider.get_meter("t").create_histogram("longhaul.jobs.queue_wait", unit="s")
    observed = [0.02] * 120 + [3.0] * 100 + [40.0] * 25 + [7000.0] * 5
    for value in observed:
        wait.record(value, {"service": "media"})
    provider.force_flush()
    provider.shutdown()
    documents = [json.loads(line) for line in lines.lines]

    values = [v for d in documents for v in d["jobs.queue_wait"]]
    assert all(len(d["jobs.queue_wait"]) <= 100 for d in documents)
    assert len(values) == len(observed)
    assert {d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] for d in documents} == {
        "Seconds"
    }
    assert min(values) >= 0.02
    assert max(values) <= 7000.0, "clamped to the largest observation"

    def p95(items: list[float]) -> float:
        ordered = sorted(items)
        return ordered[math.ceil(0.95 * len(ordered)) - 1]

    true = p95(observed)
    bucket = next(b for b in SECONDS_BUCKETS if true <= b)
    below = max([b for b in SECONDS_BUCKETS if b < bucket], default=0.0)
    assert below < p95(values) <= bucket, (true, p95(values))
