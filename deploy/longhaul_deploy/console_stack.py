"""The web console's stack (docs/console.md "On AWS"): the console app as one small Fargate
service behind the platform ALB at `/console/`, built after the service stacks so that it
knows every installed service with no line naming one.

The ALB strips `/console` as it does a service's prefix (`/console/static/...` reaches the
app as `/static/...`); the page uses relative URLs only, so it works under the prefix, and
calls the services' APIs where the ALB already serves them (`/<service>/...`, the same
origin: `LONGHAUL_CONSOLE_API_BASE=/`). The console calls no AWS API: its task role holds no
permission, and its execution role only pulls the image and writes the logs.

Sign-in is Cognito's hosted UI (the authorization-code grant with PKCE) for the app client
the services verify tokens for: this stack turns it on in the platform's identity
(`Identity.enable_hosted_ui`: a prefix domain, `longhaul-<env>-<account>`, and the client's
OAuth, returning to `https://<public host>/console/`), and hands the page the hosted UI's
address and the client id (no secret: a public client). The public host is the context's
`publicHost` (the name pointing at the ALB, which its certificate covers) or else the ALB's
own DNS name.

One task, deployed rolling (a new task healthy before the old one stops) with the circuit
breaker's rollback: the console is a page and a thin relay, with no canary of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import CfnOutput, Duration, Fn, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from longhaul.console.__main__ import DEFAULT_PORT as CONSOLE_PORT
from longhaul.spec import ServiceSpec
from longhaul_deploy._utils import acknowledge, tag
from longhaul_deploy.config import CONTAINER_PORT, Target
from longhaul_deploy.image import service_image
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.service_task import (
    CONTAINER_NAME,
    HEALTH_PATH,
    SCRATCH_PATH,
    SCRATCH_VOLUME,
    acknowledge_image_pull,
    container_health_check,
)

__all__ = [
    "CONSOLE_AUTH_URL_VARIABLE",
    "CONSOLE_CLIENT_ID_VARIABLE",
    "CONSOLE_CPU",
    "CONSOLE_DOCKERFILE",
    "CONSOLE_MEMORY_MIB",
    "CONSOLE_PATH",
    "CONSOLE_PRIORITY",
    "ConsoleStack",
]

CONSOLE_DOCKERFILE = "common/console.Dockerfile"
CONSOLE_PATH = "/console"
# The convention of the platform's rules: a rule's priority is its port (the console's
# port under `make dev`, which the dev runner keeps apart from every service's).
CONSOLE_PRIORITY = CONSOLE_PORT
# Fargate's smallest size: the console serves files and relays bytes.
CONSOLE_CPU = 256
CONSOLE_MEMORY_MIB = 512
STOP_TIMEOUT = Duration.seconds(30)
# The console's sign-in settings (python -m longhaul.console reads them).
CONSOLE_AUTH_URL_VARIABLE = "LONGHAUL_CONSOLE_AUTH_URL"
CONSOLE_CLIENT_ID_VARIABLE = "LONGHAUL_CONSOLE_CLIENT_ID"


class ConsoleStack(Stack):
    """The console's image, task, service, target group and listener rule, and its logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: PlatformStack,
        target: Target,
        services: Sequence[ServiceSpec],
        buckets: Mapping[str, s3.IBucket],
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=target.environment,
            description="Longhaul web console, behind the platform ALB at /console/",
            termination_protection=target.settings.protected,
        )
        clashing = [spec.name for spec in services if spec.port == CONSOLE_PRIORITY]
        if clashing:
            raise ValueError(f"{clashing[0]}: port {CONSOLE_PRIORITY} is the console's rule")
        settings = target.settings
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        self.image = service_image(
            self, "Image", dockerfile=CONSOLE_DOCKERFILE, name=f"{construct_id} console"
        )
        self.public_host = str(
            self.node.try_get_context("publicHost")
            or platform.edge.load_balancer.load_balancer_dns_name
        )
        self.sign_in_url = f"https://{self.public_host}{CONSOLE_PATH}/"
        self.hosted_ui = platform.identity.enable_hosted_ui(
            domain_prefix=f"longhaul-{settings.name}-{platform.account}", url=self.sign_in_url
        )
        self.definition = self._task(self._environment(platform, services, buckets))
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=platform.vpc,
            description="Console tasks: the platform ALB in, anything out (S3 for media)",
            allow_all_outbound=True,
        )
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            vpc=platform.vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=HEALTH_PATH,  # answered from memory, as the services' liveness
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self.rule = elbv2.ApplicationListenerRule(
            self,
            "Rule",
            listener=platform.edge.https_listener,
            priority=CONSOLE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns([f"{CONSOLE_PATH}/*"])],
            target_groups=[self.target_group],
        )
        rule = self.rule.node.default_child
        assert isinstance(rule, elbv2.CfnListenerRule)
        # The app serves its routes at the root, like the kit's: the prefix is stripped.
        rule.transforms = [
            elbv2.CfnListenerRule.TransformProperty(
                type="url-rewrite",
                url_rewrite_config=elbv2.CfnListenerRule.RewriteConfigObjectProperty(
                    rewrites=[
                        elbv2.CfnListenerRule.RewriteConfigProperty(
                            regex=f"^{CONSOLE_PATH}/(.*)$", replace="/$1"
                        )
                    ]
                ),
            )
        ]
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=platform.cluster,
            task_definition=self.definition,
            desired_count=1,
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)
            ],
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(60),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        self.service.attach_to_application_target_group(self.target_group)
        tag(self, service="console", environment=settings.name)
        # Under the platform stack's LoadBalancerDns (or the domain pointing at it).
        CfnOutput(self, "ConsolePath", value=f"{CONSOLE_PATH}/")

    def _environment(
        self,
        platform: PlatformStack,
        services: Sequence[ServiceSpec],
        buckets: Mapping[str, s3.IBucket],
    ) -> dict[str, str]:
        """What `python -m longhaul.console` reads. No LONGHAUL_CONSOLE_DEV_TOKEN: the dev
        sign-in route does not exist here."""
        base = f"https://{platform.edge.load_balancer.load_balancer_dns_name}"
        # Every service the app deploys, each where the ALB serves it. The page calls them
        # there itself (API base "/"), so the console mounts no /api/ relay on AWS: only
        # the names reach the page.
        service_map = {spec.name: f"{base}/{spec.name}" for spec in services}
        # A presigned URL's origin, in S3's global and regional forms, of every service
        # bucket: /media relays only those URLs (their signature is their authorization;
        # the console adds none), and the player loads a rendition's segments through it.
        origins = [
            f"https://{domain}"
            for _, bucket in sorted(buckets.items())
            for domain in (bucket.bucket_domain_name, bucket.bucket_regional_domain_name)
        ]
        variables = {
            "LONGHAUL_HOST": "0.0.0.0",  # noqa: S104 - inside the task, behind its security group
            "LONGHAUL_PORT": str(CONTAINER_PORT),
            "LONGHAUL_CONSOLE_API_BASE": "/",
            "LONGHAUL_CONSOLE_SERVICES": self.to_json_string(service_map),
            # The hosted UI and the public client the page signs in with (no secret).
            CONSOLE_AUTH_URL_VARIABLE: self.hosted_ui.base_url(),
            CONSOLE_CLIENT_ID_VARIABLE: platform.identity.client.user_pool_client_id,
            "TMPDIR": SCRATCH_PATH,
        }
        if origins:
            variables["LONGHAUL_CONSOLE_MEDIA_ORIGINS"] = Fn.join(",", origins)
        return variables

    def _task(self, environment: dict[str, str]) -> ecs.FargateTaskDefinition:
        """The console's task: hardened as a service's (read-only root, no capability, an
        init process, writes only to /scratch), with no sidecar: it sends no trace."""
        definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=CONSOLE_CPU,
            memory_limit_mib=CONSOLE_MEMORY_MIB,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        linux = ecs.LinuxParameters(self, "Linux", init_process_enabled=True)
        linux.drop_capabilities(ecs.Capability.ALL)
        container = definition.add_container(
            CONTAINER_NAME,
            image=ecs.ContainerImage.from_docker_image_asset(self.image),
            environment=environment,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, name="http")],
            health_check=container_health_check(),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="console",
                log_group=self.log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(4),
            ),
            linux_parameters=linux,
            readonly_root_filesystem=True,
            stop_timeout=STOP_TIMEOUT,
        )
        definition.add_volume(name=SCRATCH_VOLUME)
        container.add_mount_points(
            ecs.MountPoint(
                source_volume=SCRATCH_VOLUME, container_path=SCRATCH_PATH, read_only=False
            )
        )
        acknowledge_image_pull(definition)
        acknowledge(
            definition,
            "AwsSolutions-ECS2",
            "The environment carries the services' names and public paths, the API base, "
            "the media buckets' origins, the hosted UI's address and the public app "
            "client's id: no secret, and the console holds none.",
        )
        return definition
