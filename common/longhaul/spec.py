"""The service spec: a typed declaration of what one service needs from AWS.

The local provisioner creates exactly this on moto and the CDK app creates exactly this on
AWS; no second list of resources exists anywhere.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BucketSpec",
    "ComputeSpec",
    "GsiSpec",
    "QueueSpec",
    "ResourceNames",
    "RuleSpec",
    "ScalingSpec",
    "SecretSpec",
    "ServiceSpec",
    "TableSpec",
]

_SLUG = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QueueSpec(_Spec):
    """The service's work queue and its dead-letter queue."""

    visibility_timeout_s: int = Field(default=60, ge=5, le=43_200)
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    retention_s: int = Field(default=4 * 24 * 3600, ge=60, le=14 * 24 * 3600)
    dlq_retention_s: int = Field(default=14 * 24 * 3600, ge=60, le=14 * 24 * 3600)


class RuleSpec(_Spec):
    """An EventBridge rule that routes matching events to the service's queue.

    `bus` is `platform` for the services' own facts, `default` for AWS service events such
    as S3 "Object Created", which AWS only ever puts on the default bus.
    """

    name: str = Field(pattern=_SLUG)
    pattern: dict[str, Any]
    bus: Literal["platform", "default"] = "platform"
    own_bucket: bool = Field(
        default=False,
        description="match only S3 events of the service's own bucket (its name is added "
        "to the pattern where the environment is known)",
    )

    def pattern_for(self, bucket: str | None) -> dict[str, Any]:
        """The event pattern in an environment where the service's bucket is `bucket`."""
        if not self.own_bucket:
            return self.pattern
        if bucket is None:
            raise ValueError(f"rule {self.name!r} matches the service's bucket, but it has none")
        detail = dict(self.pattern.get("detail", {}))
        detail["bucket"] = {"name": [bucket]}
        return {**self.pattern, "detail": detail}

    @field_validator("pattern")
    @classmethod
    def _pattern_not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("an event pattern must match on at least one field")
        return value


class GsiSpec(_Spec):
    """A global secondary index (string keys). It holds all attributes unless `include`
    names the few it needs: every write that changes a projected attribute is written to
    the index too, so a frequently rewritten attribute (a heartbeat) belongs outside it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")
    pk: str
    sk: str | None = None
    include: tuple[str, ...] | None = None  # None: ALL; () : KEYS_ONLY; else INCLUDE these

    @property
    def projection(self) -> dict[str, Any]:
        """The index's DynamoDB Projection."""
        if self.include is None:
            return {"ProjectionType": "ALL"}
        if not self.include:
            return {"ProjectionType": "KEYS_ONLY"}
        return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.include)}


class TableSpec(_Spec):
    """The service's single DynamoDB table (string keys)."""

    pk: str = "PK"
    sk: str = "SK"
    gsis: tuple[GsiSpec, ...] = ()
    ttl_attribute: str | None = None


class BucketSpec(_Spec):
    """The service's S3 bucket."""

    eventbridge_notifications: bool = False
    expire_prefixes: dict[str, int] = Field(
        default_factory=dict, description="key prefix -> days after which objects expire"
    )


class SecretSpec(_Spec):
    """A secret the service reads from Secrets Manager at start."""

    name: str = Field(pattern=_SLUG)
    description: str = ""


class ComputeSpec(_Spec):
    """Fargate task size of one role.

    The root filesystem is read-only on AWS; what the role writes goes to the task's scratch
    volume (`$TMPDIR`), which shares the task's ephemeral storage with the image.
    """

    cpu: int = 512
    memory_mib: int = 1024
    ephemeral_storage_gib: int | None = Field(
        default=None,
        ge=21,
        le=200,
        description="the task's ephemeral storage (image and scratch) in GiB, 21 to 200 on "
        "Fargate; None keeps Fargate's default of 20 GiB",
    )


class ScalingSpec(_Spec):
    """Worker scaling on backlog per task, and the API's bounds."""

    worker_min: int = Field(default=0, ge=0)
    worker_max: int = Field(default=4, ge=1)
    backlog_per_task: int = Field(default=2, ge=1)
    api_min: int = Field(default=2, ge=1)
    api_max: int = Field(default=6, ge=1)
    spot: bool = False

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ScalingSpec:
        if self.worker_min > self.worker_max or self.api_min > self.api_max:
            raise ValueError("min must not exceed max")
        return self


class ServiceSpec(_Spec):
    """Everything one service declares about itself."""

    name: str = Field(pattern=_SLUG)
    package: str = Field(
        pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$", description="import name of the service"
    )
    port: int = Field(ge=1024, le=65_000, description="local API port; the worker uses port + 1")
    queue: QueueSpec | None = None
    rules: tuple[RuleSpec, ...] = ()
    table: TableSpec | None = None
    bucket: BucketSpec | None = None
    secrets: tuple[SecretSpec, ...] = ()
    api: ComputeSpec = ComputeSpec()
    worker: ComputeSpec = ComputeSpec(cpu=1024, memory_mib=2048)
    scaling: ScalingSpec = ScalingSpec()

    @model_validator(mode="after")
    def _rules_need_a_queue(self) -> ServiceSpec:
        if self.rules and self.queue is None:
            raise ValueError(f"service {self.name!r} declares rules but no queue to target")
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"service {self.name!r} declares a rule name twice")
        if any(rule.own_bucket for rule in self.rules) and self.bucket is None:
            raise ValueError(f"service {self.name!r} has a rule on its own bucket but no bucket")
        secrets = [secret.name for secret in self.secrets]
        if len(secrets) != len(set(secrets)):
            raise ValueError(f"service {self.name!r} declares a secret twice")
        return self

    @property
    def worker_port(self) -> int:
        """The local port of the worker role's health endpoints."""
        return self.port + 1

    @property
    def env_prefix(self) -> str:
        """The environment prefix of the service's own settings (`MEDIA_`)."""
        return re.sub(r"[^A-Z0-9]", "_", self.name.upper()) + "_"


class ResourceNames(BaseModel):
    """Physical names of a service's resources in one environment.

    The local provisioner uses these names; on AWS the CDK app passes its own names to the
    tasks through the same settings, so a service never derives a name itself.
    """

    model_config = ConfigDict(frozen=True)

    bus: str
    queue: str | None
    dlq: str | None
    table: str | None
    bucket: str | None
    rules: dict[str, str]
    secrets: dict[str, str]

    @classmethod
    def of(cls, spec: ServiceSpec, env: str) -> ResourceNames:
        """Derive the names of `spec`'s resources in environment `env`."""
        base = f"longhaul-{env}-{spec.name}"
        return cls(
            bus=platform_bus_name(env),
            queue=base if spec.queue else None,
            dlq=f"{base}-dlq" if spec.queue else None,
            table=base if spec.table else None,
            bucket=base if spec.bucket else None,
            rules={rule.name: f"{base}-{rule.name}" for rule in spec.rules},
            secrets={s.name: f"longhaul/{env}/{spec.name}/{s.name}" for s in spec.secrets},
        )


def platform_bus_name(env: str) -> str:
    """The name of the platform's EventBridge bus in environment `env`."""
    return f"longhaul-{env}"
