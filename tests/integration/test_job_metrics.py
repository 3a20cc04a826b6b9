"""The job worker's metrics, as operators read them: takeovers, leases lost, reconciler
requeues, DLQ arrivals, queue wait and duration, each with the service attribute. An
in-process worker of the echo service on moto, read through the in-memory metric reader."""

from __future__ import annotations

import asyncio

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.queue import enqueue
from tests.conftest import METRICS, Platform
from tests.support.app import running_app
from tests.support.workers import FAST, Jobs, until


def _points(name: str) -> list[tuple[dict[str, object], float]]:
    """(attributes, value) of every point of metric `name`: a counter's sum, a histogram's
    count."""
    found: list[tuple[dict[str, object], float]] = []
    data = METRICS.get_metrics_data()
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # type: ignore[union-attr]
                    found.append((dict(point.attributes or {}), float(value)))
    return found


def _echo(name: str) -> float:
    """The echo service's total of metric `name`; every point must carry the service."""
    points = _points(name)
    assert all("service" in attributes for attributes, _ in points), f"{name} without service"
    return sum(value for attributes, value in points if attributes["service"] == "echo")


@pytest.mark.timeout(120)
async def test_the_worker_counts_takeovers_lost_leases_requeues_and_dlq_arrivals(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [
        "longhaul.jobs.takeovers",
        "longhaul.jobs.leases_lost",
        "longhaul.jobs.reconciler_requeues",
        "longhaul.jobs.dlq_arrivals",
        "longhaul.jobs.queue_wait",
        "longhaul.jobs.duration",
    ]
    before = {name: _echo(name) for name in names}

    def grew(name: str, by: float = 1) -> bool:
        return _echo(name) - before[name] >= by

    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    fast = {**FAST, "LONGHAUL_RETRY_BASE_S": "1", "LONGHAUL_RETRY_MAX_S": "2"}
    async with running_app(monkeypatch, platform, role="worker", **fast):
        # A run whose worker died: its lease expired, its message comes back.
        dead = await jobs.submit({"steps": 1, "step_s": 0}, enqueue_it=False)
        assert (await store.start(dead, "a-dead-worker", 0.1)).started
        await asyncio.sleep(0.2)
        await jobs.submit({"steps": 1}, enqueue_it=False)  # never enqueued: the reconciler's
        await enqueue(await aws.get("sqs"), await jobs.queue_url(), dead)
        await jobs.wait(dead, JobState.SUCCEEDED)
        await until(lambda: grew("longhaul.jobs.takeovers"), what="a takeover counted")
        await until(lambda: grew("longhaul.jobs.duration"), what="a duration recorded")
        await until(lambda: grew("longhaul.jobs.reconciler_requeues"), what="a requeue counted")

        # A run whose lease another worker took: the keepalive notices and stops it.
        taken = await jobs.submit({"steps": 40, "step_s": 0.5})
        await jobs.wait(taken, JobState.RUNNING)
        await until(lambda: grew("longhaul.jobs.queue_wait"), what="a queue wait recorded")
        await store._update(taken, {"lease_owner": "another-worker"}, "attribute_exists(PK)", {})
        await until(lambda: grew("longhaul.jobs.leases_lost"), what="a lost lease counted")

        # A job that fails every attempt ends in the DLQ.
        failing = await jobs.submit({"fail_always": True})
        await jobs.wait(failing, JobState.FAILED, timeout=60)
        await until(lambda: grew("longhaul.jobs.dlq_arrivals"), what="a DLQ arrival counted")
