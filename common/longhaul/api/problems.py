"""RFC 9457 problem details for every error the API returns; never a stack trace."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from longhaul.observability import context
from longhaul.quotas.types import QuotaExceeded

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.title = title
        self.type = type_
        self.headers = headers
        self.extensions = extensions


def problem_body(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """The problem document; `title` defaults to the status phrase, as RFC 9457 asks."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["correlation_id"] = context.correlation_id()
    body.update(extensions)
    return body


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> JSONResponse:
    """A problem+json response; `fields` are `problem_body`'s keywords and extensions."""
    return JSONResponse(
        problem_body(status, detail, **fields),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        exc.detail,
        headers=exc.headers,
        title=exc.title,
        type_=exc.type,
        instance=request.url.path,
        **exc.extensions,
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, detail, headers=headers, instance=request.url.path)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(tuple(err["loc"])), "message": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return problem_response(
        422,
        f"{len(errors)} invalid field(s): " + ", ".join(e["field"] for e in errors),
        instance=request.url.path,
        errors=errors,
    )


async def _on_quota(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    return problem_response(
        429,
        exc.detail,
        headers={"Retry-After": str(exc.retry_after_s)},
        instance=request.url.path,
        quota=exc.quota,
        limit=exc.limit,
        retry_after_s=exc.retry_after_s,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer HTTP errors, validation errors, quotas exceeded and `Problem`s as
    problem+json."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(QuotaExceeded, _on_quota)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
