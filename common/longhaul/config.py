"""Settings: one typed object per service, read from the environment only.

`KitSettings` holds what every service shares (`LONGHAUL_*` and the standard `AWS_*`
variables); a service subclasses it with its own prefix (`MEDIA_*`). A missing, invalid or
placeholder value fails at start with a message that names the variable.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from longhaul.spec import ServiceSpec

if TYPE_CHECKING:
    from longhaul.quotas.types import Quotas

__all__ = ["KitSettings", "Role", "SettingsError", "load_settings"]

Role = Literal["api", "worker", "all"]

_PLACEHOLDER = re.compile(r"^(changeme|change-me|todo|tbd|xxx+|placeholder|<.*>|\$\{.*\})$", re.I)

S = TypeVar("S", bound="KitSettings")


class SettingsError(RuntimeError):
    """The environment does not describe a runnable service; the message names the variables."""


def _kit(name: str, *more: str) -> Any:
    """An explicit alias, so a service's own prefix never renames the shared variables."""
    return AliasChoices(name, *more) if more else name


class KitSettings(BaseSettings):
    """What every Longhaul service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LONGHAUL_", extra="ignore", frozen=True, populate_by_name=True
    )

    env: str = Field(default="local", pattern=r"^[a-z][a-z0-9-]{0,15}$", alias=_kit("LONGHAUL_ENV"))
    region: str = Field(
        default="us-east-1", validation_alias=_kit("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    aws_endpoint_url: str | None = Field(default=None, validation_alias=_kit("AWS_ENDPOINT_URL"))
    bus_name: str = Field(validation_alias=_kit("LONGHAUL_BUS_NAME"), min_length=1)
    queue_name: str | None = Field(default=None, validation_alias=_kit("LONGHAUL_QUEUE_NAME"))
    table_name: str | None = Field(default=None, validation_alias=_kit("LONGHAUL_TABLE_NAME"))
    bucket_name: str | None = Field(default=None, validation_alias=_kit("LONGHAUL_BUCKET_NAME"))
    secret_ids: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_kit("LONGHAUL_SECRET_IDS"),
        description="JSON object: declared secret name -> Secrets Manager name or ARN",
    )
    auth_issuer: str | None = Field(default=None, validation_alias=_kit("LONGHAUL_AUTH_ISSUER"))
    auth_client_id: str | None = Field(
        default=None, validation_alias=_kit("LONGHAUL_AUTH_CLIENT_ID")
    )
    auth_jwks_url: str | None = Field(default=None, validation_alias=_kit("LONGHAUL_AUTH_JWKS_URL"))
    flags_parameter: str | None = Field(
        default=None,
        validation_alias=_kit("LONGHAUL_FLAGS_PARAMETER"),
        description="the SSM parameter of the service's feature flags; none: the defaults",
    )
    flags_ttl_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        validation_alias=_kit("LONGHAUL_FLAGS_TTL_S"),
        description="how long flags read from the parameter are used before it is read again",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_kit("LONGHAUL_LOG_LEVEL")
    )
    metrics_emf: bool = Field(
        default=False,
        validation_alias=_kit("LONGHAUL_METRICS_EMF"),
        description="export the metrics as CloudWatch EMF lines on stdout every minute "
        "(set by the CDK app; docs/operations.md 'Telemetry on AWS')",
    )
    host: str = Field(default="127.0.0.1", validation_alias=_kit("LONGHAUL_HOST"))
    port: int | None = Field(default=None, ge=1, le=65_535, validation_alias=_kit("LONGHAUL_PORT"))
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias=_kit("LONGHAUL_MAX_BODY_BYTES")
    )
    poll_wait_s: int = Field(default=20, ge=0, le=20, validation_alias=_kit("LONGHAUL_POLL_WAIT_S"))
    consumer_concurrency: int = Field(
        default=2, ge=1, le=64, validation_alias=_kit("LONGHAUL_CONSUMER_CONCURRENCY")
    )
    job_concurrency: int = Field(
        default=2, ge=1, le=256, validation_alias=_kit("LONGHAUL_JOB_CONCURRENCY")
    )
    shutdown_deadline_s: float = Field(
        default=100.0, gt=0, le=3600, validation_alias=_kit("LONGHAUL_SHUTDOWN_DEADLINE_S")
    )
    visibility_timeout_s: int | None = Field(
        default=None,
        ge=5,
        le=43_200,
        validation_alias=_kit("LONGHAUL_VISIBILITY_TIMEOUT_S"),
        description="a job's lease and message invisibility; default: the spec's queue",
    )
    heartbeat_s: float | None = Field(
        default=None, gt=0, validation_alias=_kit("LONGHAUL_HEARTBEAT_S")
    )
    cancel_poll_s: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_kit("LONGHAUL_CANCEL_POLL_S")
    )
    reconcile_every_s: float = Field(
        default=30.0, gt=0, validation_alias=_kit("LONGHAUL_RECONCILE_EVERY_S")
    )
    reconcile_after_s: float = Field(
        default=60.0, gt=0, validation_alias=_kit("LONGHAUL_RECONCILE_AFTER_S")
    )
    retry_base_s: int = Field(default=5, ge=1, validation_alias=_kit("LONGHAUL_RETRY_BASE_S"))
    retry_max_s: int = Field(
        default=900, ge=1, le=900, validation_alias=_kit("LONGHAUL_RETRY_MAX_S")
    )
    visibility_cap_s: int = Field(
        default=43_200,
        ge=10,
        le=43_200,
        validation_alias=_kit("LONGHAUL_VISIBILITY_CAP_S"),
        description="SQS's cap on a message's visibility from its receipt; lower only on "
        "an emulator that enforces a lower cap, so tests reach it",
    )
    max_takeovers: int = Field(default=5, ge=0, validation_alias=_kit("LONGHAUL_MAX_TAKEOVERS"))
    ecs_agent_uri: str | None = Field(default=None, validation_alias=_kit("ECS_AGENT_URI"))
    deployment_watch_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        validation_alias=_kit("LONGHAUL_DEPLOYMENT_WATCH_S"),
        description="on ECS, how often a worker asks whether a new deployment replaced its task",
    )
    readiness_timeout_s: float = Field(
        default=2.0, gt=0, le=30, validation_alias=_kit("LONGHAUL_READINESS_TIMEOUT_S")
    )
    readiness_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        validation_alias=_kit("LONGHAUL_READINESS_CACHE_S"),
        description="/readyz answers from its last checks for this long, however often it is asked",
    )
    # Per-owner quotas (docs/quotas.md); a service sets its own by redeclaring these.
    quota_concurrent_jobs: int = Field(
        default=100, ge=1, validation_alias=_kit("LONGHAUL_QUOTA_CONCURRENT_JOBS")
    )
    quota_uploads_per_hour: int = Field(
        default=100, ge=1, validation_alias=_kit("LONGHAUL_QUOTA_UPLOADS_PER_HOUR")
    )
    quota_stored_bytes: int = Field(
        default=100 * 1024**3, ge=1, validation_alias=_kit("LONGHAUL_QUOTA_STORED_BYTES")
    )
    quota_streams: int = Field(default=10, ge=1, validation_alias=_kit("LONGHAUL_QUOTA_STREAMS"))
    quota_stream_lifetime_s: int = Field(
        default=900, ge=1, validation_alias=_kit("LONGHAUL_QUOTA_STREAM_LIFETIME_S")
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_placeholders(cls, value: Any) -> Any:
        if isinstance(value, str) and _PLACEHOLDER.match(value.strip()):
            raise ValueError(f"{value!r} is a placeholder, not a value")
        return value

    @field_validator("secret_ids", mode="before")
    @classmethod
    def _secret_ids_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def jwks_url(self) -> str | None:
        """Where the signing keys are: explicit, or the issuer's well-known path (Cognito)."""
        if self.auth_jwks_url:
            return self.auth_jwks_url
        return f"{self.auth_issuer.rstrip('/')}/.well-known/jwks.json" if self.auth_issuer else None

    @property
    def quotas(self) -> Quotas:
        """The per-owner quotas these settings set."""
        from longhaul.quotas.types import Quotas  # the quotas import the jobs, which import this

        return Quotas(
            concurrent_jobs=self.quota_concurrent_jobs,
            uploads_per_hour=self.quota_uploads_per_hour,
            stored_bytes=self.quota_stored_bytes,
            streams=self.quota_streams,
            stream_lifetime_s=self.quota_stream_lifetime_s,
        )

    def check_against(self, spec: ServiceSpec, role: Role) -> Self:
        """Fail naming every variable the spec and role need but the environment lacks."""
        missing: list[str] = []
        if spec.queue and not self.queue_name:
            missing.append("LONGHAUL_QUEUE_NAME")
        if spec.table and not self.table_name:
            missing.append("LONGHAUL_TABLE_NAME")
        if spec.bucket and not self.bucket_name:
            missing.append("LONGHAUL_BUCKET_NAME")
        missing += [
            f"LONGHAUL_SECRET_IDS[{s.name}]" for s in spec.secrets if s.name not in self.secret_ids
        ]
        if role in ("api", "all"):
            if not self.auth_issuer:
                missing.append("LONGHAUL_AUTH_ISSUER")
            if not self.auth_client_id:
                missing.append("LONGHAUL_AUTH_CLIENT_ID")
        if missing:
            raise SettingsError(
                f"service {spec.name!r} ({role}) cannot start; missing: {', '.join(missing)}"
            )
        return self


def _env_name(cls: type[BaseSettings], key: str | int) -> str:
    field = cls.model_fields.get(str(key))
    if field is None:  # pydantic reported the alias itself
        return str(key).upper()
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{cls.model_config.get('env_prefix', '')}{key}".upper()


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Create `cls` from the environment, turning validation errors into a `SettingsError`."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = [
            f"{_env_name(cls, err['loc'][0]) if err['loc'] else cls.__name__}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    except PydanticSettingsError as exc:  # a complex value (dict, list) that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = _env_name(cls, found.group(1)) if found else cls.__name__
        raise SettingsError(f"invalid settings: {name}: not valid JSON") from None
