"""The API edge: `create_app`, problem+json, auth and the shared dependencies."""

from longhaul.api.app import create_app
from longhaul.api.auth import AuthError, Caller, JwtVerifier
from longhaul.api.deps import (
    AwsDep,
    CallerDep,
    FlagsDep,
    PublisherDep,
    QuotasDep,
    SettingsDep,
    require_group,
)
from longhaul.api.problems import PROBLEM_JSON, Problem

__all__ = [
    "PROBLEM_JSON",
    "AuthError",
    "AwsDep",
    "Caller",
    "CallerDep",
    "FlagsDep",
    "JwtVerifier",
    "Problem",
    "PublisherDep",
    "QuotasDep",
    "SettingsDep",
    "create_app",
    "require_group",
]
