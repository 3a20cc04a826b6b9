"""A real access token for the local dev user, from moto's Cognito."""

from __future__ import annotations

from longhaul.aws.clients import AwsClients
from longhaul.local import platform

__all__ = ["dev_token"]


async def dev_token(aws: AwsClients, env: str, *, username: str = platform.DEV_USER) -> str:
    """Sign the dev user in with USER_PASSWORD_AUTH and return the RS256 access token."""
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
