"""The API role: behind the ALB by path, deployed by ECS's canary (10% for 5 minutes, then
all) and rolled back automatically by its target groups' alarms."""

from __future__ import annotations

from typing import Any

from longhaul_deploy.observability import FIVE_XX_PERCENT, MIN_REQUESTS, P99_LATENCY_S
from tests.unit.deploy._template import container, environment, one, ref
from tests.unit.deploy.conftest import Synthesized


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


def test_api_rolls_back_on_5xx_latency_and_unhealthy_hosts_of_either_target_group(
    any_app: Synthesized,
) -> None:
    for name in any_app.services:
        _, service = _api(any_app, name)
        alarms_config = service["Properties"]["DeploymentConfiguration"]["Alarms"]
        assert (alarms_config["Enable"], alarms_config["Rollback"]) == (True, True)
        alarms = any_app.resources(name, "AWS::CloudWatch::Alarm")
        watched = {
            alarm["Ref"]: alarms[alarm["Ref"]]["Properties"]
            for alarm in alarms_config["AlarmNames"]
        }
        groups = sorted(
            k for k in any_app.resources(name, "AWS::ElasticLoadBalancingV2::TargetGroup")
        )
        assert len(watched) == 3 * len(groups) == 6
        kinds: dict[str, list[dict[str, Any]]] = {}
        for properties in watched.values():
            metric = properties.get("MetricName") or "5xx rate"
            kinds.setdefault(metric, []).append(properties)
        assert sorted(kinds) == ["5xx rate", "TargetResponseTime", "UnHealthyHostCount"]
        assert all(len(found) == 2 for found in kinds.values())
        for rate in kinds["5xx rate"]:
            expression = next(m["Expression"] for m in rate["Metrics"] if "Expression" in m)
            assert expression == (
                f"IF(requests >= {MIN_REQUESTS}, 100 * FILL(errors, 0) / requests, 0)"
            )
            names = {
                m["MetricStat"]["Metric"]["MetricName"]
                for m in rate["Metrics"]
                if "MetricStat" in m
            }
            assert names == {"HTTPCode_Target_5XX_Count", "RequestCount"}
            assert rate["Threshold"] == FIVE_XX_PERCENT
        for latency in kinds["TargetResponseTime"]:
            assert (latency["ExtendedStatistic"], latency["Threshold"]) == ("p99", P99_LATENCY_S)
        for unhealthy in kinds["UnHealthyHostCount"]:
            assert unhealthy["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        # Each target group is watched by its own three alarms.
        for group in groups:
            by_group = [p for p in watched.values() if f"'{group}'" in str(p)]
            assert len(by_group) == 3, group


def test_api_alternates_between_two_target_groups_on_its_path_rule(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        _, service = _api(any_app, name)
        (balancer,) = service["Properties"]["LoadBalancers"]
        advanced = balancer["AdvancedConfiguration"]
        rule_id, rule = one(any_app.resources(name, "AWS::ElasticLoadBalancingV2::ListenerRule"))
        assert advanced["ProductionListenerRule"] == ref(rule_id)
        assert "RoleArn" in advanced
        groups = rule["Properties"]["Actions"][0]["ForwardConfig"]["TargetGroups"]
        weights = {g["TargetGroupArn"]["Ref"]: g["Weight"] for g in groups}
        assert weights == {
            balancer["TargetGroupArn"]["Ref"]: 100,
            advanced["AlternateTargetGroupArn"]["Ref"]: 0,
        }
        assert (balancer["ContainerName"], balancer["ContainerPort"]) == ("app", 8000)
        properties = rule["Properties"]
        assert properties["Priority"] == spec.port
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


def test_target_groups_check_liveness_which_calls_no_aws_api(any_app: Synthesized) -> None:
    for name in any_app.services:
        for group in any_app.resources(name, "AWS::ElasticLoadBalancingV2::TargetGroup").values():
            properties = group["Properties"]
            assert (properties["TargetType"], properties["Port"]) == ("ip", 8000)
            assert properties["HealthCheckPath"] == "/healthz"


def test_api_tasks_take_traffic_from_the_alb_only(dev: Synthesized) -> None:
    ingress = dev.resources("media", "AWS::EC2::SecurityGroupIngress").values()
    assert [(i["Properties"]["FromPort"], i["Properties"]["ToPort"]) for i in ingress] == [
        (8000, 8000)
    ]
    (rule,) = ingress
    assert "EdgeSecurityGroup" in str(rule["Properties"]["SourceSecurityGroupId"])


def test_api_runs_the_api_role_with_auth_and_scales_within_the_environment_bounds(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app, bounds in ((dev, (1, 2)), (prod, (2, 6))):
        task = _task(app, "media", "ApiTask")
        assert container(task)["Command"] == ["--role", "api"]
        assert container(task)["StopTimeout"] == 30
        variables = environment(task)
        assert "LONGHAUL_AUTH_ISSUER" in variables
        assert "LONGHAUL_AUTH_CLIENT_ID" in variables
        _, service = _api(app, "media")
        assert service["Properties"]["DesiredCount"] == bounds[0]
        targets = app.resources("media", "AWS::ApplicationAutoScaling::ScalableTarget")
        api_target = one({k: v for k, v in targets.items() if k.startswith("Api")})[1]
        assert (
            api_target["Properties"]["MinCapacity"],
            api_target["Properties"]["MaxCapacity"],
        ) == bounds
