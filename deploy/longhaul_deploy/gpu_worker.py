"""The optional GPU worker (`ServiceSpec.gpu_worker`): the worker's image and command as a
second ECS service, on EC2 GPU instances that an Auto Scaling group launches behind an ECS
capacity provider, from zero.

- **Its own cluster**, `longhaul-<env>-<service>-gpu`. A capacity provider joins a cluster
  through the cluster's one list of providers (`PutClusterCapacityProviders`), which the
  platform stack owns for the shared cluster; a service stack adding its provider there would
  overwrite that list or make the platform depend on the service. A cluster costs nothing.
- **The instances**: the ECS-optimized Amazon Linux 2023 GPU AMI (its image id read from
  AWS's public SSM parameter at deploy time), in the task subnets, no inbound rule, IMDSv2
  required with a hop limit of 1, an encrypted root volume, and a role with only what the ECS
  agent calls on this cluster (image pulls and logs go through the task's execution role).
  Tasks (awsvpc) cannot reach the instance's metadata (`ECS_AWSVPC_BLOCK_IMDS`), so they never
  hold the instance role's credentials; their own task role has the worker's grants, in this
  cluster.
- **Capacity**: the Auto Scaling group runs 0 instances at rest; ECS managed scaling (target
  100%) launches instances for the tasks it has to place and removes empty ones, managed
  termination protection keeps an instance with a task from being removed, and managed
  draining drains an instance before it goes.
- **The service** scales on the queue's backlog per running task exactly as the worker does
  (`BacklogScaling`), between the spec's `min_tasks` and `max_tasks`, with its own
  `backlog_per_task`. It consumes the service's one queue: the runtime routes no job to a
  queue of its own (docs/deploy.md, "The GPU worker").
"""

from __future__ import annotations

import math

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul.spec import GpuWorkerSpec
from longhaul_deploy import access
from longhaul_deploy._utils import acknowledge, nag_resource
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.service_task import ServiceTask
from longhaul_deploy.service_worker import BacklogScaling

__all__ = [
    "AGENT_CLUSTER_ACTIONS",
    "AGENT_INSTANCE_ACTIONS",
    "AGENT_UNSCOPED_ACTIONS",
    "DEVICE_VARIABLE",
    "GpuWorker",
    "agent_configuration",
    "gpu_cluster_name",
    "instance_bounds",
]

# The ECS agent on an instance: join and leave the cluster, report tasks' and containers'
# states (on the cluster's ARN)...
AGENT_CLUSTER_ACTIONS = (
    "ecs:DeregisterContainerInstance",
    "ecs:RegisterContainerInstance",
    "ecs:SubmitAttachmentStateChanges",
    "ecs:SubmitContainerStateChange",
    "ecs:SubmitTaskStateChange",
)
# ...poll for work and send telemetry, as its container instance...
AGENT_INSTANCE_ACTIONS = ("ecs:Poll", "ecs:StartTelemetrySession")
# ...and find the endpoint to poll, which takes no resource.
AGENT_UNSCOPED_ACTIONS = ("ecs:DiscoverPollEndpoint",)

# What the worker's code reads to put its tensors on the GPU.
DEVICE_VARIABLE = {"LONGHAUL_DEVICE": "cuda"}
# Deployments roll at 200%: the old tasks run until the new ones do, on instances of their own.
DEPLOYMENT_HEADROOM = 2


def agent_configuration(cluster_name: str) -> dict[str, str]:
    """/etc/ecs/ecs.config on a GPU instance: its cluster; the instance's metadata (and its
    role's credentials) out of reach of awsvpc tasks; the tasks' logs written with their
    execution role, not the instance's; GPU support (the GPU AMI sets it too)."""
    return {
        "ECS_CLUSTER": cluster_name,
        "ECS_AWSVPC_BLOCK_IMDS": "true",
        "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE": "true",
        "ECS_ENABLE_GPU_SUPPORT": "true",
    }


def gpu_cluster_name(env: str, service: str) -> str:
    """The name of `service`'s GPU cluster in environment `env`."""
    return f"longhaul-{env}-{service}-gpu"


def instance_bounds(gpu: GpuWorkerSpec, tasks: tuple[int, int]) -> tuple[int, int]:
    """The Auto Scaling group's size: 0 at rest (managed scaling raises it for the tasks to
    place), and room for the most tasks twice over while a deployment rolls."""
    _, high = tasks
    return 0, max(1, math.ceil(DEPLOYMENT_HEADROOM * high / gpu.tasks_per_instance))


class GpuWorker(Construct):
    """The GPU worker's cluster, instances, capacity provider, service and scaling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service_name: str,
        gpu: GpuWorkerSpec,
        platform: PlatformStack,
        task: ServiceTask,
        queue: sqs.IQueue,
        bounds: tuple[int, int],
        cluster_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster_name = cluster_name
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            vpc=platform.vpc,
            # RunningTaskCount, which the backlog per task divides by
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.instance_security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=platform.vpc,
            description=f"{service_name} GPU instances: nothing in, anything out (ECS, ECR)",
            allow_all_outbound=True,
        )
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"The ECS agent on {service_name}'s GPU instances; never the tasks'",
        )
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            *(
                f"echo {name}={value} >> /etc/ecs/ecs.config"
                for name, value in agent_configuration(self.cluster.cluster_name).items()
            )
        )
        self._grant_agent()
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.GPU),
            instance_type=ec2.InstanceType(gpu.instance_type),
            role=self.instance_role,
            security_group=self.instance_security_group,
            user_data=user_data,
            require_imdsv2=True,
            # the agent runs on the host network: one hop; a container's request never arrives
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        gpu.volume_gib,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        low, high = instance_bounds(gpu, bounds)
        self.auto_scaling_group = autoscaling.AutoScalingGroup(
            self,
            "Instances",
            vpc=platform.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            launch_template=self.launch_template,
            min_capacity=low,
            max_capacity=high,
            # ECS managed termination protection needs it: ECS lifts it from empty instances.
            new_instances_protected_from_scale_in=True,
        )
        self.capacity_provider = ecs.AsgCapacityProvider(
            self,
            "CapacityProvider",
            auto_scaling_group=self.auto_scaling_group,
            enable_managed_scaling=True,
            enable_managed_termination_protection=True,
            enable_managed_draining=True,
            target_capacity_percent=100,
        )
        # The cluster's one list of providers. Not `cluster.add_asg_capacity_provider`: that
        # also grants the instance role `ecs:Submit*` and, on `*`, ECR and log actions the
        # agent makes with the task's execution role instead (`_grant_agent`).
        self.associations = ecs.CfnClusterCapacityProviderAssociations(
            self,
            "CapacityProviders",
            cluster=self.cluster.cluster_name,
            capacity_providers=[self.capacity_provider.capacity_provider_name],
            default_capacity_provider_strategy=[
                ecs.CfnClusterCapacityProviderAssociations.CapacityProviderStrategyProperty(
                    capacity_provider=self.capacity_provider.capacity_provider_name, weight=1
                )
            ],
        )
        acknowledge(
            self.auto_scaling_group,
            "AwsSolutions-AS3",
            "Scaling notifications would mail every instance ECS managed scaling starts or "
            "stops; the service's scaling activity and the tasks' events already record them.",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=platform.vpc,
            description=f"{service_name} GPU worker tasks: nothing in, anything out (AWS APIs)",
            allow_all_outbound=True,
        )
        self.service = ecs.Ec2Service(
            self,
            "Service",
            # The cluster as the service sees it: with EC2 capacity, which the L2 knows only
            # of providers added by `add_asg_capacity_provider`.
            cluster=ecs.Cluster.from_cluster_attributes(
                self,
                "ClusterWithCapacity",
                cluster_name=self.cluster.cluster_name,
                cluster_arn=self.cluster.cluster_arn,
                vpc=platform.vpc,
                has_ec2_capacity=True,
            ),
            task_definition=task.definition,
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=self.capacity_provider.capacity_provider_name, weight=1
                )
            ],
            deployment_strategy=ecs.DeploymentStrategy.ROLLING,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        # The provider must be the cluster's before the service names it.
        self.service.node.add_dependency(self.associations)
        access.grant_worker_service(self, task.definition.task_role, service=self.service)
        scaling = BacklogScaling(
            self,
            service=self.service,
            cluster_name=cluster_name,
            queue=queue,
            bounds=bounds,
            target=gpu.backlog_per_task,
        )
        self.scalable_target = scaling.scalable_target
        self.backlog_per_task = scaling.backlog_per_task
        self.from_zero_alarm = scaling.from_zero_alarm

    def _grant_agent(self) -> None:
        """What the ECS agent calls with the instance role (AWS's
        AmazonEC2ContainerServiceforEC2Role, less what the task's execution role covers: the
        agent pulls a task's image and ships its logs with that role), each on this cluster
        only."""
        stack = Stack.of(self)
        cluster_arn = self.cluster.cluster_arn
        instances = stack.format_arn(
            service="ecs",
            resource="container-instance",
            resource_name=f"{self.cluster_name}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        statements = [
            iam.PolicyStatement(actions=list(AGENT_CLUSTER_ACTIONS), resources=[cluster_arn]),
            iam.PolicyStatement(
                actions=list(AGENT_INSTANCE_ACTIONS),
                resources=[instances],
                conditions={"ArnEquals": {"ecs:cluster": cluster_arn}},
            ),
            iam.PolicyStatement(actions=list(AGENT_UNSCOPED_ACTIONS), resources=["*"]),
        ]
        for statement in statements:
            self.instance_role.add_to_principal_policy(statement)
        acknowledge(
            self.instance_role,
            "AwsSolutions-IAM5",
            "The ECS agent polls for work and reports telemetry as its own container instance, "
            "whose ARN is known only once it registers (bounded to this cluster's instances and "
            "the ecs:cluster condition); ecs:DiscoverPollEndpoint supports no resource-level "
            "permission.",
            findings=("Resource::*", nag_resource(self.instance_role, instances)),
        )
