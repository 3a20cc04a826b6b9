"""One role's task definition: the service's image started with `--role <role>`, its
environment, its secrets, its logs, and the stop timeout its shutdown fits in.

The container is hardened: its root filesystem is read-only, it holds no Linux capability,
and the only place it writes is the task's scratch volume at `/scratch` (`TMPDIR`), on the
task's ephemeral storage, sized from the role's spec (`ComputeSpec.ephemeral_storage_gib`).

A GPU worker (`GpuWorkerSpec`) is the worker's container on EC2: the same image, command,
hardening and scratch, with the GPU requirement, its CPU and memory on the container, and
its scratch a task-scoped Docker volume on the instance's root volume.

Beside the service, every task runs the AWS Distro for OpenTelemetry collector (`otel`), as
hardened, which takes the service's spans over OTLP on the task's loopback and sends them
to X-Ray (metrics leave through the logs instead, as EMF: docs/operations.md "Telemetry on
AWS"). It is not essential (the service runs on without it) and the service's container
starts after it and stops before it, so the last spans of a stopping task still leave.
"""

from __future__ import annotations

from typing import Literal

from aws_cdk import Duration, Size
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from longhaul.spec import ComputeSpec, GpuWorkerSpec
from longhaul_deploy._utils import acknowledge
from longhaul_deploy.config import CONTAINER_PORT

__all__ = [
    "COLLECTOR_CONFIG",
    "COLLECTOR_IMAGE",
    "COLLECTOR_NAME",
    "CONTAINER_NAME",
    "HEALTH_COMMAND",
    "HEALTH_PATH",
    "SCRATCH_PATH",
    "SCRATCH_VOLUME",
    "TRACES_ENDPOINT",
    "Role",
    "ServiceTask",
    "acknowledge_image_pull",
    "container_health_check",
]

Role = Literal["api", "worker"]
CONTAINER_NAME = "app"
COLLECTOR_NAME = "otel"
# The collector's release, pinned (public ECR, pulled through the NAT gateways).
COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
TRACES_ENDPOINT = "http://127.0.0.1:4318/v1/traces"
# OTLP over HTTP on the task's loopback only, batched to X-Ray.
COLLECTOR_CONFIG = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:4318
processors:
  batch:
    timeout: 5s
exporters:
  awsxray:
    index_all_attributes: false
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [awsxray]
"""
# A bind mount with no host: on Fargate, a directory on the task's ephemeral storage, gone
# with the task. The kit's and the services' temporary files go there through TMPDIR
# (Python's tempfile; media's MEDIA_SCRATCH_DIR defaults to it).
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/scratch"
# The kit's liveness endpoint: no AWS call. The ALB checks it, and so does the container
# itself, from inside (the image has no curl).
HEALTH_PATH = "/healthz"
HEALTH_COMMAND = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}{HEALTH_PATH}', timeout=3)"
)


def acknowledge_image_pull(definition: ecs.TaskDefinition) -> None:
    """cdk-nag's IAM5 on the execution role's one wildcard, with the reason."""
    execution_role = definition.execution_role
    assert execution_role is not None  # made by add_container: image pull and logs
    acknowledge(
        execution_role,
        "AwsSolutions-IAM5",
        "ecr:GetAuthorizationToken, which ECS calls to pull the image, supports no "
        "resource-level permissions; every other action of this role names its resource.",
        findings=("Resource::*",),
    )


def container_health_check() -> ecs.HealthCheck:
    """The container's own check of `HEALTH_PATH` (ECS replaces a task that fails it)."""
    return ecs.HealthCheck(
        command=["CMD", "python", "-c", HEALTH_COMMAND],
        interval=Duration.seconds(15),
        timeout=Duration.seconds(5),
        retries=3,
        start_period=Duration.seconds(30),
    )


class ServiceTask(Construct):
    """The task definition of one role of one service: on Fargate, or on EC2 GPU instances
    when `compute` is a GPU worker's."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role: Role,
        compute: ComputeSpec | GpuWorkerSpec,
        image: ecs.ContainerImage,
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
        log_group: logs.ILogGroup,
        stop_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = role
        gpu = compute if isinstance(compute, GpuWorkerSpec) else None
        self.definition: ecs.TaskDefinition
        if gpu is None:
            assert isinstance(compute, ComputeSpec)
            self.definition = ecs.FargateTaskDefinition(
                self,
                "Definition",
                cpu=compute.cpu,
                memory_limit_mib=compute.memory_mib,
                ephemeral_storage_gib=compute.ephemeral_storage_gib,
                runtime_platform=ecs.RuntimePlatform(
                    cpu_architecture=ecs.CpuArchitecture.X86_64,
                    operating_system_family=ecs.OperatingSystemFamily.LINUX,
                ),
            )
        else:
            # awsvpc: the task has its own network interface and security group, and the
            # instance's metadata (its role's credentials) is out of the task's reach.
            self.definition = ecs.Ec2TaskDefinition(
                self, "Definition", network_mode=ecs.NetworkMode.AWS_VPC
            )
        self.container = self.definition.add_container(
            CONTAINER_NAME,
            image=image,
            command=["--role", role],
            environment={
                **environment,
                "TMPDIR": SCRATCH_PATH,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": TRACES_ENDPOINT,
            },
            secrets=secrets,
            cpu=gpu.cpu if gpu else None,
            memory_limit_mib=gpu.memory_mib if gpu else None,
            gpu_count=gpu.gpus if gpu else None,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, name="http")],
            health_check=container_health_check(),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="gpu-worker" if gpu else role,
                log_group=log_group,
                # A slow log pipe must never stall the event loop (heartbeats, health).
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
            linux_parameters=self._linux_parameters(),
            # Nothing in the image changes at run time; a write outside /scratch fails.
            readonly_root_filesystem=True,
            stop_timeout=stop_timeout,
        )
        self.collector = self._collector(log_group, "gpu-worker-otel" if gpu else f"{role}-otel")
        self.container.add_container_dependencies(
            ecs.ContainerDependency(
                container=self.collector, condition=ecs.ContainerDependencyCondition.START
            )
        )
        if gpu is None:
            self.definition.add_volume(name=SCRATCH_VOLUME)
        else:
            # A bind mount with no host on EC2 is a directory the agent makes, owned by root;
            # a Docker volume starts with the image's /scratch (owned by the service user).
            self.definition.add_volume(
                name=SCRATCH_VOLUME,
                docker_volume_configuration=ecs.DockerVolumeConfiguration(
                    driver="local", scope=ecs.Scope.TASK
                ),
            )
        self.container.add_mount_points(
            ecs.MountPoint(
                source_volume=SCRATCH_VOLUME, container_path=SCRATCH_PATH, read_only=False
            )
        )
        acknowledge_image_pull(self.definition)
        self.definition.add_to_task_role_policy(
            iam.PolicyStatement(
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]
            )
        )
        acknowledge(
            self.definition,
            "AwsSolutions-IAM5",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level "
            "permissions; the collector sidecar sends the task's spans with them.",
            findings=("Resource::*",),
        )
        acknowledge(
            self.definition,
            "AwsSolutions-ECS2",
            "The environment carries resource names, ARNs and settings only; secret values "
            "reach the container through `secrets` (Secrets Manager), never through it.",
        )

    def _collector(self, log_group: logs.ILogGroup, stream_prefix: str) -> ecs.ContainerDefinition:
        """The OpenTelemetry collector beside the service: OTLP in on loopback, X-Ray out."""
        parameters = ecs.LinuxParameters(self, "CollectorLinux")
        parameters.drop_capabilities(ecs.Capability.ALL)
        return self.definition.add_container(
            COLLECTOR_NAME,
            image=ecs.ContainerImage.from_registry(COLLECTOR_IMAGE),
            essential=False,
            environment={"AOT_CONFIG_CONTENT": COLLECTOR_CONFIG},
            memory_reservation_mib=64,
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=stream_prefix,
                log_group=log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(4),
            ),
            linux_parameters=parameters,
            readonly_root_filesystem=True,
        )

    def _linux_parameters(self) -> ecs.LinuxParameters:
        """An init process, and every Linux capability dropped."""
        # The init process (Docker's tini, mounted by the runtime, not from the image) reaps
        # the children the kit spawns (ffmpeg, spawned workers) and passes SIGTERM on to the
        # service; it needs no capability and writes nothing. The service runs as a non-root
        # user and binds a port above 1024, so it needs none either: dropping them all also
        # empties the bounding set, so no setuid binary in the image can gain one.
        parameters = ecs.LinuxParameters(self, "Linux", init_process_enabled=True)
        parameters.drop_capabilities(ecs.Capability.ALL)
        return parameters
