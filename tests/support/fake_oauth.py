"""A small stand-in for Cognito's hosted UI, for the console's sign-in tests: its
`/oauth2/authorize` signs the user in at once (no form) and redirects back with a code and
the state it got, remembering the PKCE challenge; its `/oauth2/token` redeems a code once,
only for the same client and redirect URI and only with the verifier whose S256 is that
challenge, answering the access token `mint()` makes; `/logout` redirects to its
`logout_uri`. It answers Cognito's error bodies (`{"error": "invalid_grant"}`) and lets a
page of any origin read its token answers (CORS), as Cognito's token endpoint does.

Served by uvicorn in a thread of the test's own process (`FakeOAuth.serve`), on a free
loopback port, so that a test can read what it saw."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.moto import free_port

__all__ = ["FakeOAuth", "Redemption", "s256"]

START_TIMEOUT_S = 30.0


def s256(verifier: str) -> str:
    """PKCE's S256 challenge of `verifier`: base64url(SHA-256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    """A code handed out by /oauth2/authorize, with what it was asked with."""

    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    scope: str


@dataclass(frozen=True)
class Redemption:
    """One /oauth2/token request and how it was answered."""

    form: dict[str, str]
    challenge: str | None  # the challenge its code was issued against, if the code was known
    status: int


@dataclass
class FakeOAuth:
    """The fake's state: its client, the token it mints, and what it was asked."""

    client_id: str
    mint: Callable[[], str]
    url: str = ""
    # What goes wrong, when a test asks: the state sent back altered, an `error` instead of
    # a code, or every code refused at the token endpoint.
    tamper_state: bool = False
    deny: str | None = None
    refuse_codes: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)
    authorizations: list[dict[str, str]] = field(default_factory=list)
    redemptions: list[Redemption] = field(default_factory=list)
    logouts: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        """The fake's routes."""
        return Starlette(
            routes=[
                Route("/oauth2/authorize", self._authorize, methods=["GET"]),
                Route("/oauth2/token", self._token, methods=["POST", "OPTIONS"]),
                Route("/logout", self._logout, methods=["GET"]),
                Route("/healthz", lambda _: JSONResponse({"status": "ok"}), methods=["GET"]),
            ]
        )

    async def _authorize(self, request: Request) -> Response:
        asked = dict(request.query_params)
        self.authorizations.append(asked)
        if (
            asked.get("response_type") != "code"
            or asked.get("client_id") != self.client_id
            or not asked.get("redirect_uri")
            or not asked.get("code_challenge")
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if self.deny is not None:
            back = {"error": self.deny, "state": asked.get("state", "")}
            return RedirectResponse(f"{asked['redirect_uri']}?{urlencode(back)}", status_code=302)
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            client_id=asked["client_id"],
            redirect_uri=asked["redirect_uri"],
            challenge=asked["code_challenge"],
            method=asked.get("code_challenge_method", "plain"),
            scope=asked.get("scope", ""),
        )
        state = asked.get("state", "") + ("x" if self.tamper_state else "")
        back = {"code": code, "state": state}
        return RedirectResponse(f"{asked['redirect_uri']}?{urlencode(back)}", status_code=302)

    async def _token(self, request: Request) -> Response:
        cors = {"Access-Control-Allow-Origin": request.headers.get("origin", "*")}
        if request.method == "OPTIONS":
            cors["Access-Control-Allow-Methods"] = "POST"
            cors["Access-Control-Allow-Headers"] = "content-type"
            return Response(status_code=204, headers=cors)
        form = dict(parse_qsl((await request.body()).decode("utf-8")))  # form-encoded
        grant = self.grants.pop(form.get("code", ""), None)  # a code is redeemed once
        ok = (
            not self.refuse_codes
            and grant is not None
            and form.get("grant_type") == "authorization_code"
            and form.get("client_id") == grant.client_id == self.client_id
            and form.get("redirect_uri") == grant.redirect_uri
            and grant.method == "S256"
            and s256(form.get("code_verifier", "")) == grant.challenge
        )
        status = 200 if ok else 400
        self.redemptions.append(Redemption(form, grant.challenge if grant else None, status))
        if not ok:
            return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=cors)
        body = {"access_token": self.mint(), "token_type": "Bearer", "expires_in": 3600}
        return JSONResponse(body, headers={**cors, "Cache-Control": "no-store"})

    async def _logout(self, request: Request) -> Response:
        asked = dict(request.query_params)
        self.logouts.append(asked)
        if asked.get("client_id") != self.client_id or not asked.get("logout_uri"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        return RedirectResponse(asked["logout_uri"], status_code=302)

    @contextlib.contextmanager
    def serve(self) -> Iterator[FakeOAuth]:
        """Serve on a free loopback port (`self.url`) until the block ends."""
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                self.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
            )
        )
        thread = threading.Thread(target=server.run, name="fake-oauth", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise AssertionError("the fake authorization server did not start")
                time.sleep(0.05)
            self.url = f"http://127.0.0.1:{port}"
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout=START_TIMEOUT_S)
