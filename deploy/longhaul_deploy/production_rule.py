"""The APIs' production listener rules, which ECS's blue/green owns: the platform's one
function that creates and edits them for CloudFormation (never their weights after creation),
and each API's rule (`production_rule_handler.py` says why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    CustomResource,
    Duration,
    Fn,
    IStableAnyProducer,
    IStableListProducer,
    Lazy,
    Stack,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from longhaul_deploy._utils import acknowledge, nag_resource
from longhaul_deploy.config import EnvSettings
from longhaul_deploy.production_rule_handler import RESOURCE_TYPE, ROLLBACK_ALARMS

__all__ = ["ProductionRule", "ProductionRuleProvider", "ProductionRuleTarget"]

_HANDLER = Path(__file__).with_name("production_rule_handler.py")


@jsii.implements(IStableListProducer)
class _AlarmNames:
    """The names of the alarms that judge a new revision in one group, once they are known."""

    def __init__(self, alarms: dict[str, list[cloudwatch.IAlarm]], group_arn: str) -> None:
        self.alarms = alarms
        self.group_arn = group_arn

    def produce(self) -> list[str] | None:
        return [alarm.alarm_name for alarm in self.alarms.get(self.group_arn, [])]


@jsii.implements(IStableAnyProducer)
class _Deployment:
    """What starts a deployment of the followed service, once it is known."""

    def __init__(self) -> None:
        self.value: dict[str, Any] = {}

    def produce(self) -> Any:
        return self.value


class ProductionRuleProvider(Construct):
    """The function behind every API's production rule, allowed to edit the rules of the
    platform's load balancer only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer: elbv2.ApplicationLoadBalancer,
        listener: elbv2.IApplicationListener,
        settings: EnvSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Creates and edits the APIs' production listener rules",
        )
        log_group.grant_write(role)
        stack = Stack.of(self)
        rules = stack.format_arn(
            service="elasticloadbalancing",
            resource="listener-rule",
            resource_name=f"{load_balancer.load_balancer_full_name}/*",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["elasticloadbalancing:CreateRule"],
                resources=[listener.listener_arn, rules],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:SetRulePriorities",
                    "elasticloadbalancing:DeleteRule",
                ],
                resources=[rules],
            )
        )
        # Reads the live weights; Describe* calls take no resource-level permission.
        role.add_to_policy(
            iam.PolicyStatement(actions=["elasticloadbalancing:DescribeRules"], resources=["*"])
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "A rule's ARN is known only once it exists; the grant is bounded to the rules of "
            "the platform's own load balancer, and DescribeRules takes no resource.",
            findings=(nag_resource(self, rules), "Resource::*"),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Creates and edits the APIs' production listener rules; ECS moves "
            "their weights",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=f"{_HANDLER.stem}.handler",
            code=lambda_.Code.from_asset(str(_HANDLER.parent), exclude=["*", f"!{_HANDLER.name}"]),
            role=role,
            log_group=log_group,
            timeout=Duration.minutes(1),
            memory_size=256,
        )


@jsii.implements(ecs.IAlternateTarget)
class ProductionRuleTarget:
    """The API service's blue/green configuration: its alternate target group and the
    production rule ECS shifts, with the role ECS shifts it with."""

    def __init__(self, *, rule: ProductionRule, alternate: elbv2.IApplicationTargetGroup) -> None:
        self.rule = rule
        self.alternate = alternate

    def bind(self, scope: IConstruct) -> ecs.AlternateTargetConfig:
        """The service's `AdvancedConfiguration`."""
        assert isinstance(scope, Construct)
        role = iam.Role(
            scope,
            "AlternateRole",
            assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "AmazonECSInfrastructureRolePolicyForLoadBalancers"
                )
            ],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "The ECS infrastructure role that moves the production rule's weights during a "
            "blue/green deployment; AWS maintains the exact load balancer actions ECS needs "
            "in this managed policy.",
            findings=(
                "Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "AmazonECSInfrastructureRolePolicyForLoadBalancers",
            ),
        )
        return ecs.AlternateTargetConfig(
            alternate_target_group_arn=self.alternate.target_group_arn,
            role_arn=role.role_arn,
            production_listener_rule=self.rule.rule_arn,
        )


class ProductionRule(Construct):
    """One API's production rule: a path pattern on the HTTPS listener forwarding to its two
    target groups (created 100/0; ECS moves the weights), the prefix stripped.

    It answers, at each deployment, the alarms of the group the new revision goes to
    (`rollback_alarm_names`), so it is updated whenever the service would deploy: its
    `Deployment` property carries what starts one (`follow`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        provider: ProductionRuleProvider,
        listener: elbv2.IApplicationListener,
        priority: int,
        path: str,
        target_groups: list[elbv2.ApplicationTargetGroup],
    ) -> None:
        super().__init__(scope, construct_id)
        self._alarms: dict[str, list[cloudwatch.IAlarm]] = {}
        self._deployment = _Deployment()
        for group in target_groups:
            # The groups' metrics name the load balancer, and a service attached to them
            # waits for this rule, which associates them with it.
            group.register_listener(listener, self)
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={
                "ListenerArn": listener.listener_arn,
                "Priority": priority,
                "Conditions": [
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": [f"{path}/*"]}}
                ],
                # The kit serves its routes at the root (/jobs, /healthz).
                "Transforms": [
                    {
                        "Type": "url-rewrite",
                        "UrlRewriteConfig": {
                            "Rewrites": [{"Regex": f"^{path}/(.*)$", "Replace": "/$1"}]
                        },
                    }
                ],
                "TargetGroups": [
                    {
                        "TargetGroupArn": group.target_group_arn,
                        "Weight": 100 if index == 0 else 0,
                        "AlarmNames": Lazy.list(_AlarmNames(self._alarms, group.target_group_arn)),
                    }
                    for index, group in enumerate(target_groups)
                ],
                "Deployment": Lazy.any(self._deployment),
            },
        )

    @property
    def rule_arn(self) -> str:
        """The rule's ARN."""
        return self.resource.ref

    @property
    def rollback_alarm_names(self) -> list[str]:
        """The alarms of the target group the next deployment goes to."""
        return Fn.split(",", self.resource.get_att_string(ROLLBACK_ALARMS))

    def roll_back_on(
        self, group: elbv2.IApplicationTargetGroup, alarms: list[cloudwatch.IAlarm]
    ) -> None:
        """The alarms that judge a new revision while it is in `group`."""
        self._alarms[group.target_group_arn] = alarms

    def follow(self, deploying: dict[str, Any]) -> None:
        """Be updated, so as to answer afresh, whenever one of `deploying` changes: what
        starts a deployment of the service (its task definition, its network and capacity
        settings)."""
        self._deployment.value = deploying
