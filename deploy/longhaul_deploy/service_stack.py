"""One service's stack, built from its spec: its key, queue, rules, table, bucket, lake and
secrets, the API and worker services (and a GPU worker where the spec has one), the grants
between them, alarms and a dashboard."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from longhaul.spec import ComputeSpec, GpuWorkerSpec, ServiceSpec
from longhaul_deploy import access
from longhaul_deploy._utils import tag
from longhaul_deploy.config import CONTAINER_PORT, Target
from longhaul_deploy.event_rules import EventRules
from longhaul_deploy.flags import ServiceFlags
from longhaul_deploy.gpu_worker import DEVICE_VARIABLE, GpuWorker, gpu_cluster_name
from longhaul_deploy.image import service_image
from longhaul_deploy.job_queue import JobQueue
from longhaul_deploy.lake import LakeTable
from longhaul_deploy.observability import JobAlarms, QueueAlarms, ServiceDashboard, notify
from longhaul_deploy.platform import ACCESS_LOG_PREFIX, PlatformStack
from longhaul_deploy.service_api import ServiceApi
from longhaul_deploy.service_secrets import ServiceSecrets
from longhaul_deploy.service_task import Role, ServiceTask
from longhaul_deploy.service_worker import ServiceWorker
from longhaul_deploy.storage import ServiceBucket, ServiceTable

__all__ = ["API_STOP_TIMEOUT", "SHUTDOWN_MARGIN", "WORKER_STOP_TIMEOUT", "ServiceStack"]

# Fargate's longest stop timeout: SIGTERM, then this long before SIGKILL. A worker lets its
# jobs checkpoint and releases their messages inside it (and Spot's two-minute notice).
WORKER_STOP_TIMEOUT = Duration.seconds(120)
# The kit's shutdown deadline leaves this much of the stop timeout for releasing messages.
SHUTDOWN_MARGIN = Duration.seconds(20)
# The ALB has drained an API task before ECS stops it; what is left is finishing requests.
API_STOP_TIMEOUT = Duration.seconds(30)


class ServiceStack(Stack):
    """Everything one service declares in its spec, and the two roles that run it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: ServiceSpec,
        platform: PlatformStack,
        target: Target,
        dockerfile: str | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=target.environment,
            description=f"Longhaul service {spec.name}, from its spec",
            termination_protection=target.settings.protected,
        )
        self.spec = spec
        self.platform = platform
        self.target = target
        self._data()
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=target.settings.log_retention,
            removal_policy=target.settings.removal_policy,
        )
        self.image = ecs.ContainerImage.from_docker_image_asset(
            service_image(
                self,
                "Image",
                dockerfile=dockerfile or f"services/{spec.name}/Dockerfile",
                name=construct_id,
            )
        )
        self._roles()
        tag(self, service=spec.name, environment=target.settings.name)
        self._outputs()

    def _data(self) -> None:
        """The key, and the queue, table, bucket, secrets and rules the spec declares."""
        spec, settings = self.spec, self.target.settings
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the {spec.name} service's queue, table, bucket and secrets",
            enable_key_rotation=True,
            removal_policy=settings.removal_policy,
        )
        self.queue = (
            JobQueue(self, "Queue", spec=spec.queue, key=self.key, settings=settings)
            if spec.queue
            else None
        )
        self.table = (
            ServiceTable(self, "Table", spec=spec.table, key=self.key, settings=settings).table
            if spec.table
            else None
        )
        self.bucket = (
            ServiceBucket(
                self,
                "Bucket",
                spec=spec.bucket,
                key=self.key,
                settings=settings,
                log_bucket=self.platform.log_bucket,
                log_prefix=f"{ACCESS_LOG_PREFIX}/{spec.name}/",
            ).bucket
            if spec.bucket
            else None
        )
        self.secrets = ServiceSecrets(
            self, "Secrets", specs=spec.secrets, key=self.key, settings=settings
        ).secrets
        self.flags = ServiceFlags(self, "Flags", env=settings.name, service=spec.name)
        self.lake = (
            LakeTable(
                self, "Lake", spec=spec.lake, env=settings.name, bucket=self.bucket, key=self.key
            )
            if spec.lake is not None and self.bucket is not None
            else None
        )
        if spec.rules and self.queue is not None:
            EventRules(
                self,
                "Rules",
                rules=spec.rules,
                platform_bus=self.platform.bus,
                queue=self.queue.queue,
                dead_letter_queue=self.queue.dead_letter_queue,
                key=self.key,
                bucket_name=self.bucket.bucket_name if self.bucket else None,
            )

    def _roles(self) -> None:
        """The API (always) and the worker (when there is a queue), their alarms, a dashboard."""
        spec, platform, settings = self.spec, self.platform, self.target.settings
        self.api = ServiceApi(
            self,
            "Api",
            spec=spec,
            platform=platform,
            task=self._task("api", API_STOP_TIMEOUT),
            bounds=settings.api_bounds(spec),
        )
        alarms = list(self.api.alarms)
        self.worker: ServiceWorker | None = None
        self.gpu_worker: GpuWorker | None = None
        if self.queue is not None:
            self.worker = ServiceWorker(
                self,
                "Worker",
                spec=spec,
                platform=platform,
                task=self._task("worker", WORKER_STOP_TIMEOUT),
                queue=self.queue.queue,
                bounds=settings.worker_bounds(spec),
            )
            self.gpu_worker = self._gpu_worker(spec.gpu_worker) if spec.gpu_worker else None
            alarms += QueueAlarms(
                self,
                "QueueAlarms",
                queue=self.queue.queue,
                dead_letter_queue=self.queue.dead_letter_queue,
            ).alarms
            alarms += JobAlarms(self, "JobAlarms", service=spec.name).alarms
        notify(platform.alarm_topic, alarms)
        ServiceDashboard(
            self,
            "Dashboard",
            name=f"longhaul {settings.name} {spec.name}",
            cluster_name=platform.cluster_name,
            target_groups=self.api.target_groups,
            api=self.api.service,
            worker=self.worker.service if self.worker else None,
            queue=self.queue.queue if self.queue else None,
            gpu_worker=(
                (self.gpu_worker.service, self.gpu_worker.cluster_name) if self.gpu_worker else None
            ),
            dead_letter_queue=self.queue.dead_letter_queue if self.queue else None,
            backlog_per_task=self.worker.backlog_per_task if self.worker else None,
            alarms=alarms,
            jobs_of=spec.name if self.queue is not None else None,
        )

    def _gpu_worker(self, gpu: GpuWorkerSpec) -> GpuWorker:
        """The worker's image and command on EC2 GPU instances, on the same queue."""
        assert self.queue is not None
        cluster_name = gpu_cluster_name(self.target.settings.name, self.spec.name)
        return GpuWorker(
            self,
            "GpuWorker",
            service_name=self.spec.name,
            gpu=gpu,
            platform=self.platform,
            task=self._task(
                "worker",
                WORKER_STOP_TIMEOUT,
                construct_id="GpuWorkerTask",
                compute=gpu,
                cluster_name=cluster_name,
                extra_environment=DEVICE_VARIABLE,
            ),
            queue=self.queue.queue,
            bounds=self.target.settings.gpu_worker_bounds(gpu),
            cluster_name=cluster_name,
        )

    def _task(
        self,
        role: Role,
        stop_timeout: Duration,
        *,
        construct_id: str | None = None,
        compute: ComputeSpec | GpuWorkerSpec | None = None,
        cluster_name: str | None = None,
        extra_environment: dict[str, str] | None = None,
    ) -> ServiceTask:
        """One role's task definition, its task role granted exactly what the role needs
        (in `cluster_name`, the platform's cluster unless given)."""
        task = ServiceTask(
            self,
            construct_id or f"{role.capitalize()}Task",
            role=role,
            compute=compute or (self.spec.api if role == "api" else self.spec.worker),
            image=self.image,
            environment={**self._environment(role), **(extra_environment or {})},
            # Also injected as task-definition secrets (the execution role reads them):
            # the kit itself reads the values through LONGHAUL_SECRET_IDS, see docs/deploy.md.
            secrets={
                f"LONGHAUL_SECRET_{name.upper().replace('-', '_')}": (
                    ecs.Secret.from_secrets_manager(secret)
                )
                for name, secret in self.secrets.items()
            },
            log_group=self.log_group,
            stop_timeout=stop_timeout,
        )
        access.grant(
            task.definition.task_role,
            role=role,
            resources=access.Resources(
                key=self.key,
                bus=self.platform.bus,
                cluster_name=cluster_name or self.platform.cluster_name,
                queue=self.queue.queue if self.queue else None,
                dead_letter_queue=self.queue.dead_letter_queue if self.queue else None,
                table=self.table,
                index_names=tuple(g.name for g in self.spec.table.gsis) if self.spec.table else (),
                bucket=self.bucket,
                secrets=tuple(self.secrets.values()),
            ),
        )
        self.flags.grant_read(task.definition.task_role)
        return task

    def _environment(self, role: Role) -> dict[str, str]:
        """What the kit reads (longhaul.config.KitSettings), with the names CDK gave."""
        platform, target = self.platform, self.target
        variables = {
            "LONGHAUL_ENV": target.settings.name,
            "AWS_REGION": self.region,
            "LONGHAUL_BUS_NAME": platform.bus.event_bus_name,
            "LONGHAUL_HOST": "0.0.0.0",  # noqa: S104 - inside the task, behind its security group
            "LONGHAUL_PORT": str(CONTAINER_PORT),
            "OTEL_SERVICE_NAME": f"longhaul-{self.spec.name}",
            "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={target.settings.name}",
            # metrics leave the task as EMF lines in its logs (docs/operations.md)
            "LONGHAUL_METRICS_EMF": "true",
            # A reference: the tasks depend on the parameter (docs/flags.md).
            "LONGHAUL_FLAGS_PARAMETER": self.flags.parameter.parameter_name,
        }
        if self.queue is not None:
            variables["LONGHAUL_QUEUE_NAME"] = self.queue.queue.queue_name
        if self.table is not None:
            variables["LONGHAUL_TABLE_NAME"] = self.table.table_name
        if self.bucket is not None:
            variables["LONGHAUL_BUCKET_NAME"] = self.bucket.bucket_name
        if self.secrets:
            # References only: the kit reads the values itself at start and redacts them.
            variables["LONGHAUL_SECRET_IDS"] = self.to_json_string(
                {name: secret.secret_arn for name, secret in sorted(self.secrets.items())}
            )
        if role == "api":
            variables["LONGHAUL_AUTH_ISSUER"] = platform.identity.issuer
            variables["LONGHAUL_AUTH_CLIENT_ID"] = platform.identity.client.user_pool_client_id
        else:
            stop = WORKER_STOP_TIMEOUT.to_seconds() - SHUTDOWN_MARGIN.to_seconds()
            variables["LONGHAUL_SHUTDOWN_DEADLINE_S"] = str(stop)
        return variables

    def _outputs(self) -> None:
        # Under the platform stack's LoadBalancerDns (or the domain pointing at it).
        CfnOutput(self, "ApiPath", value=f"{self.api.path}/")
        if self.queue is not None:
            CfnOutput(self, "QueueUrl", value=self.queue.queue.queue_url)
            CfnOutput(self, "DeadLetterQueueUrl", value=self.queue.dead_letter_queue.queue_url)
        if self.table is not None:
            CfnOutput(self, "TableName", value=self.table.table_name)
        if self.bucket is not None:
            CfnOutput(self, "BucketName", value=self.bucket.bucket_name)
        if self.lake is not None:
            CfnOutput(self, "LakeDatabase", value=self.lake.database_name)
            CfnOutput(self, "LakeTable", value=self.lake.table_name)
            CfnOutput(self, "LakeReadersPolicyArn", value=self.lake.readers.managed_policy_arn)
        if self.worker is not None and self.gpu_worker is not None:
            CfnOutput(self, "GpuClusterName", value=self.gpu_worker.cluster_name)
        if self.secrets:
            CfnOutput(
                self,
                "SecretArns",
                value=self.to_json_string(
                    {name: secret.secret_arn for name, secret in sorted(self.secrets.items())}
                ),
            )
