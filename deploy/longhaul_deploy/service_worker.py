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
  policy adds one task when messages are visible and none is in flight, that is when no
  worker is taking messages; both are the queue's own metrics, which exist whether or not a
  task runs (Container Insights publishes nothing for a service with no task). A schedule
  touches the queue every hour, so SQS never stops publishing them (it does after six idle
  hours, and takes up to 15 minutes to start again). After the first task, target tracking
  takes over.

The service renders no desired count: auto scaling owns it, and CloudFormation keeps the
current count on every update.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul.spec import ServiceSpec
from longhaul_deploy import access
from longhaul_deploy.observability import container_insights
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.service_task import ServiceTask

__all__ = [
    "BACKLOG_EXPRESSION",
    "FROM_ZERO_COOLDOWN",
    "FROM_ZERO_EXPRESSION",
    "KEEP_AWAKE_EVERY",
    "ON_DEMAND_BASE",
    "SPOT_WEIGHTS",
    "BacklogScaling",
    "ServiceWorker",
    "capacity_providers",
]

BACKLOG_EXPRESSION = "IF(FILL(m2, 0) > 0, m1 / FILL(m2, 0), m1)"
# m1: visible messages, m2: messages in flight (received by a worker, not yet deleted).
FROM_ZERO_EXPRESSION = "IF(FILL(m1, 0) >= 1 AND FILL(m2, 0) == 0, 1, 0)"
# A new task takes a minute or two to start and receive; the alarm repeats every minute
# while messages wait, and a repeat inside the cooldown adds nothing.
FROM_ZERO_COOLDOWN = Duration.minutes(4)
# SQS stops publishing a queue's metrics after six hours without activity; any call on the
# queue counts, so a touch well inside that keeps them coming.
KEEP_AWAKE_EVERY = Duration.hours(1)
# A tag key no one sets: untagging it changes nothing, and it is a call on the queue.
KEEP_AWAKE_TAG = "longhaul:keep-awake"
# Interruptible work runs mostly on Spot. ECS never moves a task to FARGATE when Spot has no
# capacity (the Spot share just does not start), so the first task always runs on FARGATE:
# whenever the worker runs anything, one on-demand task takes the queue.
SPOT_WEIGHTS = {"FARGATE_SPOT": 4, "FARGATE": 1}
ON_DEMAND_BASE = 1
MINUTE = Duration.minutes(1)


def capacity_providers(spec: ServiceSpec) -> list[ecs.CapacityProviderStrategy]:
    """The worker's capacity provider strategy: one task on FARGATE, the rest mostly on
    Spot for interruptible work."""
    weights = SPOT_WEIGHTS if spec.scaling.spot else {"FARGATE": 1}
    return [
        ecs.CapacityProviderStrategy(
            capacity_provider=name,
            weight=weight,
            base=ON_DEMAND_BASE if name == "FARGATE" else None,
        )
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
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=platform.cluster,
            task_definition=task.definition,
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
        scaling = BacklogScaling(
            self,
            service=self.service,
            cluster_name=platform.cluster_name,
            queue=queue,
            bounds=bounds,
            target=spec.scaling.backlog_per_task,
        )
        self.backlog_per_task = scaling.backlog_per_task
        self.scalable_target = scaling.scalable_target
        self.backlog_policy = scaling.backlog_policy
        self.from_zero_alarm = scaling.from_zero_alarm
        self.keep_awake = self._keep_awake(queue)

    def _keep_awake(self, queue: sqs.IQueue) -> scheduler.Schedule:
        """A call on the queue every hour, so SQS keeps publishing the metrics above."""
        return scheduler.Schedule(
            self,
            "KeepQueueAwake",
            description="Keeps the queue's CloudWatch metrics published while it is idle",
            schedule=scheduler.ScheduleExpression.rate(KEEP_AWAKE_EVERY),
            target=scheduler_targets.Universal(
                service="sqs",
                action="untagQueue",
                input=scheduler.ScheduleTargetInput.from_object(
                    {"QueueUrl": queue.queue_url, "TagKeys": [KEEP_AWAKE_TAG]}
                ),
                policy_statements=[
                    iam.PolicyStatement(actions=["sqs:UntagQueue"], resources=[queue.queue_arn])
                ],
                retry_attempts=0,
            ),
        )


class BacklogScaling:
    """Backlog scaling of one ECS service on one queue, its constructs made in `scope`:
    the scalable target (`Scaling`), target tracking on backlog per running task
    (`BacklogPerTask`), and the step from zero (`FromZero`, `BacklogWithoutWorkers`)."""

    def __init__(
        self,
        scope: Construct,
        *,
        service: ecs.BaseService,
        cluster_name: str,
        queue: sqs.IQueue,
        bounds: tuple[int, int],
        target: int,
    ) -> None:
        self.scope = scope
        self.service = service
        visible = queue.metric_approximate_number_of_messages_visible(
            period=MINUTE, statistic="Average"
        )
        running = container_insights("RunningTaskCount", cluster_name=cluster_name, service=service)
        self.backlog_per_task = cloudwatch.MathExpression(
            expression=BACKLOG_EXPRESSION,
            using_metrics={"m1": visible, "m2": running},
            period=MINUTE,
            label="Backlog per task",
        )
        low, high = bounds
        self.scalable_target = appscaling.ScalableTarget(
            scope,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{cluster_name}/{service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=low,
            max_capacity=high,
        )
        self.backlog_policy = self._backlog_policy(
            queue=queue, cluster_name=cluster_name, target=target
        )
        self.from_zero_alarm = self._from_zero(
            visible=queue.metric_approximate_number_of_messages_visible(
                period=MINUTE, statistic="Maximum"
            ),
            in_flight=queue.metric_approximate_number_of_messages_not_visible(
                period=MINUTE, statistic="Maximum"
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
            self.scope,
            "BacklogPerTask",
            policy_name=f"{self.scope.node.path.replace('/', '-')}-backlog-per-task"[-256:],
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=configuration,
        )

    def _from_zero(
        self, *, visible: cloudwatch.IMetric, in_flight: cloudwatch.IMetric
    ) -> cloudwatch.Alarm:
        step = appscaling.StepScalingAction(
            self.scope,
            "FromZero",
            scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=FROM_ZERO_COOLDOWN,
        )
        step.add_adjustment(adjustment=1, lower_bound=0)
        alarm = cloudwatch.Alarm(
            self.scope,
            "BacklogWithoutWorkers",
            metric=cloudwatch.MathExpression(
                expression=FROM_ZERO_EXPRESSION,
                using_metrics={"m1": visible, "m2": in_flight},
                period=MINUTE,
                label="Messages waiting, none taken",
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            # No datapoint means SQS reported nothing: no message is known to wait.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                "Adds a worker when messages wait and no worker takes them (from zero, or "
                "when every worker failed to start)"
            ),
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
