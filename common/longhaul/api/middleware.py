"""Pure ASGI middleware: request context (correlation id, server span, access log, 500s)."""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from longhaul.api.problems import problem_response
from longhaul.observability import context
from longhaul.observability.tracing import extract, tracer

__all__ = ["RequestContextMiddleware"]

CORRELATION_HEADER = "x-correlation-id"
access_log = logging.getLogger("longhaul.access")
log = logging.getLogger(__name__)


class RequestContextMiddleware:
    """Correlation id in and out, a server span per request, one access-log line, and a
    problem+json 500 (logged with its traceback, never sent) for any unhandled error.

    A body over `max_body_bytes` is refused with a problem+json 413: at once when its
    Content-Length says so, or as soon as the bytes read pass the limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, quiet_paths: tuple[str, ...] = ("/healthz",)
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        correlation = context.valid_correlation_id(headers.get(CORRELATION_HEADER))
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_context(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (CORRELATION_HEADER.encode(), correlation.encode()),
                ]
            await send(message)

        limit = self.max_body_bytes
        too_large = f"the request body is over the {limit}-byte limit"
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing to the handlers.
                    raise HTTPException(413, too_large)
            return message

        method = scope["method"]
        with (
            context.bind(correlation=correlation),
            tracer().start_as_current_span(
                f"{method} {scope['path']}",
                context=extract(headers),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": scope["path"]},
            ) as span,
        ):
            try:
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    await problem_response(413, too_large)(scope, receive, send_with_context)
                else:
                    await self.app(scope, counting_receive, send_with_context)
            except Exception:
                log.exception("unhandled error", extra={"path": scope["path"], "method": method})
                if not response_started:
                    await problem_response(500)(scope, receive, send_with_context)
            route = scope.get("route")
            if route is not None and hasattr(route, "path"):
                span.update_name(f"{method} {route.path}")
                span.set_attribute("http.route", route.path)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            fields: dict[str, Any] = {
                "method": method,
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": (scope.get("client") or ("", 0))[0],
            }
            level = logging.DEBUG if scope["path"] in self.quiet_paths else logging.INFO
            access_log.log(level, "%s %s %s", method, scope["path"], status, extra=fields)
