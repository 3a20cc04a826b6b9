"""A real access token for a local dev user, from moto's Cognito: `dev`, a plain caller,
or `dev-admin`, in the `admin` group (the admin routes, the console's admin view)."""

from __future__ import annotations

from longhaul.aws.clients import AwsClients
from longhaul.local import platform

__all__ = ["DEV_ADMIN_USER", "DEV_USERS", "dev_token"]

DEV_ADMIN_USER = "dev-admin"
# The local users by the short name `longhaul token --user` and the console take.
DEV_USERS = {"dev": platform.DEV_USER, "admin": DEV_ADMIN_USER}


async def dev_token(aws: AwsClients, env: str, *, username: str = platform.DEV_USER) -> str:
    """Sign a local dev user (`dev` or `dev-admin`, who share the generated password) in
    with USER_PASSWORD_AUTH and return the RS256 access token."""
    cognito = await aws.get("cognito-idp")
    pool_id = await platform.find_user_pool(cognito, platform.pool_name(env))
    if pool_id is None:
        raise SystemExit("no local user pool: is `make dev` running?")
    clients = (await cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60))[
        "UserPoolClients"
    ]
    client_id = next(c["ClientId"] for c in clients if c["ClientName"] == platform.client_name(env))
    secret = await (await aws.get("secretsmanager")).get_secret_value(
        SecretId=platform.dev_password_secret(env)
    )
    result = await cognito.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": secret["SecretString"]},
    )
    return str(result["AuthenticationResult"]["AccessToken"])
