"""The smoke user's access token: a Cognito user of the platform's app client, signed in by
the admin flow with IAM credentials (its password and, where the pool requires MFA, its TOTP
secret are read from Secrets Manager), so the public app client keeps allowing SRP only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from longhaul.smoke.types import SmokeFailed

__all__ = ["SmokeUser", "enroll_totp", "smoke_user_secret", "smoke_user_token", "totp"]

SMOKE_USER = "smoke"


def smoke_user_secret(env: str) -> str:
    """The Secrets Manager secret holding environment `env`'s smoke user."""
    return f"longhaul/{env}/smoke-user"


class SmokeUser(BaseModel):
    """The secret's JSON: who the smoke user is and how it signs in."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1)
    password: SecretStr
    totp_secret: SecretStr | None = Field(
        default=None, description="base32, as Cognito's AssociateSoftwareToken gave it"
    )


@dataclass(frozen=True)
class UserPool:
    """The pool and app client the services accept tokens of."""

    pool_id: str
    client_id: str


def totp(secret_b32: str, at: float | None = None, *, digits: int = 6, step_s: int = 30) -> str:
    """The RFC 6238 time-based one-time password (HMAC-SHA1) of `secret_b32` at `at`."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step_s)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


async def read_smoke_user(secrets: Any, secret_id: str) -> SmokeUser:
    """The smoke user's credentials from Secrets Manager."""
    try:
        value = (await secrets.get_secret_value(SecretId=secret_id))["SecretString"]
    except secrets.exceptions.ResourceNotFoundException:
        raise SmokeFailed(
            f"no secret {secret_id}: create the smoke user (docs/pipeline.md)"
        ) from None
    try:
        return SmokeUser.model_validate(json.loads(value))
    except (ValueError, ValidationError):
        raise SmokeFailed(
            f"{secret_id} is not the smoke user's JSON (username, password, totp_secret)"
        ) from None


async def smoke_user_token(cognito: Any, secrets: Any, pool: UserPool, secret_id: str) -> str:
    """Sign the smoke user in (ADMIN_USER_PASSWORD_AUTH, answering a TOTP challenge) and
    return its access token."""
    user = await read_smoke_user(secrets, secret_id)
    result = await cognito.admin_initiate_auth(
        UserPoolId=pool.pool_id,
        ClientId=pool.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user.username, "PASSWORD": user.password.get_secret_value()},
    )
    challenge = result.get("ChallengeName")
    if challenge == "SOFTWARE_TOKEN_MFA":
        if user.totp_secret is None:
            raise SmokeFailed(
                f"the pool asks {user.username} for a TOTP code; {secret_id} has none"
            )
        result = await cognito.admin_respond_to_auth_challenge(
            UserPoolId=pool.pool_id,
            ClientId=pool.client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=result["Session"],
            ChallengeResponses={
                "USERNAME": user.username,
                "SOFTWARE_TOKEN_MFA_CODE": totp(user.totp_secret.get_secret_value()),
            },
        )
    elif challenge is not None:
        raise SmokeFailed(
            f"Cognito asks {user.username} for {challenge}: the smoke user is not set up "
            "(docs/pipeline.md, The smoke user)"
        )
    if "AuthenticationResult" not in result:
        raise SmokeFailed(f"Cognito gave {user.username} no token ({result.get('ChallengeName')})")
    return str(result["AuthenticationResult"]["AccessToken"])


async def enroll_totp(cognito: Any, secrets: Any, pool: UserPool, secret_id: str) -> str:
    """Give the smoke user a TOTP authenticator and keep its secret beside the password
    (once per environment; `longhaul smoke-user`). Returns the user's access token.

    A pool that requires MFA answers the first sign-in with MFA_SETUP, and the authenticator
    is associated within that session; a pool that does not (the local one) gives tokens
    first, and the authenticator is associated with the access token."""
    user = await read_smoke_user(secrets, secret_id)
    name = "longhaul-smoke"
    result = await cognito.admin_initiate_auth(
        UserPoolId=pool.pool_id,
        ClientId=pool.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user.username, "PASSWORD": user.password.get_secret_value()},
    )
    if result.get("ChallengeName") == "MFA_SETUP":
        associated = await cognito.associate_software_token(Session=result["Session"])
        secret = str(associated["SecretCode"])
        verified = await cognito.verify_software_token(
            Session=associated["Session"], UserCode=totp(secret), FriendlyDeviceName=name
        )
        result = await cognito.admin_respond_to_auth_challenge(
            UserPoolId=pool.pool_id,
            ClientId=pool.client_id,
            ChallengeName="MFA_SETUP",
            Session=verified["Session"],
            ChallengeResponses={"USERNAME": user.username},
        )
    elif "AuthenticationResult" in result:
        access = result["AuthenticationResult"]["AccessToken"]
        secret = str((await cognito.associate_software_token(AccessToken=access))["SecretCode"])
        await cognito.verify_software_token(
            AccessToken=access, UserCode=totp(secret), FriendlyDeviceName=name
        )
    else:
        raise SmokeFailed(
            f"Cognito asks {user.username} for {result.get('ChallengeName')}; "
            "enrol it by hand (docs/pipeline.md)"
        )
    await cognito.admin_set_user_mfa_preference(
        UserPoolId=pool.pool_id,
        Username=user.username,
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    stored = {
        "username": user.username,
        "password": user.password.get_secret_value(),
        "totp_secret": secret,
    }
    await secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(stored))
    return str(result["AuthenticationResult"]["AccessToken"])
