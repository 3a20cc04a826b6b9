"""JWT bearer auth against moto's Cognito JWKS: the same code path as in AWS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator

import jwt
import pytest

from longhaul.aws.clients import AwsClients
from longhaul.local.token import dev_token
from tests.conftest import REGION, Platform, new_platform
from tests.support.app import forge, running_app
from tests.support.moto import MotoServer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_valid_dev_user_token_is_accepted_and_names_the_caller(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await dev_token(aws, platform.env)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    async with running_app(monkeypatch, platform) as (_, client):
        response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["username"] == "dev"
    assert response.json()["sub"] == jwt.decode(token, options={"verify_signature": False})["sub"]


async def _bad_tokens(aws: AwsClients, platform: Platform) -> dict[str, str]:
    cognito = await aws.get("cognito-idp")
    valid = await dev_token(aws, platform.env)
    secret = await (await aws.get("secretsmanager")).get_secret_value(
        SecretId=f"longhaul/{platform.env}/dev-user"
    )
    id_token = (
        await cognito.initiate_auth(
            ClientId=platform.auth.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "dev", "PASSWORD": secret["SecretString"]},
        )
    )["AuthenticationResult"]["IdToken"]
    header, payload, signature = valid.split(".")
    tampered_payload = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_payload["sub"] = "someone-else"
    public_jwk = json.dumps({"kty": "RSA", "kid": "dummy"})  # what an attacker can read
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": "dummy", "typ": "JWT"}).encode())
    hs_signing_input = f"{hs_header}.{payload}".encode()
    confused = _b64(hmac.new(public_jwk.encode(), hs_signing_input, hashlib.sha256).digest())
    none_header = _b64(json.dumps({"alg": "none", "kid": "dummy", "typ": "JWT"}).encode())
    return {
        "expired": forge(platform.auth, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "wrong issuer": forge(
            platform.auth, iss="https://cognito-idp.us-east-1.amazonaws.com/other"
        ),
        "wrong client": forge(platform.auth, client_id="another-app"),
        "id token": id_token,
        "tampered signature": f"{header}.{payload}.{signature[:-6]}AAAAAA",
        "tampered claims": f"{header}.{_b64(json.dumps(tampered_payload).encode())}.{signature}",
        "alg none": f"{none_header}.{payload}.",
        "algorithm confusion": f"{hs_header}.{payload}.{confused}",
        "garbage": "not-a-jwt",
    }


@pytest.fixture(scope="module")
async def bad_tokens(moto: MotoServer) -> AsyncIterator[tuple[Platform, dict[str, str]]]:
    """One environment and every kind of bad token for it, made once for all the cases:
    each case only reads (one GET /me), so none can change what another sees."""
    clients = AwsClients(REGION)
    try:
        platform = await new_platform(clients, moto.endpoint)
        yield platform, await _bad_tokens(clients, platform)
    finally:
        await clients.close()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token expired"),
        ("wrong issuer", "wrong issuer"),
        ("wrong client", "another client"),
        ("id token", "access token is required"),
        ("tampered signature", "bad signature"),
        ("tampered claims", "bad signature"),
        ("alg none", "'none' is not accepted"),
        ("algorithm confusion", "'HS256' is not accepted"),
        ("garbage", "malformed"),
    ],
)
async def test_bad_token_is_refused_with_401_and_its_reason(
    bad_tokens: tuple[Platform, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    reason: str,
) -> None:
    platform, tokens = bad_tokens
    token = tokens[case]
    async with running_app(monkeypatch, platform) as (_, client):
        response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert reason in response.json()["detail"]


async def test_missing_token_is_401_and_outsider_group_is_403(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await dev_token(aws, platform.env)
    async with running_app(monkeypatch, platform) as (_, client):
        anonymous = await client.get("/me")
        not_admin = await client.get("/admin", headers={"Authorization": f"Bearer {token}"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert not_admin.status_code == 403
    assert not_admin.json()["detail"] == "this action needs membership of group 'admins'"


async def test_hostile_token_header_cannot_break_or_inject_into_the_challenge(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = _b64(json.dumps({"sub": "x"}).encode())
    tokens = [
        _b64(json.dumps({"alg": "中", "kid": "dummy"}).encode()) + f".{payload}.sig",
        _b64(json.dumps({"alg": 'RS"256, error="injected', "kid": "dummy"}).encode())
        + f".{payload}.sig",
        _b64(json.dumps({"alg": "RS256", "kid": "no-such-key"}).encode()) + f".{payload}.sig",
    ]
    async with running_app(monkeypatch, platform) as (_, client):
        for token in tokens:
            response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert challenge.count('"') == 4, challenge
            assert "injected" not in challenge
