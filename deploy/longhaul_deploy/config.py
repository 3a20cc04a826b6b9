"""Environment settings and the app's context: dev and prod differ only in sizes, retention
and protection; everything else comes from the service specs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_cdk import Duration, Environment, RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

from longhaul.spec import GpuWorkerSpec, ServiceSpec

__all__ = [
    "CONTAINER_PORT",
    "ENVIRONMENTS",
    "PROJECT",
    "EnvSettings",
    "Target",
    "settings_for",
    "target_of",
]

PROJECT = "longhaul"
# Every role of every service listens here inside its task (Dockerfile.base's EXPOSE).
CONTAINER_PORT = 8000
# A certificate ARN that cannot exist: synthesis works without one, deployment refuses it.
EXAMPLE_CERTIFICATE_ARN = (
    "arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000"
)
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True)
class EnvSettings:
    """What one environment sizes, keeps and protects."""

    name: str
    nat_gateways: int
    api_min_cap: int | None
    api_max_cap: int | None
    worker_max_cap: int | None
    log_retention: logs.RetentionDays
    archive_retention: Duration
    access_log_days: int
    protected: bool

    @property
    def removal_policy(self) -> RemovalPolicy:
        """Stateful resources outlive their stack where they are protected."""
        return RemovalPolicy.RETAIN if self.protected else RemovalPolicy.DESTROY

    def api_bounds(self, spec: ServiceSpec) -> tuple[int, int]:
        """The API's task count bounds: the spec's, capped in small environments."""
        low = min(spec.scaling.api_min, self.api_min_cap or spec.scaling.api_min)
        high = min(spec.scaling.api_max, self.api_max_cap or spec.scaling.api_max)
        return low, max(low, high)

    def worker_bounds(self, spec: ServiceSpec) -> tuple[int, int]:
        """The worker's task count bounds: the spec's, capped in small environments."""
        high = min(spec.scaling.worker_max, self.worker_max_cap or spec.scaling.worker_max)
        return min(spec.scaling.worker_min, high), high

    def gpu_worker_bounds(self, gpu: GpuWorkerSpec) -> tuple[int, int]:
        """The GPU worker's task count bounds: the spec's, capped as the worker's are."""
        high = min(gpu.max_tasks, self.worker_max_cap or gpu.max_tasks)
        return min(gpu.min_tasks, high), high


ENVIRONMENTS = {
    "dev": EnvSettings(
        name="dev",
        nat_gateways=1,
        api_min_cap=1,
        api_max_cap=2,
        worker_max_cap=4,
        log_retention=logs.RetentionDays.TWO_WEEKS,
        archive_retention=Duration.days(7),
        access_log_days=30,
        protected=False,
    ),
    "prod": EnvSettings(
        name="prod",
        nat_gateways=2,
        api_min_cap=None,
        api_max_cap=None,
        worker_max_cap=None,
        log_retention=logs.RetentionDays.THREE_MONTHS,
        archive_retention=Duration.days(90),
        access_log_days=365,
        protected=True,
    ),
}


def settings_for(name: str) -> EnvSettings:
    """The settings of environment `name`, refusing names the platform does not know."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        known = ", ".join(sorted(ENVIRONMENTS))
        raise ValueError(f"unknown environment {name!r} (context 'env'); known: {known}") from None


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where and what the app deploys, read once from the CDK context."""

    settings: EnvSettings
    environment: Environment
    certificate_arn: str
    alarm_email: str | None

    @property
    def has_certificate(self) -> bool:
        """Whether a real certificate was given (synthesis works without one)."""
        return self.certificate_arn != EXAMPLE_CERTIFICATE_ARN


def target_of(scope: Construct) -> Target:
    """Read `env`, `certificateArn`, `alarmEmail` and `region` from the context.

    The account comes from the CDK CLI (`CDK_DEFAULT_ACCOUNT`); offline synthesis leaves it
    unresolved, so nothing is looked up.
    """

    def context(key: str) -> str | None:
        value = scope.node.try_get_context(key)
        return str(value) if value not in (None, "") else None

    region = context("region") or os.environ.get("CDK_DEFAULT_REGION") or DEFAULT_REGION
    return Target(
        settings=settings_for(context("env") or "dev"),
        environment=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=region),
        certificate_arn=context("certificateArn") or EXAMPLE_CERTIFICATE_ARN,
        alarm_email=context("alarmEmail"),
    )
