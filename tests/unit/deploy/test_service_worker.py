"""The worker role: not behind the ALB, 120 s to stop, rolled out with the circuit breaker,
on Spot for interruptible work, and scaled on backlog per task from zero."""

from __future__ import annotations

import json
import re
from typing import Any

from longhaul_deploy.config import settings_for
from longhaul_deploy.service_worker import (
    BACKLOG_EXPRESSION,
    FROM_ZERO_COOLDOWN,
    FROM_ZERO_EXPRESSION,
)
from tests.unit.deploy._alarms import evaluate
from tests.unit.deploy._template import container, environment, one, ref, stand_in
from tests.unit.deploy.conftest import Synthesized


def _starting(resources: dict[str, dict[str, Any]], prefix: str) -> tuple[str, dict[str, Any]]:
    return one({k: v for k, v in resources.items() if k.startswith(prefix)})


def _worker(app: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    return _starting(app.resources(name, "AWS::ECS::Service"), "Worker")


def test_worker_stops_within_120_seconds_and_its_shutdown_fits_inside(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        tasks = any_app.resources(name, "AWS::ECS::TaskDefinition")
        if spec.queue is None:
            assert not [k for k in tasks if k.startswith("Worker")]
            continue
        _, task = _starting(tasks, "WorkerTask")
        assert container(task)["StopTimeout"] == 120
        assert container(task)["Command"] == ["--role", "worker"]
        assert environment(task)["LONGHAUL_SHUTDOWN_DEADLINE_S"] == "100"
        assert (task["Properties"]["Cpu"], task["Properties"]["Memory"]) == (
            str(spec.worker.cpu),
            str(spec.worker.memory_mib),
        )


def test_worker_is_not_behind_the_alb_and_rolls_out_with_the_circuit_breaker(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        _, worker = _worker(any_app, name)
        properties = worker["Properties"]
        assert "LoadBalancers" not in properties
        configuration = properties["DeploymentConfiguration"]
        assert configuration["Strategy"] == "ROLLING"
        assert configuration["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert configuration["MinimumHealthyPercent"] == 100


def test_worker_runs_on_spot_when_the_spec_says_its_work_is_interruptible(
    dev: Synthesized, fixture_app: Synthesized
) -> None:
    # media, training and analytics: interruptible, Spot-weighted
    assert {name for name, spec in dev.specs.items() if spec.scaling.spot} >= {
        "media",
        "training",
        "analytics",
    }
    for name, spec in dev.specs.items():
        _, worker = _worker(dev, name)
        assert spec.scaling.spot, name
        assert worker["Properties"]["CapacityProviderStrategy"] == [
            {"CapacityProvider": "FARGATE_SPOT", "Weight": 4},
            {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1},
        ], name
    assert not fixture_app.specs["echo"].scaling.spot
    _, echo = _worker(fixture_app, "echo")
    assert echo["Properties"]["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1}
    ]


def test_worker_scales_between_the_spec_bounds(dev: Synthesized, prod: Synthesized) -> None:
    assert settings_for("dev").worker_bounds(dev.specs["media"]) == (0, 4)
    assert prod.specs["media"].scaling.worker_max == 20
    for app in (dev, prod):
        for name, spec in app.specs.items():
            high = spec.scaling.worker_max
            if app.env == "dev":
                high = min(high, 4)
            targets = app.resources(name, "AWS::ApplicationAutoScaling::ScalableTarget")
            _, target = _starting(targets, "Worker")
            properties = target["Properties"]
            assert (properties["MinCapacity"], properties["MaxCapacity"]) == (
                min(spec.scaling.worker_min, high),
                high,
            ), name
            assert properties["ScalableDimension"] == "ecs:service:DesiredCount"


def test_worker_tracks_backlog_per_task_by_metric_math(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        queue_id = next(
            k
            for k, v in any_app.resources(name, "AWS::SQS::Queue").items()
            if "RedrivePolicy" in v["Properties"]
        )
        worker_id, _ = _worker(any_app, name)
        policies = any_app.resources(name, "AWS::ApplicationAutoScaling::ScalingPolicy")
        _, policy = _starting(policies, "WorkerBacklogPerTask")
        configuration = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert configuration["TargetValue"] == spec.scaling.backlog_per_task
        metrics = {m["Id"]: m for m in configuration["CustomizedMetricSpecification"]["Metrics"]}
        assert (
            metrics["e1"]["Expression"]
            == BACKLOG_EXPRESSION
            == ("IF(FILL(m2, 0) > 0, m1 / FILL(m2, 0), m1)")
        )
        assert metrics["e1"]["ReturnData"] is True
        visible = metrics["m1"]["MetricStat"]["Metric"]
        assert (visible["Namespace"], visible["MetricName"]) == (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
        )
        assert visible["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        ]
        running = metrics["m2"]["MetricStat"]["Metric"]
        assert (running["Namespace"], running["MetricName"]) == (
            "ECS/ContainerInsights",
            "RunningTaskCount",
        )
        assert running["Dimensions"] == [
            {"Name": "ClusterName", "Value": f"longhaul-{any_app.env}"},
            {"Name": "ServiceName", "Value": {"Fn::GetAtt": [worker_id, "Name"]}},
        ]
        assert metrics["m1"]["ReturnData"] is False
        assert metrics["m2"]["ReturnData"] is False


def test_worker_leaves_zero_by_a_step_on_one_minute_queue_datapoints(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        policies = any_app.resources(name, "AWS::ApplicationAutoScaling::ScalingPolicy")
        step_id, step = _starting(policies, "WorkerFromZero")
        configuration = step["Properties"]["StepScalingPolicyConfiguration"]
        assert configuration["AdjustmentType"] == "ChangeInCapacity"
        assert configuration["StepAdjustments"] == [
            {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
        ]
        alarms = any_app.resources(name, "AWS::CloudWatch::Alarm")
        _, alarm = _starting(alarms, "WorkerBacklogWithoutWorkers")
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [ref(step_id)]
        assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (1, 1)
        assert properties["Threshold"] == 1
        metrics = {m["Id"]: m for m in properties["Metrics"]}
        expression = next(m for m in metrics.values() if "Expression" in m)
        assert expression["Expression"] == FROM_ZERO_EXPRESSION
        stats = {
            m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"]["Period"]
            for m in metrics.values()
            if "MetricStat" in m
        }
        assert stats == {
            "ApproximateNumberOfMessagesVisible": 60,
            "ApproximateNumberOfMessagesNotVisible": 60,
        }
        assert configuration["Cooldown"] == FROM_ZERO_COOLDOWN.to_seconds()


def test_the_worker_keeps_one_on_demand_task_whenever_it_runs_any(any_app: Synthesized) -> None:
    # ECS never moves a Spot task to FARGATE when Spot has no capacity (the Spot share just
    # does not start): only a base on FARGATE guarantees the first task runs.
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        _, worker = _worker(any_app, name)
        strategy = worker["Properties"]["CapacityProviderStrategy"]
        bases = {s["CapacityProvider"]: s.get("Base", 0) for s in strategy}
        assert bases["FARGATE"] == 1, name
        assert sum(bases.values()) == 1, name
        if spec.scaling.spot:
            weights = {s["CapacityProvider"]: s["Weight"] for s in strategy}
            assert weights == {"FARGATE": 1, "FARGATE_SPOT": 4}, name


def _from_zero_alarm(app: Synthesized, name: str) -> dict[str, Any]:
    _, alarm = _starting(app.resources(name, "AWS::CloudWatch::Alarm"), "WorkerBacklogWithout")
    properties: dict[str, Any] = alarm["Properties"]
    return properties


def test_scaling_out_from_zero_reads_only_metrics_that_exist_with_no_task(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        metrics = _from_zero_alarm(any_app, name)["Metrics"]
        namespaces = {m["MetricStat"]["Metric"]["Namespace"] for m in metrics if "MetricStat" in m}
        assert namespaces == {"AWS/SQS"}, name


def test_the_first_message_starts_a_worker_and_a_consumed_queue_does_not(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        alarm = _from_zero_alarm(any_app, name)
        # No task: a message waits, nothing holds one in flight (SQS reports it as 0, or
        # nothing at all).
        for in_flight in (0.0, None):
            story = {
                "ApproximateNumberOfMessagesVisible": [None, None, 1.0],
                "ApproximateNumberOfMessagesNotVisible": [None, None, in_flight],
            }
            assert evaluate(alarm, story, 3) == "ALARM", (name, in_flight)
        # Workers running hold messages in flight: target tracking's business, not this alarm.
        busy = {
            "ApproximateNumberOfMessagesVisible": [5.0, 5.0, 5.0],
            "ApproximateNumberOfMessagesNotVisible": [2.0, 2.0, 2.0],
        }
        assert evaluate(alarm, busy, 3) == "OK", name
        # An idle queue, and a queue SQS has stopped reporting: no worker.
        assert evaluate(alarm, {"ApproximateNumberOfMessagesVisible": [0.0] * 3}, 3) == "OK"
        assert evaluate(alarm, {}, 3) == "OK"


def test_a_schedule_keeps_the_queue_awake_so_its_metrics_never_stop(
    any_app: Synthesized,
) -> None:
    # SQS stops publishing a queue's metrics after six hours without activity, and takes up
    # to 15 minutes to publish again; any API call on the queue counts as activity. The
    # Scheduler refuses read-only calls, so the touch untags a key no one sets.
    for name, spec in any_app.specs.items():
        schedules = any_app.resources(name, "AWS::Scheduler::Schedule")
        if spec.queue is None:
            assert not schedules
            continue
        queue_id = next(
            k
            for k, v in any_app.resources(name, "AWS::SQS::Queue").items()
            if "RedrivePolicy" in v["Properties"]
        )
        _, schedule = one(schedules)
        properties = schedule["Properties"]
        match = re.fullmatch(r"rate\((\d+) hours?\)", properties["ScheduleExpression"])
        assert match is not None, properties["ScheduleExpression"]
        assert int(match.group(1)) < 6, properties["ScheduleExpression"]
        target = stand_in(properties["Target"])
        assert target["Arn"].endswith(":scheduler:::aws-sdk:sqs:untagQueue"), target["Arn"]
        touch = json.loads(target["Input"])
        assert touch["QueueUrl"] == f"ref:{queue_id}"  # a queue's Ref is its URL
        (key,) = touch["TagKeys"]
        queue_tags = any_app.resources(name, "AWS::SQS::Queue")[queue_id]["Properties"]["Tags"]
        assert key not in {t["Key"] for t in queue_tags}
        (policy,) = [
            p
            for p in any_app.resources(name, "AWS::IAM::Policy").values()
            if p["Properties"]["Roles"] == [{"Ref": target["RoleArn"].split(":")[1].split(".")[0]}]
        ]
        assert policy["Properties"]["PolicyDocument"]["Statement"] == [
            {
                "Action": "sqs:UntagQueue",
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
            }
        ]
        assert properties["State"] == "ENABLED"
