"""The API role: a Fargate service behind the platform ALB at `/<service>/`, deployed by the
ECS-native canary strategy (10% of traffic for 5 minutes, then all) and rolled back by the
CloudWatch alarms of the target group the new revision runs in. Its production rule is
created through the platform's function, so a stack update never sends its weights."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from longhaul.spec import ServiceSpec
from longhaul_deploy.config import CONTAINER_PORT
from longhaul_deploy.observability import ApiAlarms
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.production_rule import ProductionRule, ProductionRuleTarget
from longhaul_deploy.service_task import CONTAINER_NAME, HEALTH_PATH, ServiceTask

__all__ = ["BAKE_TIME", "CANARY_BAKE_TIME", "CANARY_PERCENT", "ServiceApi"]

CANARY_PERCENT = 10
CANARY_BAKE_TIME = Duration.minutes(5)
# After all traffic has moved, the old revision stays up this long, so an alarm can still
# move traffic back without starting a task.
BAKE_TIME = Duration.minutes(5)
# ALB rule priorities must be unique per listener; a service's port already is (discovery
# refuses clashes), so the priority is the port.
MAX_RULE_PRIORITY = 50_000


class ServiceApi(Construct):
    """The API service, its two target groups, its production rule and its alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: ServiceSpec,
        platform: PlatformStack,
        task: ServiceTask,
        bounds: tuple[int, int],
    ) -> None:
        super().__init__(scope, construct_id)
        if spec.port > MAX_RULE_PRIORITY:
            raise ValueError(f"{spec.name}: port {spec.port} is past the last rule priority")
        self.path = f"/{spec.name}"
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=platform.vpc,
            description=f"{spec.name} API tasks: the platform ALB in, anything out (AWS, JWKS)",
            allow_all_outbound=True,
        )
        self.target_groups = {
            "Blue": self._target_group("Blue", platform.vpc),
            "Green": self._target_group("Green", platform.vpc),
        }
        blue, green = self.target_groups["Blue"], self.target_groups["Green"]
        # Created forwarding to both groups, 100/0; from then on only ECS moves the weights.
        self.rule = ProductionRule(
            self,
            "ProductionRule",
            provider=platform.production_rules,
            listener=platform.edge.https_listener,
            priority=spec.port,
            path=self.path,
            target_groups=[blue, green],
        )
        api_alarms = ApiAlarms(self, "Alarms", target_groups=self.target_groups)
        self.alarms = api_alarms.alarms
        for name, group in self.target_groups.items():
            self.rule.roll_back_on(group, list(api_alarms.by_group[name]))
        low, high = bounds
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        capacity = [ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)]
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=platform.cluster,
            task_definition=task.definition,
            # No desired count: auto scaling owns it. A new service starts one task (and the
            # scalable target raises it to the minimum); an update keeps the current count.
            security_groups=[self.security_group],
            vpc_subnets=subnets,
            capacity_provider_strategies=capacity,
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(60),
            deployment_strategy=ecs.DeploymentStrategy.CANARY,
            canary_configuration=ecs.TrafficShiftConfig(
                step_percent=CANARY_PERCENT, step_bake_time=CANARY_BAKE_TIME
            ),
            bake_time=BAKE_TIME,
            # Tasks that never become healthy fail the deployment in minutes, not hours;
            # the alarms judge the ones that do.
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # The three alarms of the group the new revision goes to, as the rule reads its
            # live weights when the deployment starts: the old revision's faults are not the
            # new one's.
            deployment_alarms=ecs.DeploymentAlarmConfig(
                alarm_names=self.rule.rollback_alarm_names,
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
            ),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        # What starts a deployment: the rule answers afresh for each.
        self.rule.follow(
            {
                "TaskDefinition": task.definition.task_definition_arn,
                "Subnets": platform.vpc.select_subnets(subnet_type=subnets.subnet_type).subnet_ids,
                "SecurityGroups": [self.security_group.security_group_id],
                "CapacityProviders": [f"{c.capacity_provider}:{c.weight}" for c in capacity],
            }
        )
        self.service.load_balancer_target(
            container_name=CONTAINER_NAME,
            container_port=CONTAINER_PORT,
            alternate_target=ProductionRuleTarget(rule=self.rule, alternate=green),
        ).attach_to_application_target_group(blue)
        scaling = self.service.auto_scale_task_count(min_capacity=low, max_capacity=high)
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=60,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

    def _target_group(self, name: str, vpc: ec2.IVpc) -> elbv2.ApplicationTargetGroup:
        return elbv2.ApplicationTargetGroup(
            self,
            name,
            vpc=vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                # Liveness, as the container's own check: answered from memory, no AWS call.
                # Every target is checked every 15 s by each ALB node, so a check that
                # called the table, queue, bucket and bus would spend control-plane calls
                # (and their throttling) on health alone, and a passing AWS blip would take
                # every task out of service at once, where none would be better off.
                path=HEALTH_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
