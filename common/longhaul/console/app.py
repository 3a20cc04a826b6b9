"""The console's server: the static page, and `/api/<service>/<path>` forwarded to that
service's API with the caller's Authorization header passed through unchanged.

The console holds no secret and checks no token: each service checks the token it is sent,
so a caller sees through the console exactly what the API would show them. Same origin for
the page and the APIs means no CORS. Under the dev runner only, `/dev-token` hands out the
local dev user's token, or the local dev admin's (docs/console.md). Where the page calls the
APIs elsewhere (behind the platform's ALB: an API base other than "api/"), no forwarding
route is mounted. On AWS the page signs in through Cognito's hosted UI, whose address and
public client id `/console/config` names (the page runs the authorization-code flow with
PKCE itself; the console sees no code and no token)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask

__all__ = ["FORWARDING_BASE", "ConsoleConfig", "create_app", "problem"]

STATIC = Path(__file__).parent / "static"
PROBLEM_JSON = "application/problem+json"
# What the browser may send on to a service, and what of a service's answer comes back.
FORWARDED_REQUEST = ("authorization", "content-type", "accept", "last-event-id", "idempotency-key")
FORWARDED_RESPONSE = (
    "content-type",
    "content-encoding",
    "cache-control",
    "location",
    "retry-after",
    "idempotent-replayed",
    "x-correlation-id",
)
MEDIA_RESPONSE = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
FORWARDING_BASE = "api/"  # the page's API base when this console forwards its calls
# No read timeout: an event stream is quiet for as long as its job is.
UPSTREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=5.0)

DevToken = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class ConsoleConfig:
    """Where each service's API answers (name -> base URL), where the page sends its calls,
    and, under the dev runner only, how to fetch the local dev user's token and the local
    dev admin's (`dev-admin`, in the `admin` group)."""

    services: dict[str, str]
    dev_token: DevToken | None = field(default=None)
    dev_admin_token: DevToken | None = field(default=None)
    api_base: str = FORWARDING_BASE  # where the page calls the APIs: here, or "/" behind the ALB
    # Origins of presigned media URLs (the S3 endpoint) that /media may fetch for the page:
    # a browser plays an HLS ladder only from segments of its own origin.
    media_origins: tuple[str, ...] = ()
    # Cognito's hosted UI (`https://<domain>.auth.<region>.amazoncognito.com`) and the public
    # app client (no secret) the page signs in with: both, or neither.
    auth_url: str | None = None
    client_id: str | None = None

    @property
    def forwards(self) -> bool:
        """Whether the page calls the APIs through this console (`/api/<service>/...`)."""
        return self.api_base == FORWARDING_BASE

    @property
    def hosted_ui(self) -> dict[str, str] | None:
        """The hosted UI the page signs in through, when one is configured."""
        if not (self.auth_url and self.client_id):
            return None
        return {"url": self.auth_url.rstrip("/"), "client_id": self.client_id}


def problem(status: int, title: str, detail: str) -> JSONResponse:
    """A problem+json answer of the console's own (RFC 9457)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def create_app(
    config: ConsoleConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The console app for `config`; `transport` replaces the network in tests."""
    client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, transport=transport)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(
        title="Longhaul console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    fetchers: dict[str, DevToken] = {}
    if config.dev_token is not None:
        fetchers["dev"] = config.dev_token
        if config.dev_admin_token is not None:
            fetchers["admin"] = config.dev_admin_token

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The console is serving."""
        return {"status": "ok"}

    @app.get("/console/config")
    async def console_config() -> dict[str, Any]:
        """What the page needs to start: the services it can ask, and whether a dev token is
        on offer (only under the dev runner)."""
        return {
            "services": sorted(config.services),
            "api_base": config.api_base,
            "dev_token": config.dev_token is not None,
            # under the dev runner: the local users on offer ("dev", and "admin" if offered)
            **({"dev_users": sorted(fetchers, reverse=True)} if fetchers else {}),
            "media_proxy": bool(config.media_origins),
            # Cognito's hosted UI and the public client id, where one is configured
            **({"hosted_ui": config.hosted_ui} if config.hosted_ui else {}),
        }

    if config.dev_token is not None:

        @app.get("/dev-token")
        async def dev_token(user: str = "dev") -> Response:
            """LOCAL DEV RUNNER ONLY: a local dev user's access token, from moto's Cognito
            (`user=admin`: the dev admin's). Never served elsewhere: the route exists only
            when the dev runner asks for it."""
            fetch = fetchers.get(user)
            if fetch is None:
                return problem(404, "Not Found", f"no local user {user!r} on offer")
            try:
                token = await fetch()
            except Exception:  # the platform is not up (yet): say so, no traceback
                return problem(503, "Service Unavailable", "the local user pool is not ready")
            return JSONResponse(
                {"token": token, "user": user, "local_only": True},
                headers={"Cache-Control": "no-store"},
            )

    async def forward(service: str, path: str, request: Request) -> Response:
        base = config.services.get(service)
        if base is None:
            return problem(404, "Not Found", f"no service named {service!r}")
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST}
        upstream = client.build_request(
            request.method,
            f"{base.rstrip('/')}/{path}",
            params=request.url.query,
            headers=headers,
            content=await request.body(),
        )
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.TransportError:
            return problem(502, "Bad Gateway", f"the {service} service is not answering")
        kept = {k: v for k, v in answer.headers.items() if k.lower() in FORWARDED_RESPONSE}
        return StreamingResponse(
            _relay(answer),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    if config.forwards:
        app.add_api_route(
            "/api/{service}/{path:path}", forward, methods=METHODS, include_in_schema=False
        )

    @app.get("/media", include_in_schema=False)
    async def media(u: str, request: Request) -> Response:
        """A presigned media URL (an HLS segment) fetched for the page, so that the browser
        plays it from its own origin. Only URLs of the configured S3 origins: the URL's
        signature is its authorization, the console adds none."""
        url = httpx.URL(u)
        origin = f"{url.scheme}://{url.netloc.decode()}"
        if url.scheme not in ("http", "https") or origin not in config.media_origins:
            return problem(403, "Forbidden", "not a media URL this console fetches")
        headers = {k: v for k, v in request.headers.items() if k.lower() == "range"}
        try:
            answer = await client.send(
                client.build_request("GET", url, headers=headers), stream=True
            )
        except httpx.TransportError:
            return problem(502, "Bad Gateway", "the media store is not answering")
        kept = {k: v for k, v in answer.headers.items() if k.lower() in MEDIA_RESPONSE}
        return StreamingResponse(
            _relay(answer),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The service's body as it arrives (an event stream, chunk by chunk); the upstream
    connection is closed however the browser's side ends."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.TransportError:
        return  # the service went mid-body: end ours
    finally:
        await answer.aclose()


def services_from_env(text: str) -> dict[str, str]:
    """The service map from LONGHAUL_CONSOLE_SERVICES: a JSON object of name -> base URL."""
    value = json.loads(text or "{}")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("LONGHAUL_CONSOLE_SERVICES must be a JSON object of name -> URL")
    return dict(value)
