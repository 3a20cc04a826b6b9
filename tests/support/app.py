"""The echo service's app, started in-process against moto, and tokens to call it with."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from longhaul.config import KitSettings, Role, load_settings
from longhaul.local.platform import role_environment
from tests.support.echo.service import SERVICE


def echo_environment(env: str, endpoint: str, auth: Any, role: str = "api") -> dict[str, str]:
    """The environment the dev runner would give the echo service."""
    return role_environment(
        SERVICE.spec,
        role,
        env=env,
        region="us-east-1",
        endpoint=endpoint,
        auth=auth,
        host="127.0.0.1",
    )


@asynccontextmanager
async def running_app(
    monkeypatch: pytest.MonkeyPatch, platform: Any, role: Role = "api", **overrides: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The echo app with its lifespan running, and an HTTP client speaking to it over ASGI."""
    for key, value in {
        **echo_environment(platform.env, platform.endpoint, platform.auth),
        **overrides,
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(KitSettings)
    app = SERVICE.app(role, settings)
    async with app.router.lifespan_context(app) as _:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://echo.test") as client:
            yield app, client


def moto_signing_key() -> Any:
    """moto's Cognito private key: signs tokens exactly as the local pool does."""
    packed = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz")
    return jwt.PyJWK.from_dict(json.loads(gzip.decompress(packed.read_bytes()))).key


def forge(auth: Any, **changes: Any) -> str:
    """An access token like the pool issues, with `changes` applied to its claims."""
    now = int(time.time())
    claims = {
        "iss": auth.issuer,
        "sub": "user-forged",
        "client_id": auth.client_id,
        "token_use": "access",
        "iat": now,
        "auth_time": now,
        "exp": now + 600,
        "username": "forged",
    }
    claims.update(changes)
    return jwt.encode(claims, moto_signing_key(), algorithm="RS256", headers={"kid": "dummy"})
