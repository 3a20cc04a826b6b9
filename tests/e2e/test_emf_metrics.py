"""Telemetry that reaches CloudWatch: a real worker process with `LONGHAUL_METRICS_EMF=true`
(what the CDK app sets) writes, on stdout beside its JSON logs, documents that follow the
Embedded Metric Format's specification, whose datapoints add up to the jobs it ran, and
which publish every metric and dimension set the alarms and the dashboard read (the kit's
`WATCHED`; tests/unit/deploy/test_job_telemetry.py checks the templates read exactly
those)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.worker.metrics import WATCHED
from longhaul.observability.emf import NAMESPACE
from tests.conftest import Platform
from tests.support.workers import Jobs, Worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SERVICE = "echo"


def _check_emf(document: dict[str, Any]) -> None:
    """What CloudWatch Logs requires of an EMF document before it extracts metrics."""
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int)
    assert meta["Timestamp"] > 1_700_000_000_000, "milliseconds since the epoch"
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            for key in dimension_set:
                assert isinstance(document[key], str), f"dimension {key} is a string member"
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100
            assert all(isinstance(v, int | float) for v in values), value
            assert metric["Unit"] in {"Seconds", "Milliseconds", "Bytes", "Count", "None"}


def _published(log: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    """Every datapoint the log's EMF documents publish, by (metric, dimensions)."""
    points: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = defaultdict(list)
    for line in log.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        _check_emf(document)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                for dimension_set in directive["Dimensions"]:
                    key = (
                        metric["Name"],
                        tuple(sorted((k, document[k]) for k in dimension_set)),
                    )
                    points[key] += value if isinstance(value, list) else [value]
    return points


async def test_a_worker_publishes_its_jobs_as_emf_that_the_alarms_read(
    aws: AwsClients, platform: Platform, tmp_path: Path, workers: list[Worker]
) -> None:
    jobs = Jobs(aws, platform.env)
    worker = Worker(
        platform, tmp_path, LONGHAUL_METRICS_EMF="true", OTEL_METRIC_EXPORT_INTERVAL="1000"
    )
    workers.append(worker)
    succeeded = [await jobs.submit({"steps": 1, "step_s": 0.05}) for _ in range(3)]
    failed = await jobs.submit({"non_retryable": True})
    for job_id in succeeded:
        await jobs.wait(job_id, JobState.SUCCEEDED)
    await jobs.wait(failed, JobState.FAILED)
    worker.term()  # the last collection is exported as the process exits
    assert worker.wait(60) == 0

    points = _published(worker.log())
    service = (("service", SERVICE),)
    assert sum(points[("jobs.finished", service)]) == 4
    failures = points[("jobs.finished", (("service", SERVICE), ("state", "failed")))]
    assert sum(failures) == 1
    assert sum(points[("jobs.finished", (("service", SERVICE), ("state", "succeeded")))]) == 3
    assert sum(points[("jobs.started", service)]) == 4
    waits = points[("jobs.queue_wait", service)]
    assert len(waits) == 4, "one queue wait a started job, for CloudWatch's percentiles"
    assert all(0 <= w < 60 for w in waits)
    for metric, keys in WATCHED:
        if metric in {"jobs.takeovers", "jobs.leases_lost", "jobs.retries", "jobs.dlq_arrivals"}:
            continue  # none happened: nothing to publish (the alarms treat it as 0)
        dimensions = tuple(sorted({"service": SERVICE, **dict.fromkeys(keys, "failed")}.items()))
        assert points.get((metric, dimensions)), f"{metric} {dimensions} is what an alarm reads"
