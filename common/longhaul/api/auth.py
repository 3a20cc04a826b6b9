"""JWT bearer auth against a JWKS: Cognito in AWS, moto's Cognito locally, one code path.

Only RS256 is accepted (so `alg: none` and HS256-with-the-public-key confusion are refused
before any signature check), the key must come from the issuer's JWKS by `kid`, and the
issuer, expiry, `token_use` and client id are all checked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

__all__ = ["AuthError", "Caller", "JwtVerifier"]

ALGORITHM = "RS256"


class AuthError(Exception):
    """The token is missing, malformed, or fails a check; the message says which."""


@dataclass(frozen=True)
class Caller:
    """The authenticated caller. `sub` owns whatever the caller creates."""

    sub: str
    username: str | None
    client_id: str
    groups: frozenset[str]
    scopes: frozenset[str]


class JwtVerifier:
    """Verifies Cognito-style access tokens."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        jwks_url: str,
        token_use: str = "access",  # noqa: S107 - a claim value, not a password
        leeway_s: float = 30,
        min_refresh_interval_s: float = 60,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.jwks_url = jwks_url
        self.token_use = token_use
        self.leeway_s = leeway_s
        self._min_refresh = min_refresh_interval_s
        self._http = http or httpx.AsyncClient(timeout=5)
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _key(self, kid: str) -> PyJWK:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # An unknown kid may mean rotated keys: refetch, at most once a minute.
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self._min_refresh:
                self._fetched_at = time.monotonic()  # a failing issuer is asked once a minute too
                try:
                    response = await self._http.get(self.jwks_url)
                    response.raise_for_status()
                    jwks = PyJWKSet.from_dict(response.json())
                except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
                    raise AuthError(f"issuer keys unavailable: {type(exc).__name__}") from None
                self._keys = {k.key_id: k for k in jwks.keys if k.key_id}
        if kid not in self._keys:
            raise AuthError("signing key not found in the issuer's JWKS")
        return self._keys[kid]

    async def verify(self, token: str) -> Caller:
        """The caller `token` proves, or `AuthError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            shown = (
                repr(alg)
                if alg in {"none", "HS256", "HS384", "HS512", "RS384", "RS512", "ES256", "PS256"}
                else "this"
            )
            raise AuthError(f"algorithm {shown} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("token has no key id")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidIssuerError:
            raise AuthError("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthError("bad signature") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if claims["token_use"] != self.token_use:
            raise AuthError(f"a {self.token_use} token is required, not {claims['token_use']!r}")
        if claims.get("client_id") != self.client_id:
            raise AuthError("token was issued to another client")
        return Caller(
            sub=str(claims["sub"]),
            username=claims.get("username"),
            client_id=self.client_id,
            groups=frozenset(claims.get("cognito:groups", ())),
            scopes=frozenset(str(claims.get("scope", "")).split()),
        )

    async def close(self) -> None:
        """Close the HTTP client used for the JWKS."""
        await self._http.aclose()
