"""The worker role: a Fargate service not behind the ALB, on the spec's capacity providers,
rolled out with the circuit breaker, and scaled on backlog per task, from zero.

Scaling has two parts:

- Target tracking on backlog per task, by metric math: `m1` is the queue's visible messages,
  `m2` the service's running tasks (Container Insights), and the tracked value is `m1 / m2`
  (`m1` while nothing runs). The target is the spec's `backlog_per_task`. Scale-in takes
  only idle tasks: a busy worker holds ECS task scale-in protection (the kit asks the ECS
  agent while any job runs), so a deployment or a scale-in never kills a running job. A
  worker whose deployment a new one replaced drains (`longhaul.jobs.drain`): it takes no new
  job, so its protection lapses and the rollout can stop it.
- Target tracking multiplies the current capacity, so it can never leave zero. A step
  policy adds one task when messages are visible and the service wants no task at all; its
  alarm looks at one-minute datapoints, so the first message starts a worker within about a
  minute of SQS reporting it. After that, target tracking takes over.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul.spec import ServiceSpec
from longhaul_deploy import access
from longhaul_deploy.observability import container_insights
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.service_task import ServiceTask

__all__ = [
    "BACKLOG_EXPRESSION",
    "FROM_ZERO_EXPRESSION",
    "SPOT_WEIGHTS",
    "ServiceWorker",
    "capacity_providers",
]

BACKLOG_EXPRESSION = "IF(FILL(m2, 0) > 0, m1 / FILL(m2, 0), m1)"
FROM_ZERO_EXPRESSION = "IF(m1 >= 1 AND FILL(m2, 0) == 0, 1, 0)"
# Interruptible work runs mostly on Spot; a share on regular Fargate keeps the queue moving
# when Spot has no capacity in either AZ.
SPOT_WEIGHTS = {"FARGATE_SPOT": 4, "FARGATE": 1}
MINUTE = Duration.minutes(1)


def capacity_providers(spec: ServiceSpec) -> list[ecs.CapacityProviderStrategy]:
    """The worker's capacity provider strategy: Spot for interruptible work."""
    weights = SPOT_WEIGHTS if spec.scaling.spot else {"FARGATE": 1}
    return [
        ecs.CapacityProviderStrategy(capacity_provider=name, weight=weight)
        for name, weight in weights.items()
    ]


class ServiceWorker(Construct):
    """The worker service and its backlog scaling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: ServiceSpec,
        platform: PlatformStack,
        task: ServiceTask,
        queue: sqs.IQueue,
        bounds: tuple[int, int],
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=platform.vpc,
            description=f"{spec.name} worker tasks: nothing in, anything out (AWS APIs)",
            allow_all_outbound=True,
        )
        low, high = bounds
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=platform.cluster,
            task_definition=task.definition,
            desired_count=low,
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            capacity_provider_strategies=capacity_providers(spec),
            deployment_strategy=ecs.DeploymentStrategy.ROLLING,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        # The deployment watch: a busy task drains once a new deployment replaces it.
        access.grant_worker_service(self, task.definition.task_role, service=self.service)
        visible = queue.metric_approximate_number_of_messages_visible(
            period=MINUTE, statistic="Average"
        )
        running = container_insights(
            "RunningTaskCount", cluster_name=platform.cluster_name, service=self.service
        )
        self.backlog_per_task = cloudwatch.MathExpression(
            expression=BACKLOG_EXPRESSION,
            using_metrics={"m1": visible, "m2": running},
            period=MINUTE,
            label="Backlog per task",
        )
        self.scalable_target = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{platform.cluster_name}/{self.service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=low,
            max_capacity=high,
        )
        self.backlog_policy = self._backlog_policy(
            queue=queue, cluster_name=platform.cluster_name, target=spec.scaling.backlog_per_task
        )
        self.from_zero_alarm = self._from_zero(
            visible=visible,
            desired=container_insights(
                "DesiredTaskCount", cluster_name=platform.cluster_name, service=self.service
            ),
        )

    def _backlog_policy(
        self, *, queue: sqs.IQueue, cluster_name: str, target: int
    ) -> appscaling.CfnScalingPolicy:
        policy = appscaling.CfnScalingPolicy
        metrics = [
            _metric_query(
                "m1",
                "Messages visible",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                {"QueueName": queue.queue_name},
            ),
            _metric_query(
                "m2",
                "Running tasks",
                "ECS/ContainerInsights",
                "RunningTaskCount",
                {"ClusterName": cluster_name, "ServiceName": self.service.service_name},
            ),
            policy.TargetTrackingMetricDataQueryProperty(
                id="e1", label="Backlog per task", expression=BACKLOG_EXPRESSION, return_data=True
            ),
        ]
        configuration = policy.TargetTrackingScalingPolicyConfigurationProperty(
            target_value=float(target),
            scale_out_cooldown=120,
            scale_in_cooldown=300,
            customized_metric_specification=policy.CustomizedMetricSpecificationProperty(
                metrics=metrics
            ),
        )
        return policy(
            self,
            "BacklogPerTask",
            policy_name=f"{self.node.path.replace('/', '-')}-backlog-per-task"[-256:],
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=configuration,
        )

    def _from_zero(
        self, *, visible: cloudwatch.IMetric, desired: cloudwatch.IMetric
    ) -> cloudwatch.Alarm:
        step = appscaling.StepScalingAction(
            self,
            "FromZero",
            scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            # Container Insights reports the new desired count a minute or so later; the
            # cooldown keeps the alarm's repeats from adding a second task meanwhile.
            cooldown=Duration.minutes(2),
        )
        step.add_adjustment(adjustment=1, lower_bound=0)
        alarm = cloudwatch.Alarm(
            self,
            "BacklogWithoutWorkers",
            metric=cloudwatch.MathExpression(
                expression=FROM_ZERO_EXPRESSION,
                using_metrics={"m1": visible, "m2": desired},
                period=MINUTE,
                label="Messages waiting, no worker wanted",
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Scales the worker out from zero on the first visible message",
        )
        alarm.add_alarm_action(cw_actions.ApplicationScalingAction(step))
        return alarm


def _metric_query(
    query_id: str, label: str, namespace: str, name: str, dimensions: dict[str, str]
) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
    """One raw metric of a target tracking policy's metric math (its average per minute)."""
    policy = appscaling.CfnScalingPolicy
    return policy.TargetTrackingMetricDataQueryProperty(
        id=query_id,
        label=label,
        return_data=False,
        metric_stat=policy.TargetTrackingMetricStatProperty(
            stat="Average",
            metric=policy.TargetTrackingMetricProperty(
                namespace=namespace,
                metric_name=name,
                dimensions=[
                    policy.TargetTrackingMetricDimensionProperty(name=key, value=value)
                    for key, value in dimensions.items()
                ],
            ),
        ),
    )
