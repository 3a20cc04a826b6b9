"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from longhaul.api.auth import AuthError, Caller, JwtVerifier
from longhaul.api.problems import Problem
from longhaul.aws.clients import AwsClients
from longhaul.config import KitSettings
from longhaul.events.publisher import EventPublisher
from longhaul.flags import Flags
from longhaul.jobs.store import JobStore
from longhaul.quotas import QuotaStore

__all__ = [
    "AwsDep",
    "CallerDep",
    "FlagsDep",
    "JobStoreDep",
    "PublisherDep",
    "QuotasDep",
    "SettingsDep",
    "current_caller",
    "require_group",
]

_bearer = HTTPBearer(auto_error=False)


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller proven by the bearer token, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    verifier: JwtVerifier = request.app.state.verifier
    try:
        return await verifier.verify(credentials.credentials)
    except AuthError as exc:
        # Only printable ASCII without quotes may go into the header.
        description = re.sub(r"[^ !#-\[\]-~]", "", str(exc))
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        raise Problem(401, str(exc), headers={"WWW-Authenticate": challenge}) from None


CallerDep = Annotated[Caller, Depends(current_caller)]


def require_group(group: str) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency that lets through only callers in Cognito group `group` (403 otherwise)."""

    async def check(caller: CallerDep) -> Caller:
        if group not in caller.groups:
            raise Problem(403, f"this action needs membership of group {group!r}")
        return caller

    return check


def _settings(request: Request) -> KitSettings:
    settings: KitSettings = request.app.state.settings
    return settings


def _aws(request: Request) -> AwsClients:
    aws: AwsClients = request.app.state.aws
    return aws


def _publisher(request: Request) -> EventPublisher:
    publisher: EventPublisher = request.app.state.publisher
    return publisher


def _quotas(request: Request) -> QuotaStore:
    quotas: QuotaStore = request.app.state.quotas
    return quotas


def _job_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.job_store
    return store


def _flags(request: Request) -> Flags:
    flags: Flags = request.app.state.flags
    return flags


SettingsDep = Annotated[KitSettings, Depends(_settings)]
AwsDep = Annotated[AwsClients, Depends(_aws)]
PublisherDep = Annotated[EventPublisher, Depends(_publisher)]
QuotasDep = Annotated[QuotaStore, Depends(_quotas)]
FlagsDep = Annotated[Flags, Depends(_flags)]
JobStoreDep = Annotated[JobStore, Depends(_job_store)]  # the job table of a job-running service
