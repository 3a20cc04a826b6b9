"""`longhaul smoke` (`make smoke`): the smoke test against `make dev` by default, or against
a deployed environment through its public URL (CI runs it after each deployment).

Locally it finds the user pool by name and signs in the provisioned smoke user with moto's
dummy credentials. On AWS it takes the pool and app client from `--pool-id`/`--client-id`
or the platform stack's outputs (`cdk deploy --outputs-file`), and signs the smoke user in
with the ordinary AWS credentials; or it takes a ready `--token`. docs/pipeline.md.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError

from longhaul.aws.clients import AwsClients
from longhaul.local import platform
from longhaul.local.discovery import discover
from longhaul.smoke import SmokeFailed, Target, run_smoke, smoke_user_token
from longhaul.smoke.auth import SMOKE_USER, UserPool, enroll_totp, smoke_user_secret

__all__ = ["pool_from_outputs", "smoke_command", "smoke_user_command"]


# The options both commands take to find the pool and the smoke user.
PoolId = Annotated[str | None, typer.Option(envvar="LONGHAUL_SMOKE_POOL_ID")]
ClientId = Annotated[str | None, typer.Option(envvar="LONGHAUL_SMOKE_CLIENT_ID")]
Outputs = Annotated[
    Path | None, typer.Option(help="cdk deploy's --outputs-file: the pool and client from it")
]
UserSecret = Annotated[
    str | None,
    typer.Option(help="The smoke user's secret (default: longhaul/<env>/smoke-user)"),
]


def pool_from_outputs(path: Path) -> UserPool:
    """The user pool and app client in `cdk deploy --outputs-file`'s JSON: the outputs of
    the stack that has both (the platform stack's UserPoolId and AppClientId)."""
    try:
        stacks = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None
    for outputs in stacks.values():
        if isinstance(outputs, dict) and {"UserPoolId", "AppClientId"} <= set(outputs):
            return UserPool(pool_id=outputs["UserPoolId"], client_id=outputs["AppClientId"])
    raise typer.BadParameter(f"{path}: no stack outputs UserPoolId and AppClientId")


async def _local_pool(aws: AwsClients, env: str) -> UserPool:
    cognito = await aws.get("cognito-idp")
    pool_id = await platform.find_user_pool(cognito, platform.pool_name(env))
    if pool_id is None:
        raise SmokeFailed(f"no user pool {platform.pool_name(env)}: is `make dev` running?")
    clients = (await cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60))[
        "UserPoolClients"
    ]
    client_id = next(c["ClientId"] for c in clients if c["ClientName"] == platform.client_name(env))
    return UserPool(pool_id=pool_id, client_id=client_id)


async def _token(aws: AwsClients, env: str, pool: UserPool | None, secret_id: str) -> str:
    pool = pool or await _local_pool(aws, env)
    try:
        return await smoke_user_token(
            await aws.get("cognito-idp"), await aws.get("secretsmanager"), pool, secret_id
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SmokeFailed(f"{error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:
        raise SmokeFailed(str(exc)) from None


def smoke_command(
    url: Annotated[
        str | None,
        typer.Option(
            help="The public base the ALB answers on (https://api.example.com); each service "
            "under /<service>. Default: make dev's ports"
        ),
    ] = None,
    env: Annotated[str, typer.Option(envvar="LONGHAUL_ENV")] = platform.DEFAULT_ENV,
    region: Annotated[str, typer.Option(envvar="AWS_REGION")] = platform.DEFAULT_REGION,
    endpoint: Annotated[
        str | None, typer.Option(help="make dev's AWS endpoint (--env local only)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="LONGHAUL_SMOKE_TOKEN", help="A bearer token to use as it is"),
    ] = None,
    pool_id: PoolId = None,
    client_id: ClientId = None,
    outputs: Outputs = None,
    user_secret: UserSecret = None,
    only: Annotated[list[str], typer.Option("--only", help="Only this service (repeatable)")] = [],  # noqa: B006 - typer reads the default
    service: Annotated[
        list[str],
        typer.Option("--service", help="Also smoke-test the spec at module:ATTR (repeatable)"),
    ] = [],  # noqa: B006
    timeout: Annotated[
        float, typer.Option(help="Seconds any one wait may take (a worker may start from zero)")
    ] = 600.0,
) -> None:
    """Smoke-test every service: health, an authenticated round trip as the smoke user, and
    each service's own check (media: an upload's event starts a transcode that succeeds)."""
    local = env == platform.DEFAULT_ENV
    specs = [s for s in discover(tuple(service)) if not only or s.name in only]
    unknown = set(only) - {s.name for s in specs}
    if unknown or not specs:
        raise typer.BadParameter(f"no service {', '.join(sorted(unknown)) or 'to test'}")
    if url:
        targets = [Target(s, f"{url.rstrip('/')}/{s.name}") for s in specs]
    else:
        targets = [Target(s, f"http://127.0.0.1:{s.port}") for s in specs]
    pool: UserPool | None = None
    if outputs is not None:
        pool = pool_from_outputs(outputs)
    elif pool_id and client_id:
        pool = UserPool(pool_id=pool_id, client_id=client_id)
    elif token is None and not local:
        raise typer.BadParameter("on AWS, give --token, or --outputs, or --pool-id and --client-id")

    async def run() -> bool:
        bearer = token
        if bearer is None:
            aws = (
                platform.local_clients(endpoint or platform.DEFAULT_ENDPOINT, region)
                if local
                else AwsClients(region)
            )
            try:
                bearer = await _token(aws, env, pool, user_secret or smoke_user_secret(env))
            except SmokeFailed as exc:
                typer.echo(f"FAIL  the smoke user could not sign in: {exc}")
                return False
            finally:
                await aws.close()
        return await run_smoke(targets, bearer, timeout_s=timeout, say=typer.echo)

    raise typer.Exit(0 if asyncio.run(run()) else 1)


async def _ensure_smoke_user(
    aws: AwsClients, pool: UserPool, secret_id: str, username: str, *, new_mfa: bool
) -> list[str]:
    """Create or converge the smoke user and its secret; what was done, one line each."""
    done: list[str] = []
    store = await aws.get("secretsmanager")
    cognito = await aws.get("cognito-idp")
    try:
        current = json.loads((await store.get_secret_value(SecretId=secret_id))["SecretString"])
    except store.exceptions.ResourceNotFoundException:
        current = {"username": username, "password": "Lh1!" + secrets.token_urlsafe(24)}
        await store.create_secret(
            Name=secret_id,
            SecretString=json.dumps(current),
            Description="The smoke test's Cognito user (longhaul smoke; docs/pipeline.md)",
        )
        done.append(f"created the secret {secret_id}")
    try:
        await cognito.admin_get_user(UserPoolId=pool.pool_id, Username=current["username"])
    except cognito.exceptions.UserNotFoundException:
        await cognito.admin_create_user(
            UserPoolId=pool.pool_id, Username=current["username"], MessageAction="SUPPRESS"
        )
        done.append(f"created the user {current['username']}")
    await cognito.admin_set_user_password(
        UserPoolId=pool.pool_id,
        Username=current["username"],
        Password=current["password"],
        Permanent=True,
    )
    if new_mfa or not current.get("totp_secret"):
        await enroll_totp(cognito, store, pool, secret_id)
        done.append("enrolled a TOTP authenticator, its secret kept in the secret")
    await smoke_user_token(cognito, store, pool, secret_id)
    done.append(f"{current['username']} signs in")
    return done


def smoke_user_command(
    env: Annotated[str, typer.Option(envvar="LONGHAUL_ENV")],
    region: Annotated[str, typer.Option(envvar="AWS_REGION")] = platform.DEFAULT_REGION,
    pool_id: PoolId = None,
    client_id: ClientId = None,
    outputs: Outputs = None,
    user_secret: UserSecret = None,
    username: Annotated[str, typer.Option(help="The user's name in the pool")] = SMOKE_USER,
    new_mfa: Annotated[
        bool, typer.Option(help="Enrol a new TOTP authenticator even if one is kept")
    ] = False,
) -> None:
    """Create (or repair) a deployed environment's smoke user, once, with administrator
    credentials: a secret with its password, the user, a TOTP authenticator whose secret is
    kept in the same secret, and a sign-in to prove it."""
    if outputs is not None:
        pool = pool_from_outputs(outputs)
    elif pool_id and client_id:
        pool = UserPool(pool_id=pool_id, client_id=client_id)
    else:
        raise typer.BadParameter("give --outputs, or --pool-id and --client-id")

    async def run() -> list[str]:
        aws = AwsClients(region)  # the ordinary credential chain
        try:
            return await _ensure_smoke_user(
                aws, pool, user_secret or smoke_user_secret(env), username, new_mfa=new_mfa
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise SmokeFailed(f"{error.get('Code')}: {error.get('Message')}") from None
        finally:
            await aws.close()

    try:
        for line in asyncio.run(run()):
            typer.echo(line)
    except SmokeFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
