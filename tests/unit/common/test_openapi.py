"""Each service's OpenAPI document, as built (no server): errors are problems, job payloads
are typed by job type, and the document carries the service's version."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from fastapi import FastAPI

from longhaul.api.app import create_app
from longhaul.config import KitSettings
from longhaul.runtime import Service

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _services() -> dict[str, tuple[Service, type[KitSettings]]]:
    from longhaul_analytics.config import AnalyticsSettings
    from longhaul_analytics.service import SERVICE as ANALYTICS
    from longhaul_media.config import MediaSettings
    from longhaul_media.service import SERVICE as MEDIA
    from longhaul_training.config import TrainingSettings
    from longhaul_training.service import SERVICE as TRAINING
    from tests.support.echo.service import SERVICE as ECHO

    return {
        "echo": (ECHO, KitSettings),
        "media": (MEDIA, MediaSettings),
        "training": (TRAINING, TrainingSettings),
        "analytics": (ANALYTICS, AnalyticsSettings),
    }


def _app(name: str) -> FastAPI:
    service, settings = _services()[name]
    return create_app(
        service.spec,
        settings.model_construct(),
        role="api",
        routers=service.routers,
        events=service.events,
        jobs=service.jobs,
        flags=service.flags,
    )


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.mark.parametrize("name", ["echo", "media", "training", "analytics"])
def test_every_error_response_is_a_problem(name: str) -> None:
    document = _app(name).openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        if operation.get("security"):
            assert "401" in responses, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path)
        for code, response in responses.items():
            if int(code) >= 400:
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (
                    method,
                    path,
                    code,
                )


@pytest.mark.parametrize("name", ["media", "training"])
def test_the_submit_body_is_one_schema_per_public_job_type(name: str) -> None:
    service, _ = _services()[name]
    assert service.jobs is not None
    document = _app(name).openapi()
    body = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    schemas = document["components"]["schemas"]
    variants = [body["schema"]] if "oneOf" not in body["schema"] else body["schema"]["oneOf"]
    types = set()
    for variant in variants:
        resolved = schemas[variant["$ref"].rsplit("/", 1)[-1]] if "$ref" in variant else variant
        types.add(resolved["properties"]["type"]["const"])
        payload = resolved["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]
        assert payload in schemas
    assert types == set(service.jobs.public_names)


def test_the_document_names_the_package_version() -> None:
    assert _app("media").openapi()["info"]["version"] == importlib.metadata.version(
        "longhaul-media"
    )
