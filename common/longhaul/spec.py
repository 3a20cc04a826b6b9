"""The service spec: a typed declaration of what one service needs from AWS.

The local provisioner creates exactly this on moto and the CDK app creates exactly this on
AWS; no second list of resources exists anywhere.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FARGATE_MEMORY_MIB",
    "GPU_INSTANCES",
    "BucketSpec",
    "ColumnSpec",
    "ComputeSpec",
    "DateProjection",
    "GpuInstance",
    "GpuWorkerSpec",
    "GsiSpec",
    "InjectedProjection",
    "IntegerProjection",
    "LakeSpec",
    "PartitionKeySpec",
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


# Fargate's task sizes on Linux: CPU units -> the memory (MiB) each allows (AWS's "Task CPU
# and memory" table for Fargate: 0.25 vCPU up to 16 vCPU / 120 GB).
FARGATE_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


class ComputeSpec(_Spec):
    """Fargate task size of one role: one of Fargate's CPU and memory combinations
    (`FARGATE_MEMORY_MIB`), up to 16 vCPU and 120 GB.

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

    @model_validator(mode="after")
    def _a_fargate_size(self) -> ComputeSpec:
        if self.cpu not in FARGATE_MEMORY_MIB:
            raise ValueError(
                f"cpu {self.cpu} is not a Fargate size; one of {sorted(FARGATE_MEMORY_MIB)}"
            )
        allowed = FARGATE_MEMORY_MIB[self.cpu]
        if self.memory_mib not in allowed:
            step = allowed[-1] - allowed[-2]
            raise ValueError(
                f"Fargate gives cpu {self.cpu} from {allowed[0]} to {allowed[-1]} MiB of memory "
                f"in steps of {step}, not {self.memory_mib}"
            )
        return self


class GpuInstance(NamedTuple):
    """What one EC2 GPU instance type has: vCPUs, memory (MiB) and GPUs."""

    vcpus: int
    memory_mib: int
    gpus: int


# The GPU instance types a GPU worker may run on (NVIDIA, x86_64; EC2's instance type pages).
GPU_INSTANCES: dict[str, GpuInstance] = {
    "g4dn.xlarge": GpuInstance(4, 16_384, 1),
    "g4dn.2xlarge": GpuInstance(8, 32_768, 1),
    "g5.xlarge": GpuInstance(4, 16_384, 1),
    "g5.2xlarge": GpuInstance(8, 32_768, 1),
    "g5.4xlarge": GpuInstance(16, 65_536, 1),
    "g5.12xlarge": GpuInstance(48, 196_608, 4),
    "g6.xlarge": GpuInstance(4, 16_384, 1),
    "g6.2xlarge": GpuInstance(8, 32_768, 1),
    "g6.4xlarge": GpuInstance(16, 65_536, 1),
    "g6.12xlarge": GpuInstance(48, 196_608, 4),
}
# The ECS agent registers what the OS reports, below the instance's nominal memory; a task
# asks for at most this share of it.
GPU_TASK_MEMORY_SHARE = 0.9


class GpuWorkerSpec(_Spec):
    """An optional second worker service on EC2 GPU instances (an Auto Scaling group behind
    an ECS capacity provider, from zero), running the worker's image and command with the
    task's GPU requirement and `LONGHAUL_DEVICE=cuda`.

    It consumes the service's one queue, scaled on its backlog like the worker: the runtime
    routes no job to a queue of its own (docs/deploy.md, "The GPU worker").
    """

    instance_type: str = "g6.xlarge"
    gpus: int = Field(default=1, ge=1, description="GPUs per task")
    cpu: int = Field(default=3072, ge=256, description="CPU units per task (1024 a vCPU)")
    memory_mib: int = Field(default=12_288, ge=512)
    volume_gib: int = Field(
        default=100, ge=30, le=16_384, description="each instance's root volume: images, scratch"
    )
    min_tasks: int = Field(default=0, ge=0)
    max_tasks: int = Field(default=2, ge=1)
    backlog_per_task: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _fits_its_instance(self) -> GpuWorkerSpec:
        instance = GPU_INSTANCES.get(self.instance_type)
        if instance is None:
            raise ValueError(
                f"instance type {self.instance_type!r} is not a known GPU type; one of "
                f"{sorted(GPU_INSTANCES)}"
            )
        if self.gpus > instance.gpus:
            raise ValueError(f"{self.instance_type} has {instance.gpus} GPU(s), not {self.gpus}")
        if self.cpu > instance.vcpus * 1024:
            raise ValueError(f"{self.instance_type} has {instance.vcpus * 1024} CPU units")
        if self.memory_mib > int(instance.memory_mib * GPU_TASK_MEMORY_SHARE):
            raise ValueError(
                f"{self.instance_type} registers less than its {instance.memory_mib} MiB; a "
                f"task may ask for at most {int(instance.memory_mib * GPU_TASK_MEMORY_SHARE)}"
            )
        if self.min_tasks > self.max_tasks:
            raise ValueError("min_tasks must not exceed max_tasks")
        return self

    @property
    def tasks_per_instance(self) -> int:
        """How many of these tasks one instance holds (by GPUs, CPU and memory)."""
        instance = GPU_INSTANCES[self.instance_type]
        return min(
            instance.gpus // self.gpus,
            instance.vcpus * 1024 // self.cpu,
            int(instance.memory_mib * GPU_TASK_MEMORY_SHARE) // self.memory_mib,
        )


_GLUE_NAME = r"^[a-z_][a-z0-9_]{0,127}$"


class ColumnSpec(_Spec):
    """One column of a lake table (a Hive type: string, bigint, double, boolean, timestamp,
    date)."""

    name: str = Field(pattern=_GLUE_NAME)
    type: Literal["string", "bigint", "int", "double", "boolean", "timestamp", "date"]


class InjectedProjection(_Spec):
    """Partition projection of a value every query gives (`WHERE owner = '...'`)."""

    kind: Literal["injected"] = "injected"

    def parameters(self, key: str) -> dict[str, str]:
        """The Glue table parameters that project `key`."""
        return {f"projection.{key}.type": "injected"}


class DateProjection(_Spec):
    """Partition projection of dates from `start` to `end` (`NOW`: the query's time)."""

    kind: Literal["date"] = "date"
    format: str = "yyyy-MM-dd"
    start: str
    end: str = "NOW"
    interval: int = Field(default=1, ge=1)
    unit: Literal["YEARS", "MONTHS", "WEEKS", "DAYS", "HOURS", "MINUTES", "SECONDS"] = "DAYS"

    def parameters(self, key: str) -> dict[str, str]:
        """The Glue table parameters that project `key`."""
        return {
            f"projection.{key}.type": "date",
            f"projection.{key}.range": f"{self.start},{self.end}",
            f"projection.{key}.format": self.format,
            f"projection.{key}.interval": str(self.interval),
            f"projection.{key}.interval.unit": self.unit,
        }


class IntegerProjection(_Spec):
    """Partition projection of the integers `low` to `high`, zero-padded to `digits`."""

    kind: Literal["integer"] = "integer"
    low: int
    high: int
    digits: int | None = Field(default=None, ge=1)

    def parameters(self, key: str) -> dict[str, str]:
        """The Glue table parameters that project `key`."""
        found = {
            f"projection.{key}.type": "integer",
            f"projection.{key}.range": f"{self.low},{self.high}",
        }
        if self.digits is not None:
            found[f"projection.{key}.digits"] = str(self.digits)
        return found


class PartitionKeySpec(_Spec):
    """A partition key of a lake table, a Hive-style path segment (`<name>=<value>/`), and
    how Athena projects its values."""

    name: str = Field(pattern=_GLUE_NAME)
    type: Literal["string"] = "string"
    projection: Annotated[
        InjectedProjection | DateProjection | IntegerProjection, Field(discriminator="kind")
    ]


class LakeSpec(_Spec):
    """A table of Parquet files under `prefix` of the service's bucket, partitioned in Hive
    style (`<prefix><key>=<value>/.../`), declared in the Glue catalog for Athena with
    partition projection (no partition is ever added or crawled)."""

    database: str = Field(pattern=_GLUE_NAME, description="the database, under longhaul_<env>_")
    table: str = Field(pattern=_GLUE_NAME)
    prefix: str = Field(pattern=r"^[a-z0-9][a-z0-9/_-]*/$")
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)
    partition_keys: tuple[PartitionKeySpec, ...] = ()

    @model_validator(mode="after")
    def _names_once(self) -> LakeSpec:
        names = [c.name for c in self.columns] + [k.name for k in self.partition_keys]
        if len(names) != len(set(names)):
            raise ValueError("a lake column or partition key is named twice")
        return self

    def location(self, bucket: str) -> str:
        """The table's S3 location in `bucket`."""
        return f"s3://{bucket}/{self.prefix}"

    def location_template(self, bucket: str) -> str:
        """Where a projected partition's files are (`storage.location.template`)."""
        keys = "".join(f"{k.name}=${{{k.name}}}/" for k in self.partition_keys)
        return f"{self.location(bucket)}{keys}"

    def projection_parameters(self) -> dict[str, str]:
        """Every partition key's projection, as Glue table parameters (without the location
        template, which names the bucket)."""
        found = {"projection.enabled": "true"} if self.partition_keys else {}
        for key in self.partition_keys:
            found |= key.projection.parameters(key.name)
        return found


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
    gpu_worker: GpuWorkerSpec | None = Field(
        default=None, description="a second worker on EC2 GPU instances, on the same queue"
    )
    lake: LakeSpec | None = Field(
        default=None, description="a Glue table over Parquet files in the service's bucket"
    )

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
        if self.gpu_worker is not None and self.queue is None:
            raise ValueError(f"service {self.name!r} declares a GPU worker but no queue")
        if self.lake is not None and self.bucket is None:
            raise ValueError(f"service {self.name!r} declares a lake but no bucket")
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
