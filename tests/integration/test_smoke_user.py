"""The provisioned smoke user signs in as `longhaul smoke` signs it in after a deployment:
the admin flow on the platform's app client, answering the TOTP challenge a pool with MFA
asks for once `longhaul smoke-user` enrolled it; its token is one the services accept."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner

from longhaul.api.auth import JwtVerifier
from longhaul.aws.clients import AwsClients
from longhaul.local.cli import app
from longhaul.local.provision import provision
from longhaul.smoke import smoke_user_token
from longhaul.smoke.auth import UserPool, smoke_user_secret
from tests.conftest import REGION
from tests.support.echo.spec import SPEC as ECHO
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration


async def test_the_smoke_user_signs_in_and_its_token_is_accepted(
    aws: AwsClients, moto: MotoServer
) -> None:
    env = "s" + uuid.uuid4().hex[:8]
    report = await provision(aws, [ECHO], env=env, region=REGION)
    assert report.auth is not None
    assert ("user", "smoke", "created") in report.actions
    pool = UserPool(pool_id=report.auth.pool_id, client_id=report.auth.client_id)
    cognito, secrets = await aws.get("cognito-idp"), await aws.get("secretsmanager")
    stored = json.loads(
        (await secrets.get_secret_value(SecretId=smoke_user_secret(env)))["SecretString"]
    )
    assert set(stored) == {"username", "password"}

    token = await smoke_user_token(cognito, secrets, pool, smoke_user_secret(env))
    verifier = JwtVerifier(
        issuer=report.auth.issuer,
        client_id=report.auth.client_id,
        jwks_url=report.auth.jwks_url(moto.endpoint),
    )
    try:
        caller = await verifier.verify(token)
    finally:
        await verifier.close()
    assert caller.username == "smoke"

    # As for a deployed pool, which requires MFA: `longhaul smoke-user` enrols a TOTP
    # authenticator, keeps its secret beside the password, and the sign-in answers for it.
    argv = ["smoke-user", "--env", env, "--pool-id", pool.pool_id, "--client-id", pool.client_id]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "enrolled a TOTP authenticator" in result.stdout
    assert "smoke signs in" in result.stdout
    enrolled = json.loads(
        (await secrets.get_secret_value(SecretId=smoke_user_secret(env)))["SecretString"]
    )
    assert enrolled["password"] == stored["password"]
    assert enrolled["totp_secret"]  # what AssociateSoftwareToken gave
    challenged = await cognito.admin_initiate_auth(
        UserPoolId=pool.pool_id,
        ClientId=pool.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "smoke", "PASSWORD": stored["password"]},
    )
    assert challenged["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert await smoke_user_token(cognito, secrets, pool, smoke_user_secret(env))
    # run again, it changes nothing and still signs in
    again = await asyncio.to_thread(CliRunner().invoke, app, argv, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "smoke signs in"
