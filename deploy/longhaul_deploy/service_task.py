"""One role's task definition: the service's image started with `--role <role>`, its
environment, its secrets, its logs, and the stop timeout its shutdown fits in."""

from __future__ import annotations

from typing import Literal

from aws_cdk import Duration, Size
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from longhaul.spec import ComputeSpec
from longhaul_deploy._utils import acknowledge
from longhaul_deploy.config import CONTAINER_PORT

__all__ = ["CONTAINER_NAME", "HEALTH_COMMAND", "Role", "ServiceTask"]

Role = Literal["api", "worker"]
CONTAINER_NAME = "app"
# The kit's liveness endpoint, from inside the container (the image has no curl).
HEALTH_COMMAND = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/healthz', timeout=3)"
)


class ServiceTask(Construct):
    """The Fargate task definition of one role of one service."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role: Role,
        compute: ComputeSpec,
        image: ecs.ContainerImage,
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
        log_group: logs.ILogGroup,
        stop_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = role
        self.definition = ecs.FargateTaskDefinition(
            self,
            "Definition",
            cpu=compute.cpu,
            memory_limit_mib=compute.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.container = self.definition.add_container(
            CONTAINER_NAME,
            image=image,
            command=["--role", role],
            environment=environment,
            secrets=secrets,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, name="http")],
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", HEALTH_COMMAND],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(30),
            ),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=role,
                log_group=log_group,
                # A slow log pipe must never stall the event loop (heartbeats, health).
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
            # An init process reaps the children the kit spawns (ffmpeg, spawned workers)
            # and passes SIGTERM on to the service.
            linux_parameters=ecs.LinuxParameters(self, "Linux", init_process_enabled=True),
            stop_timeout=stop_timeout,
        )
        execution_role = self.definition.execution_role
        assert execution_role is not None  # made by add_container: image pull and logs
        acknowledge(
            execution_role,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken, which ECS calls to pull the image, supports no "
            "resource-level permissions; every other action of this role names its resource.",
            findings=("Resource::*",),
        )
        acknowledge(
            self.definition,
            "AwsSolutions-ECS2",
            "The environment carries resource names, ARNs and settings only; secret values "
            "reach the container through `secrets` (Secrets Manager), never through it.",
        )
