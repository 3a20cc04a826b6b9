"""The API role: behind the ALB by path, deployed by ECS's canary (10% for 5 minutes, then
all) and rolled back automatically by its target groups' alarms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from longhaul_deploy.config import settings_for
from longhaul_deploy.observability import (
    FIVE_XX_EXPRESSION,
    FIVE_XX_PERCENT,
    LATENCY_EXPRESSION,
    P99_LATENCY_S,
)
from tests.unit.deploy._alarms import evaluate
from tests.unit.deploy._template import container, environment, one, ref, stand_in
from tests.unit.deploy.conftest import Synthesized

LISTENER_RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"
PRODUCTION_RULE = "Custom::ProductionListenerRule"
# A minute-by-minute story of a target group's metrics, by (metric, statistic).
Story = dict[tuple[str, str], list[float | None]]
RULE_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3"


def _api(app: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    services = app.resources(name, "AWS::ECS::Service")
    return one({k: v for k, v in services.items() if k.startswith("Api")})


def _task(app: Synthesized, name: str, prefix: str) -> dict[str, Any]:
    tasks = app.resources(name, "AWS::ECS::TaskDefinition")
    return one({k: v for k, v in tasks.items() if k.startswith(prefix)})[1]


def test_api_deploys_by_canary_10_percent_for_5_minutes_then_all(any_app: Synthesized) -> None:
    for name in any_app.services:
        _, service = _api(any_app, name)
        configuration = service["Properties"]["DeploymentConfiguration"]
        assert configuration["Strategy"] == "CANARY"
        assert configuration["CanaryConfiguration"] == {
            "CanaryPercent": 10,
            "CanaryBakeTimeInMinutes": 5,
        }
        assert configuration["BakeTimeInMinutes"] == 5
        assert configuration["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert service["Properties"].get("DeploymentController", {"Type": "ECS"}) == {"Type": "ECS"}


def test_each_target_group_has_a_5xx_rate_a_p99_and_an_unhealthy_hosts_alarm(
    any_app: Synthesized,
) -> None:
    for name in any_app.services:
        _, service = _api(any_app, name)
        alarms_config = service["Properties"]["DeploymentConfiguration"]["Alarms"]
        assert (alarms_config["Enable"], alarms_config["Rollback"]) == (True, True)
        for group in _groups(any_app, name):
            alarms = any_app.resources(name, "AWS::CloudWatch::Alarm")
            kinds: dict[str, dict[str, Any]] = {}
            for logical_id in _alarms_of(any_app, name, group):
                properties = alarms[logical_id]["Properties"]
                metrics = {
                    m["MetricStat"]["Metric"]["MetricName"]
                    for m in properties.get("Metrics", [])
                    if "MetricStat" in m
                } or {properties["MetricName"]}
                kinds[",".join(sorted(metrics))] = properties
            assert sorted(kinds) == [
                "HTTPCode_Target_5XX_Count,RequestCount",
                "TargetResponseTime",
                "UnHealthyHostCount",
            ]
            rate = kinds["HTTPCode_Target_5XX_Count,RequestCount"]
            assert _expression(rate) == FIVE_XX_EXPRESSION
            assert "FILL(requests, 0) >= 1" in FIVE_XX_EXPRESSION
            assert rate["Threshold"] == FIVE_XX_PERCENT
            latency = kinds["TargetResponseTime"]
            assert _expression(latency) == LATENCY_EXPRESSION
            stats = {
                m["Id"]: m["MetricStat"]["Stat"] for m in latency["Metrics"] if "MetricStat" in m
            }
            assert stats == {"p99": "p99", "samples": "SampleCount"}
            assert latency["Threshold"] == P99_LATENCY_S
            for properties in kinds.values():
                assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (3, 2)
                assert properties["TreatMissingData"] == "notBreaching"
            assert kinds["UnHealthyHostCount"]["ComparisonOperator"] == (
                "GreaterThanOrEqualToThreshold"
            )


def _expression(alarm: dict[str, Any]) -> str:
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    return str(expression)


def test_api_alternates_between_two_target_groups_on_its_path_rule(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        _, service = _api(any_app, name)
        (balancer,) = service["Properties"]["LoadBalancers"]
        advanced = balancer["AdvancedConfiguration"]
        rule_id, rule = one(any_app.resources(name, PRODUCTION_RULE))
        assert advanced["ProductionListenerRule"] == ref(rule_id)
        assert "RoleArn" in advanced
        properties = rule["Properties"]
        weights = {g["TargetGroupArn"]["Ref"]: g["Weight"] for g in properties["TargetGroups"]}
        # Created 100/0: the service's first tasks register with the first group.
        assert weights == {
            balancer["TargetGroupArn"]["Ref"]: 100,
            advanced["AlternateTargetGroupArn"]["Ref"]: 0,
        }
        assert (balancer["ContainerName"], balancer["ContainerPort"]) == ("app", 8000)
        assert properties["Priority"] == spec.port
        assert properties["ListenerArn"] == {
            "Fn::ImportValue": f"longhaul-{any_app.env}-platform:"
            "ExportsOutputRefEdgeLoadBalancerHttps6581747E2FD0FC37"
        }
        assert properties["Conditions"] == [
            {"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/{name}/*"]}}
        ]
        # The kit serves at the root; the ALB strips the service's prefix.
        assert properties["Transforms"] == [
            {
                "Type": "url-rewrite",
                "UrlRewriteConfig": {"Rewrites": [{"Regex": f"^/{name}/(.*)$", "Replace": "/$1"}]},
            }
        ]
        # The rule answers afresh whenever the service would deploy.
        assert properties["Deployment"]["TaskDefinition"] == service["Properties"]["TaskDefinition"]


def test_target_groups_check_liveness_which_calls_no_aws_api(any_app: Synthesized) -> None:
    for name in any_app.services:
        for group in any_app.resources(name, "AWS::ElasticLoadBalancingV2::TargetGroup").values():
            properties = group["Properties"]
            assert (properties["TargetType"], properties["Port"]) == ("ip", 8000)
            assert properties["HealthCheckPath"] == "/healthz"


def test_api_tasks_take_traffic_from_the_alb_only(dev: Synthesized) -> None:
    for name in dev.services:
        ingress = dev.resources(name, "AWS::EC2::SecurityGroupIngress").values()
        assert [(i["Properties"]["FromPort"], i["Properties"]["ToPort"]) for i in ingress] == [
            (8000, 8000)
        ], name
        (rule,) = ingress
        assert "EdgeSecurityGroup" in str(rule["Properties"]["SourceSecurityGroupId"])
        # every other security group (the workers', the GPU instances') lets nothing in
        for group in dev.resources(name, "AWS::EC2::SecurityGroup").values():
            assert "SecurityGroupIngress" not in group["Properties"], name


def test_api_runs_the_api_role_with_auth_and_scales_within_the_environment_bounds(
    dev: Synthesized, prod: Synthesized
) -> None:
    assert settings_for("dev").api_bounds(dev.specs["media"]) == (1, 2)
    assert settings_for("prod").api_bounds(prod.specs["media"]) == (2, 6)
    for app in (dev, prod):
        for name, spec in app.specs.items():
            task = _task(app, name, "ApiTask")
            assert container(task)["Command"] == ["--role", "api"]
            assert container(task)["StopTimeout"] == 30
            variables = environment(task)
            assert "LONGHAUL_AUTH_ISSUER" in variables
            assert "LONGHAUL_AUTH_CLIENT_ID" in variables
            targets = app.resources(name, "AWS::ApplicationAutoScaling::ScalableTarget")
            api_target = one({k: v for k, v in targets.items() if k.startswith("Api")})[1]
            assert (
                api_target["Properties"]["MinCapacity"],
                api_target["Properties"]["MaxCapacity"],
            ) == settings_for(app.env).api_bounds(spec), name


def _forward_weights(actions: list[dict[str, Any]]) -> list[dict[str, int]]:
    return [
        {str(g["TargetGroupArn"]): int(g["Weight"]) for g in a["ForwardConfig"]["TargetGroups"]}
        for a in actions
        if "ForwardConfig" in a
    ]


def _weights_sent_on_update(before: Synthesized, after: Synthesized, name: str) -> list[Any]:
    """The target group weights CloudFormation would send to the load balancer when it
    updates `name`'s stack from `before`'s template to `after`'s.

    CloudFormation updates a resource whose properties changed. Its own listener rule
    handler sends the rule's whole `Actions` with every update (aws/aws-cdk#36649); the
    production rule's handler sends what `plan` says it calls.
    """
    old_resources = before.raw(name)["Resources"]
    sent: list[Any] = []
    for logical_id, resource in after.raw(name)["Resources"].items():
        old = old_resources.get(logical_id)
        if old is None or old["Properties"] == resource["Properties"]:
            continue
        if resource["Type"] == LISTENER_RULE:
            sent += _forward_weights(resource["Properties"]["Actions"])
        elif resource["Type"] == PRODUCTION_RULE:
            from longhaul_deploy import production_rule_handler as handler

            event = {
                "RequestType": "Update",
                "PhysicalResourceId": RULE_ARN,
                "ResourceProperties": stand_in(resource["Properties"]),
                "OldResourceProperties": stand_in(old["Properties"]),
            }
            for _operation, parameters in handler.plan(event):
                sent += _forward_weights(parameters.get("Actions", []))
    return sent


def test_a_stack_update_that_changes_the_rule_never_sends_traffic_weights(
    dev: Synthesized, dev_moved: Synthesized
) -> None:
    # ECS moves the production rule's weights at every deployment, so after an odd number of
    # them production is on the second group. Weights in an update would move it back, to a
    # group with no task: every request a 503 until the next deployment.
    rules = (LISTENER_RULE, PRODUCTION_RULE)
    changed = [
        logical_id
        for logical_id, resource in dev_moved.raw("media")["Resources"].items()
        if resource["Type"] in rules
        and resource["Properties"] != dev.raw("media")["Resources"][logical_id]["Properties"]
    ]
    assert changed, "the moved app must change the rule, or this test proves nothing"
    assert _weights_sent_on_update(dev, dev_moved, "media") == []
    assert _weights_sent_on_update(dev_moved, dev, "media") == []


def test_the_api_service_routes_through_the_rule_that_ecs_owns(any_app: Synthesized) -> None:
    for name in any_app.services:
        assert not any_app.resources(name, LISTENER_RULE)
        rule_id, _ = one(any_app.resources(name, PRODUCTION_RULE))
        _, service = _api(any_app, name)
        (balancer,) = service["Properties"]["LoadBalancers"]
        assert balancer["AdvancedConfiguration"]["ProductionListenerRule"] == ref(rule_id)


def test_no_service_renders_a_desired_count(any_app: Synthesized) -> None:
    # Auto scaling owns the counts: a template's DesiredCount would be set again at every
    # update, over what the scaling policies chose.
    for name in any_app.services:
        for logical_id, service in any_app.resources(name, "AWS::ECS::Service").items():
            assert "DesiredCount" not in service["Properties"], (name, logical_id)


def _groups(app: Synthesized, name: str) -> list[str]:
    return sorted(app.resources(name, "AWS::ElasticLoadBalancingV2::TargetGroup"))


def _alarms_of(app: Synthesized, name: str, group: str) -> set[str]:
    alarms = app.resources(name, "AWS::CloudWatch::Alarm")
    return {k for k, v in alarms.items() if f"'{group}'" in str(v["Properties"])}


def _rollback_alarms(app: Synthesized, name: str, weights: dict[str, int]) -> set[str]:
    """The alarms ECS watches during a deployment that starts while the production rule's
    live weights are `weights` (by target group logical id)."""
    _, service = _api(app, name)
    names = service["Properties"]["DeploymentConfiguration"]["Alarms"]["AlarmNames"]
    if isinstance(names, list):
        return {n["Ref"] for n in names}
    from longhaul_deploy import production_rule_handler as handler

    delimiter, value = names["Fn::Split"]
    rule_id, attribute = value["Fn::GetAtt"]
    rule = app.resources(name, PRODUCTION_RULE)[rule_id]
    live = {f"ref:{group}": weight for group, weight in weights.items()}
    chosen = handler.rollback_alarm_names(stand_in(rule["Properties"]), live)
    assert (delimiter, attribute) == (",", handler.ROLLBACK_ALARMS)
    return {n.removeprefix("ref:") for n in chosen}


def test_only_the_new_revisions_alarms_roll_a_deployment_back(any_app: Synthesized) -> None:
    # Blue and green swap at every deployment: the new revision goes to the group with no
    # production traffic, and only that group's alarms may roll it back.
    for name in any_app.services:
        first, second = _groups(any_app, name)
        for live, idle in (({first: 100, second: 0}, second), ({first: 0, second: 100}, first)):
            assert _rollback_alarms(any_app, name, live) == _alarms_of(any_app, name, idle)
            assert len(_alarms_of(any_app, name, idle)) == 3


def _canary_alarms(app: Synthesized, name: str) -> list[dict[str, Any]]:
    first, second = _groups(app, name)
    alarms = app.resources(name, "AWS::CloudWatch::Alarm")
    chosen = _rollback_alarms(app, name, {first: 100, second: 0})
    return [alarms[k]["Properties"] for k in sorted(chosen)]


def _states(alarms: list[dict[str, Any]], story: Mapping[Any, Sequence[float | None]]) -> set[str]:
    minutes = len(next(iter(story.values())))
    return {evaluate(alarm, story, minutes) for alarm in alarms}


def test_a_canary_failing_its_requests_at_one_request_a_minute_rolls_back(
    any_app: Synthesized,
) -> None:
    for name in any_app.services:
        alarms = _canary_alarms(any_app, name)
        every_minute_a_500: Story = {
            ("RequestCount", "Sum"): [1.0] * 5,
            ("HTTPCode_Target_5XX_Count", "Sum"): [1.0] * 5,
            ("TargetResponseTime", "p99"): [0.05] * 5,
            ("TargetResponseTime", "SampleCount"): [1.0] * 5,
        }
        assert "ALARM" in _states(alarms, every_minute_a_500), name
        # Most, not all: two of three requests.
        two_of_three = {k: v[:3] for k, v in every_minute_a_500.items()}
        two_of_three[("HTTPCode_Target_5XX_Count", "Sum")] = [1.0, None, 1.0]
        assert "ALARM" in _states(alarms, two_of_three), name


def test_a_single_failure_or_slow_request_does_not_roll_back(any_app: Synthesized) -> None:
    for name in any_app.services:
        alarms = _canary_alarms(any_app, name)
        one_request_a_minute: Story = {
            ("RequestCount", "Sum"): [1.0] * 5,
            ("HTTPCode_Target_5XX_Count", "Sum"): [None] * 5,
            ("TargetResponseTime", "SampleCount"): [1.0] * 5,
        }
        # Every request slow (30 s), one a minute: a p99 of one sample is that sample.
        slow: Story = {**one_request_a_minute, ("TargetResponseTime", "p99"): [30.0] * 5}
        assert _states(alarms, slow) == {"OK"}, name
        # One 500 among quiet minutes.
        one_500: Story = {
            **one_request_a_minute,
            ("HTTPCode_Target_5XX_Count", "Sum"): [None, 1.0, None, None, None],
            ("TargetResponseTime", "p99"): [0.05] * 5,
        }
        assert _states(alarms, one_500) == {"OK"}, name


def test_the_canary_alarms_still_catch_errors_and_latency_under_load(
    any_app: Synthesized,
) -> None:
    for name in any_app.services:
        alarms = _canary_alarms(any_app, name)
        busy: Story = {
            ("RequestCount", "Sum"): [200.0] * 5,
            ("HTTPCode_Target_5XX_Count", "Sum"): [1.0] * 5,
            ("TargetResponseTime", "SampleCount"): [200.0] * 5,
            ("TargetResponseTime", "p99"): [0.3] * 5,
        }
        assert _states(alarms, busy) == {"OK"}, name  # 0.5% errors, fast
        failing: Story = {**busy, ("HTTPCode_Target_5XX_Count", "Sum"): [40.0] * 5}
        assert "ALARM" in _states(alarms, failing), name
        slow: Story = {**busy, ("TargetResponseTime", "p99"): [P99_LATENCY_S + 1] * 5}
        assert "ALARM" in _states(alarms, slow), name
