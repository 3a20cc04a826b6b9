"""The worker role: not behind the ALB, 120 s to stop, rolled out with the circuit breaker,
on Spot for interruptible work, and scaled on backlog per task from zero."""

from __future__ import annotations

from typing import Any

from longhaul_deploy.service_worker import BACKLOG_EXPRESSION, FROM_ZERO_EXPRESSION
from tests.unit.deploy._template import container, environment, one, ref
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
    assert dev.specs["media"].scaling.spot
    _, media = _worker(dev, "media")
    assert media["Properties"]["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE_SPOT", "Weight": 4},
        {"CapacityProvider": "FARGATE", "Weight": 1},
    ]
    assert not fixture_app.specs["echo"].scaling.spot
    _, echo = _worker(fixture_app, "echo")
    assert echo["Properties"]["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE", "Weight": 1}
    ]


def test_worker_scales_between_the_spec_bounds(dev: Synthesized, prod: Synthesized) -> None:
    spec = prod.specs["media"]
    for app, bounds in ((dev, (0, 4)), (prod, (spec.scaling.worker_min, spec.scaling.worker_max))):
        targets = app.resources("media", "AWS::ApplicationAutoScaling::ScalableTarget")
        _, target = _starting(targets, "Worker")
        properties = target["Properties"]
        assert (properties["MinCapacity"], properties["MaxCapacity"]) == bounds
        assert properties["ScalableDimension"] == "ecs:service:DesiredCount"
    assert prod.specs["media"].scaling.worker_max == 20


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


def test_worker_leaves_zero_on_the_first_visible_message_within_a_minute(
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
        assert stats == {"ApproximateNumberOfMessagesVisible": 60, "DesiredTaskCount": 60}
