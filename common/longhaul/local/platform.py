"""The local platform's shape: endpoint, names, auth, and each role's environment.

The dev runner and docker-compose.yml both take a role's environment from
`role_environment`, so the two can not disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from longhaul.aws.clients import AwsClients
from longhaul.flags import flags_parameter_name
from longhaul.spec import ResourceNames, ServiceSpec, platform_bus_name

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_ENV",
    "DEFAULT_REGION",
    "MOTO_ENV",
    "MOTO_VERSION",
    "LocalAuth",
    "assert_local",
    "expected_auth",
    "local_clients",
    "role_environment",
]

MOTO_VERSION = "5.2.5"
MOTO_PORT = 4566
DEFAULT_ENDPOINT = f"http://127.0.0.1:{MOTO_PORT}"
# Reproducible Cognito ids: the same pool and client ids on every start, so docker-compose
# can name them before the provisioner has run.
MOTO_ENV = {
    "MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY": "HASH",
    "MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY": "HASH",
}
DEFAULT_ENV = "local"
DEFAULT_REGION = "us-east-1"
DEV_USER = "dev"
# moto needs credentials to sign with; these are moto's conventional dummies, not secrets.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def local_clients(endpoint: str, region: str) -> AwsClients:
    """Clients for the local tools, pointed at `endpoint` with moto's dummy credentials."""
    return AwsClients(
        region,
        endpoint_url=assert_local(endpoint),
        credentials={
            "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        },
    )


def pool_name(env: str) -> str:
    """The Cognito user pool of environment `env`."""
    return f"longhaul-{env}"


def client_name(env: str) -> str:
    """The Cognito app client of environment `env`."""
    return f"longhaul-{env}-app"


def dev_password_secret(env: str) -> str:
    """Where the provisioner keeps the local dev user's generated password."""
    return f"longhaul/{env}/dev-user"


@dataclass(frozen=True)
class LocalAuth:
    """The local user pool, as the services see it."""

    pool_id: str
    client_id: str
    region: str

    @property
    def issuer(self) -> str:
        """Cognito's issuer URL (moto issues tokens with the real AWS form)."""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    def jwks_url(self, endpoint: str) -> str:
        """Where moto serves the pool's JWKS."""
        return f"{endpoint.rstrip('/')}/{self.pool_id}/.well-known/jwks.json"


POOL_PARAMETERS: dict[str, object] = {}
CLIENT_PARAMETERS = {"ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}


def expected_auth(env: str, region: str) -> LocalAuth:
    """The ids moto's HASH strategy gives the pool and client the provisioner creates.

    The integration tests check these against what moto actually returns.
    """

    def digest(*parts: object) -> str:
        return hashlib.sha256("".join(str(p) for p in parts).encode()).hexdigest()

    pool_parameters = {"PoolName": pool_name(env), **POOL_PARAMETERS}
    pool_id = f"{region}_{digest(region, pool_name(env), pool_parameters)}"[:55]
    client_parameters = {"UserPoolId": pool_id, "ClientName": client_name(env), **CLIENT_PARAMETERS}
    client_id = digest(pool_id, False, client_parameters)[:26]
    return LocalAuth(pool_id=pool_id, client_id=client_id, region=region)


def assert_local(endpoint: str) -> str:
    """Refuse anything but a loopback or compose-network endpoint: these commands wipe state."""
    host = urlparse(endpoint).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1", "moto"}:
        raise SystemExit(f"refusing to touch {endpoint}: local commands only run against moto")
    return endpoint


def role_environment(
    spec: ServiceSpec,
    role: str,
    *,
    env: str,
    region: str,
    endpoint: str,
    auth: LocalAuth,
    host: str,
) -> dict[str, str]:
    """The environment one role of one service runs with on the local platform."""
    names = ResourceNames.of(spec, env)
    variables = {
        "LONGHAUL_ENV": env,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": endpoint,
        **DUMMY_CREDENTIALS,
        "LONGHAUL_BUS_NAME": platform_bus_name(env),
        "LONGHAUL_HOST": host,
        "LONGHAUL_PORT": str(spec.worker_port if role == "worker" else spec.port),
        "LONGHAUL_AUTH_ISSUER": auth.issuer,
        "LONGHAUL_AUTH_CLIENT_ID": auth.client_id,
        "LONGHAUL_AUTH_JWKS_URL": auth.jwks_url(endpoint),
        "OTEL_SERVICE_NAME": f"longhaul-{spec.name}",
        "LONGHAUL_FLAGS_PARAMETER": flags_parameter_name(env, spec.name),
    }
    if names.queue:
        variables["LONGHAUL_QUEUE_NAME"] = names.queue
    if names.table:
        variables["LONGHAUL_TABLE_NAME"] = names.table
    if names.bucket:
        variables["LONGHAUL_BUCKET_NAME"] = names.bucket
    if names.secrets:
        variables["LONGHAUL_SECRET_IDS"] = json.dumps(names.secrets, sort_keys=True)
    return variables


async def find_user_pool(cognito: Any, name: str) -> str | None:
    """The id of the user pool called `name`, looking through every page of pools."""
    async for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page.get("UserPools", []):
            if pool["Name"] == name:
                return str(pool["Id"])
    return None
