"""Telemetry on AWS in the synthesized templates: every task publishes its metrics as EMF
and sends its spans to X-Ray through a hardened collector beside it; each service with jobs
alarms on its jobs' failure rate, queue wait p95, takeovers and lost leases (notifying the
alarm topic), with a dashboard row of them, all reading the metric names and dimensions the
tasks publish (tests/e2e/test_emf_metrics.py proves the worker writes exactly those)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from longhaul_deploy.observability import (
    EMF_NAMESPACE,
    JOB_FAILURE_EXPRESSION,
    JOB_FAILURE_PERCENT,
    JOB_METRICS,
    LEASES_LOST,
    QUEUE_WAIT_P95_S,
    TAKEOVERS,
)
from longhaul_deploy.service_task import COLLECTOR_IMAGE, COLLECTOR_NAME, TRACES_ENDPOINT
from tests.unit.deploy._template import container, environment, stand_in
from tests.unit.deploy.conftest import Synthesized


def _dimensions(stat: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in stat["Dimensions"]}


def _job_alarms(app: Synthesized, name: str) -> dict[str, dict[str, Any]]:
    alarms = app.resources(name, "AWS::CloudWatch::Alarm")
    found: dict[str, dict[str, Any]] = {}
    for key, alarm in alarms.items():
        if key.startswith("JobAlarms"):
            kind = key.removeprefix("JobAlarms")
            found[
                next(
                    k
                    for k in ("JobFailureRate", "QueueWaitP95", "Takeovers", "LeasesLost")
                    if kind.startswith(k)
                )
            ] = alarm["Properties"]
    return found


def test_every_task_publishes_its_metrics_as_emf(any_app: Synthesized) -> None:
    for name in any_app.specs:
        tasks = any_app.resources(name, "AWS::ECS::TaskDefinition")
        assert tasks
        for task in tasks.values():
            assert environment(task)["LONGHAUL_METRICS_EMF"] == "true"


def test_a_service_with_jobs_alarms_on_failures_waits_takeovers_and_lost_leases(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        alarms = _job_alarms(any_app, name)
        if spec.queue is None:
            assert alarms == {}, "no jobs, no job alarms"
            continue
        assert set(alarms) == {"JobFailureRate", "QueueWaitP95", "Takeovers", "LeasesLost"}

        rate = alarms["JobFailureRate"]
        queries = {q["Id"]: q for q in rate["Metrics"]}
        [expression] = [q for q in queries.values() if "Expression" in q]
        assert expression["Expression"] == JOB_FAILURE_EXPRESSION
        assert float(rate["Threshold"]) == JOB_FAILURE_PERCENT
        stats = {q["Id"]: q["MetricStat"] for q in queries.values() if "MetricStat" in q}
        assert {s["Metric"]["Namespace"] for s in stats.values()} == {EMF_NAMESPACE}
        assert {s["Metric"]["MetricName"] for s in stats.values()} == {"jobs.finished"}
        assert _dimensions(stats["failed"]["Metric"]) == {"service": name, "state": "failed"}
        assert _dimensions(stats["finished"]["Metric"]) == {"service": name}
        assert {s["Stat"] for s in stats.values()} == {"Sum"}

        wait = alarms["QueueWaitP95"]
        assert (wait["Namespace"], wait["MetricName"]) == (EMF_NAMESPACE, "jobs.queue_wait")
        assert wait["ExtendedStatistic"] == "p95"
        assert _dimensions(wait) == {"service": name}
        assert float(wait["Threshold"]) == QUEUE_WAIT_P95_S

        for kind, metric, threshold in (
            ("Takeovers", "jobs.takeovers", TAKEOVERS),
            ("LeasesLost", "jobs.leases_lost", LEASES_LOST),
        ):
            alarm = alarms[kind]
            assert (alarm["Namespace"], alarm["MetricName"]) == (EMF_NAMESPACE, metric)
            assert _dimensions(alarm) == {"service": name}
            assert (alarm["Statistic"], float(alarm["Threshold"])) == ("Sum", threshold)
            assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

        for alarm in alarms.values():
            assert alarm["AlarmActions"], "every job alarm notifies the alarm topic"
            assert alarm["TreatMissingData"] == "notBreaching", "no jobs is no incident"


def _graphed(body: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) of every metric the dashboard graphs."""
    found = set()
    for widget in body["widgets"]:
        for line in widget.get("properties", {}).get("metrics", []):
            names = [part for part in line if isinstance(part, str)]
            if len(names) >= 2 and names[0] == EMF_NAMESPACE:
                pairs = names[2:]
                dimensions = tuple(sorted(zip(pairs[::2], pairs[1::2], strict=True)))
                found.add((names[0], names[1], dimensions))
    return found


def test_the_dashboard_graphs_every_published_job_metric(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        [dashboard] = any_app.resources(name, "AWS::CloudWatch::Dashboard").values()
        body = json.loads(stand_in(dashboard["Properties"]["DashboardBody"]))
        graphed = _graphed(body)
        if spec.queue is None:
            assert graphed == set()
            continue
        expected = {
            (
                EMF_NAMESPACE,
                metric,
                tuple(sorted({"service": name, **dict.fromkeys(keys, "failed")}.items())),
            )
            for metric, keys in JOB_METRICS
        }
        assert graphed == expected


def test_every_task_sends_its_spans_to_x_ray_through_a_hardened_collector(
    any_app: Synthesized,
) -> None:
    for name in any_app.specs:
        for logical_id, task in any_app.resources(name, "AWS::ECS::TaskDefinition").items():
            app, otel = container(task), container(task, COLLECTOR_NAME)
            assert environment(task)["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == TRACES_ENDPOINT
            assert otel["Image"] == COLLECTOR_IMAGE
            assert otel["Essential"] is False, "the service runs on without its collector"
            assert otel["ReadonlyRootFilesystem"] is True, logical_id
            assert otel["LinuxParameters"]["Capabilities"] == {"Drop": ["ALL"]}
            assert "PortMappings" not in otel, "nothing outside the task reaches it"
            # starts first and, so, stops last: a stopping service's last spans still leave
            assert app["DependsOn"] == [{"ContainerName": COLLECTOR_NAME, "Condition": "START"}]
            [config] = [
                e["Value"] for e in otel["Environment"] if e["Name"] == "AOT_CONFIG_CONTENT"
            ]
            pipeline = yaml.safe_load(config)
            assert pipeline["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == (
                "127.0.0.1:4318"
            ), "loopback only"
            assert pipeline["service"]["pipelines"]["traces"]["exporters"] == ["awsxray"]
            assert TRACES_ENDPOINT.startswith("http://127.0.0.1:4318/")
