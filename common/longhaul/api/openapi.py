"""The OpenAPI document every service serves: each error a route can answer is documented as
an RFC 9457 problem (`application/problem+json`, the `Problem` schema), 422 included, and
routes may document bodies that FastAPI cannot see (a body the route reads itself).

The kit adds the statuses it knows a route can answer from the route's shape: 401 when it
needs a bearer token, 403 when it needs a group, 429 when it takes from the caller's
quotas, 422 when it has parameters or a body, 413 and 400 (not JSON) when it takes a body,
404 when its path names something, and 500 everywhere (an unhandled error, never with its
details). A route declares the others it answers with `responses=problems(409, ...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from longhaul.api.problems import PROBLEM_JSON

__all__ = [
    "COMPONENTS_KEY",
    "PROBLEM_SCHEMA",
    "install_openapi",
    "json_body",
    "problems",
]

COMPONENTS_KEY = "x-longhaul-components"  # schemas a route's `openapi_extra` brings along
PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": (
        "An RFC 9457 problem document. Extensions (such as `errors`, `known_types`, "
        "`max_bytes`, `retry_after_s`) are documented by the route that adds them."
    ),
    "type": "object",
    "required": ["type", "title", "status", "correlation_id"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the problem's kind"},
        "title": {"type": "string", "description": "the status phrase, or a short summary"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what went wrong, for this request"},
        "instance": {"type": "string", "description": "the request's path"},
        "correlation_id": {"type": "string", "description": "the request's correlation id"},
        "errors": {
            "type": "array",
            "description": "each invalid field of a 422 the request's validation answered",
            "items": {"$ref": "#/components/schemas/FieldError"},
        },
    },
    "additionalProperties": True,
}

FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "FieldError",
    "type": "object",
    "required": ["field", "message", "type"],
    "properties": {
        "field": {"type": "string", "description": "the field's path, e.g. body.payload.steps"},
        "message": {"type": "string"},
        "type": {"type": "string", "description": "the validation error's kind"},
    },
}

DESCRIPTIONS: dict[int, str] = {
    400: "The request is refused (a body that is not JSON; the problem's detail says why)",
    401: "No valid bearer token",
    403: "The caller lacks the group this route needs",
    404: "Nothing by that name is the caller's",
    409: "The request conflicts with the resource's state",
    413: "The request body, or the file it declares, is over its limit",
    415: "The content type is not accepted",
    422: "The request is invalid (`errors` lists each invalid field when its shape is wrong)",
    429: "Over one of the caller's quotas (see Retry-After)",
    500: "An unhandled error (never with its details)",
    503: "Not available now; retry",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error statuses a route answers beyond those the kit infers."""
    return {
        status: {"description": DESCRIPTIONS.get(status, _phrase(status))} for status in statuses
    }


def json_body(schema: Any, *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra=` documenting a JSON request body the route reads itself (or
    validates more finely than its signature says): `schema` is a pydantic model or any
    type pydantic knows."""
    document = TypeAdapter(schema).json_schema(
        ref_template="#/components/schemas/{model}", mode="validation"
    )
    definitions = document.pop("$defs", {})
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": document}},
        },
        COMPONENTS_KEY: definitions,
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def api_routes(app: FastAPI) -> Iterator[Any]:
    """Each API route of `app` as its document sees it (its path with the prefixes of the
    routers that include it), whether or not FastAPI built it yet."""
    for context in routing.iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def inferred_statuses(route: Any) -> set[int]:
    """The error statuses the kit knows `route` can answer, from its dependencies and
    parameters."""
    from longhaul.api import deps

    statuses = {500}
    calls = set(_calls(route.dependant))
    if deps.current_caller in calls:
        statuses.add(401)
    if any(getattr(c, "__qualname__", "").startswith("require_group.") for c in calls):
        statuses.add(403)
    if deps._quotas in calls:
        statuses.add(429)
    dependant = route.dependant
    has_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    parameters = [
        *dependant.path_params,
        *dependant.query_params,
        *dependant.header_params,
        *dependant.cookie_params,
    ]
    for sub in _walk(dependant):
        parameters += [*sub.path_params, *sub.query_params, *sub.header_params]
    if has_body:  # 400: a body that is not JSON at all
        statuses |= {400, 413, 422}
    if parameters:
        statuses.add(422)
    if dependant.path_params:
        statuses.add(404)
    return statuses


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _walk(dependency)


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }


def _document_route(operation: dict[str, Any], route: Any) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in inferred_statuses(route):
        responses.setdefault(str(status), {"description": DESCRIPTIONS.get(status, "")})
    for code, response in list(responses.items()):
        if not code.isdigit() or int(code) < 400:
            continue
        description = response.get("description") or DESCRIPTIONS.get(int(code), "")
        if description == "Validation Error":  # FastAPI's own 422
            description = DESCRIPTIONS[422]
        documented = _problem_response(description)
        if int(code) == 401:
            documented["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        responses[code] = documented
    operation["responses"] = dict(sorted(responses.items()))


def document(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document of `app`) with every error response a problem, and the
    components routes bring along."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            for name, definition in operation.pop(COMPONENTS_KEY, {}).items():
                components.setdefault(name, definition)
            extra = route.openapi_extra or {}
            if "requestBody" in extra:  # in place of the body FastAPI saw, not merged into it
                operation["requestBody"] = extra["requestBody"]
            _document_route(operation, route)
    components["Problem"] = PROBLEM_SCHEMA
    components["FieldError"] = FIELD_ERROR_SCHEMA
    schema["components"]["schemas"] = prune(schema, components)
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def prune(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The component schemas the paths reach (FastAPI's validation error, and bodies a
    route documents otherwise, are left out), sorted by name."""
    reached: set[str] = set()
    pending = list(_refs(schema.get("paths", {})))
    while pending:
        name = pending.pop()
        if name in reached or name not in components:
            continue
        reached.add(name)
        pending.extend(_refs(components[name]))
    return {name: components[name] for name in sorted(reached)}


def install_openapi(
    app: FastAPI, *, patches: tuple[Callable[[dict[str, Any]], None], ...] = ()
) -> None:
    """Make `app.openapi()` (and so /openapi.json) the exact document: errors as problems,
    then each of `patches` applied to it (the job routes type their bodies this way)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            document(app, schema)
            for patch in patches:
                patch(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
